import { TwinpageError } from '../errors.js';

// Mirrors assembly/status.ts: keep the two lists in step.

/** The core's status for a table with no room left (FULL). */
export const E_FULL = -7;

const FACTORY: Record<number, (message: string) => TwinpageError> = {
  [-1]: TwinpageError.coreNotReady,
  [-2]: TwinpageError.invalidArgument,
  [-3]: TwinpageError.frameOutOfRange,
  [-4]: TwinpageError.invalidPage,
  [-5]: TwinpageError.notFound,
  [-6]: TwinpageError.alreadyExists,
  [-7]: TwinpageError.full,
  [-8]: TwinpageError.busy,
  [-9]: TwinpageError.pinConflict,
  [-10]: TwinpageError.pinUnderflow,
  [-11]: TwinpageError.noVictim,
  [-12]: TwinpageError.outOfBounds,
  [-13]: TwinpageError.frameNotMapped,
  [-14]: TwinpageError.tableOutOfRange,
  [-15]: TwinpageError.tooLarge,
  [-16]: TwinpageError.alreadyInitialized,
};

/** Turns a negative core status into a TwinpageError; `what` says what was asked. */
export function statusError(status: number, what: string): TwinpageError {
  const make = FACTORY[status];
  if (make === undefined) return TwinpageError.invalidArgument(`${what}: unknown core status ${status}`);
  return make(`${what}: ${describe(status)}`);
}

/** Returns `status` when it is >= 0, else throws the matching TwinpageError. */
export function check(status: number, what: string): number {
  if (status < 0) throw statusError(status, what);
  return status;
}

function describe(status: number): string {
  switch (status) {
    case -1: return 'the core is not initialised';
    case -2: return 'invalid argument';
    case -3: return 'frame index out of range';
    case -4: return 'page number 0xFFFFFFFF is reserved';
    case -5: return 'not found';
    case -6: return 'page already mapped';
    case -7: return 'no room left';
    case -8: return 'frame is pinned or has I/O in flight';
    case -9: return 'conflicting pin';
    case -10: return 'frame is not pinned';
    case -11: return 'every frame is pinned or busy';
    case -12: return 'range outside the data area';
    case -13: return 'frame holds no page';
    case -14: return 'conflict table handle out of range';
    case -15: return 'sizes do not fit in linear memory';
    case -16: return 'already initialised';
    default: return `status ${status}`;
  }
}
