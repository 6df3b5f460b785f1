// npm run bench [-- suite ...]: runs the named suites (all when none is named).
const SUITES: Record<string, () => Promise<unknown>> = {
  core: async () => {
    await (await import('./core-pagetable.js')).run();
    await (await import('./core-conflict.js')).run();
    await (await import('./core-bytes.js')).run();
  },
  scale: async () => (await import('./core-bitmap.js')).run(),
  memory: async () => (await import('./memory.js')).run(),
  sched: async () => (await import('./sched.js')).run(),
  mirror: async () => {
    await (await import('./mirror.js')).run();
    await (await import('./failover.js')).run();
  },
};

const asked = process.argv.slice(2);
const names = asked.length ? asked : Object.keys(SUITES);
for (const n of names) {
  if (!SUITES[n]) {
    console.error(`unknown suite "${n}"; suites: ${Object.keys(SUITES).join(', ')}`);
    process.exit(2);
  }
}
console.log(`twinpage benchmarks, node ${process.version}, ${new Date().toISOString().slice(0, 10)}`);
for (const n of names) {
  console.log(`\n# ${n}`);
  await SUITES[n]();
}
