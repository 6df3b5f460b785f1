// Module resolution hook: a test's `import ... from 'uvu'` gets ./uvu.mjs,
// which itself imports the real uvu.
const WRAPPER = new URL('./uvu.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'uvu' && context.parentURL !== WRAPPER) return { url: WRAPPER, shortCircuit: true };
  return nextResolve(specifier, context);
}
