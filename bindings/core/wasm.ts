import { instantiate } from '@assemblyscript/loader';
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
 * A fresh core instance: each has its own linear memory. The loader wraps
 * every export in a `(...args) => f(...args)` closure that costs more than a
 * page-table probe; the bindings call the functions it keeps as `.original`.
 */
export async function instantiateCore(): Promise<CoreExports> {
  const { exports } = await instantiate(await coreModule(), {});
  const direct: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(exports)) {
    direct[name] = (value as { original?: unknown } | undefined)?.original ?? value;
  }
  return direct as unknown as CoreExports;
}
