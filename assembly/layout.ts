// Linear memory layout, fixed once by init() and never grown afterwards, so
// that views handed out by the bindings never detach.
//
//   0            __heap_base                                        end
//   +------------+--------------+-------+---------+----------+---------+
//   | static data| frame meta   | page  | scratch | conflict | data    |
//   | + globals  | (16 B/frame) | table |         | tables   | area    |
//   +------------+--------------+-------+---------+----------+---------+
//
// Each region is taken from a bump pointer with reserve(); the data area
// (io buffer, then the frames) comes last and is aligned to 64 bytes (a
// cache line) so SIMD loops run on aligned pages.

@inline const WASM_PAGE: usize = 65536;

let bump: usize = 0;

/** Start reserving at __heap_base. */
export function layoutBegin(): void {
  bump = (__heap_base + 63) & ~<usize>63;
}

/**
 * Reserves `bytes` aligned to `align` (a power of two). Returns 0 when the
 * total would pass 4 GiB; the caller turns that into E_TOO_LARGE.
 */
export function reserve(bytes: u64, align: usize): usize {
  let start = (<u64>bump + <u64>(align - 1)) & ~<u64>(align - 1);
  let end = start + bytes;
  if (end > 0xFFFF0000) return 0;
  bump = <usize>end;
  return <usize>start;
}

/** Grows memory once to hold everything reserved. Returns false on failure. */
export function layoutCommit(): bool {
  let needPages = (bump + WASM_PAGE - 1) / WASM_PAGE;
  let have = <usize>memory.size();
  if (needPages > have) {
    if (memory.grow(<i32>(needPages - have)) < 0) return false;
  }
  return true;
}

// The data area: the io buffer followed by the frames. Every export that
// touches bytes names them by an offset into this area, never by a raw
// pointer, so no caller can reach the metadata that lives below it.
//
//   dataBase
//   +-----------+---------+---------+-----+-------------------+
//   | io buffer | frame 0 | frame 1 | ... | frame frameCount-1|
//   +-----------+---------+---------+-----+-------------------+
//   |<-ioBytes->|<-page ->|

/** Set once init() has laid out memory; every export checks it first. */
export let ready: bool = false;
export let dataBase: usize = 0;
export let dataBytes: usize = 0;
export let ioBytes: usize = 0;
export let pageSize: usize = 0;
export let pageShift: u32 = 0;

export function setDataArea(base: usize, io: usize, page: usize, frames: u32): void {
  dataBase = base;
  ioBytes = io;
  pageSize = page;
  pageShift = ctz<u32>(<u32>page);
  dataBytes = io + (<usize>frames << pageShift);
}

export function setReady(): void { ready = true; }

/** Address of the first byte of frame `frame` (unchecked). */
@inline export function frameData(frame: u32): usize {
  return dataBase + ioBytes + (<usize>frame << pageShift);
}

/**
 * The address of [off, off + len) in the data area, or 0 when that range is
 * not wholly inside it (the data area never starts at address 0).
 */
@inline export function dataPtr(off: u32, len: u32): usize {
  if (<usize>len > dataBytes || <usize>off > dataBytes - <usize>len) return 0;
  return dataBase + <usize>off;
}
