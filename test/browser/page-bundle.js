// What the page itself uses of twinpage in the bundled variant (esbuild, 'twinpage').
export { openMemory, MemoryStore } from 'twinpage';
