// PLACEHOLDER (being written): range-conflict tables.
import { OK, E_TABLE_RANGE } from './status';
export let tableCount: u32 = 0;
export let tableCapacity: u32 = 0;
export function conflictSetup(tables: u32, capacity: u32): bool { tableCount = tables; tableCapacity = capacity; return true; }
export function conflictReset(): void {}
export function conflictInsert(table: u32, first: u32, last: u32, mode: u32, owner: u32): i32 { return E_TABLE_RANGE; }
export function conflictQuery(table: u32, first: u32, last: u32, mode: u32): i32 { return E_TABLE_RANGE; }
export function conflictBlocker(table: u32, id: i32): i32 { return E_TABLE_RANGE; }
export function conflictRemove(table: u32, id: i32): i32 { return E_TABLE_RANGE; }
export function conflictRemoveOwner(table: u32, owner: u32): i32 { return E_TABLE_RANGE; }
export function conflictCount(table: u32): i32 { return E_TABLE_RANGE; }
export function conflictClear(table: u32): i32 { return OK; }
