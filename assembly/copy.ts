// PLACEHOLDER (being written): copy, fill, compare within linear memory.
import { E_BOUNDS } from './status';
export function copyBytes(dst: u32, src: u32, len: u32): i32 { return E_BOUNDS; }
export function fillBytes(off: u32, value: u32, len: u32): i32 { return E_BOUNDS; }
export function compareBytes(a: u32, b: u32, len: u32): i32 { return E_BOUNDS; }
