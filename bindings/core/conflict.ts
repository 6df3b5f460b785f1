// PLACEHOLDER (being written): typed wrapper of one range-conflict table.
import type { CoreExports } from './exports.js';
export type RangeMode = 'shared' | 'exclusive';
export class ConflictTable {
  readonly index: number;
  readonly #x: CoreExports;
  constructor(exports: CoreExports, index: number) { this.#x = exports; this.index = index; }
}
