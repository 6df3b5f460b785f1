// PLACEHOLDER (being written): XXH3-64 over linear memory.
import { OK, E_BOUNDS } from './status';
import { reserve } from './layout';
export let scratch64Base: usize = 0;
export let resultBase: usize = 0;
export function checksumSetup(scratch: u32): bool { scratch64Base = reserve(<u64>scratch * 8, 16); resultBase = reserve(8, 8); return scratch64Base != 0 && resultBase != 0; }
export function checksum(off: u32, len: u32): i32 { return E_BOUNDS; }
export function checksumFrames(count: u32): i32 { return E_BOUNDS; }
