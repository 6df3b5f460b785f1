import { WASM_BASE64 } from './wasm-bytes.js';
import type { CoreExports } from './exports.js';

let compiled: Promise<WebAssembly.Module> | undefined;

function decodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The core module, compiled once per realm and cached. */
export function coreModule(): Promise<WebAssembly.Module> {
  compiled ??= WebAssembly.compile(decodeBase64(WASM_BASE64) as BufferSource);
  return compiled;
}

/**
 * A fresh core instance: each has its own linear memory. The core imports
 * nothing (asconfig: no abort), so its raw exports are used as they are, with
 * no loader: nothing for a browser or bundler to resolve.
 */
export async function instantiateCore(): Promise<CoreExports> {
  const instance = await WebAssembly.instantiate(await coreModule(), {});
  return instance.exports as unknown as CoreExports;
}
