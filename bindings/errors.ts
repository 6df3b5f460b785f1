/**
 * One error class for everything twinpage refuses, with a stable `code`.
 *
 * Create errors through the static factories (one per code) so that a code
 * is spelled in one place. Callers branch on `err.code`, never on the message.
 */
export class TwinpageError extends Error {
  /** Stable, machine-readable code, e.g. `"PIN_CONFLICT"`. */
  readonly code: TwinpageErrorCode;

  constructor(code: TwinpageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TwinpageError';
    this.code = code;
  }

  // --- arguments -----------------------------------------------------------
  static invalidArgument(message: string) { return new TwinpageError('INVALID_ARGUMENT', message); }
  static tooLarge(message: string) { return new TwinpageError('TOO_LARGE', message); }
  static outOfBounds(message: string) { return new TwinpageError('OUT_OF_BOUNDS', message); }

  // --- core: frames and pages ----------------------------------------------
  static coreNotReady(message = 'the core is not initialised') { return new TwinpageError('CORE_NOT_READY', message); }
  static alreadyInitialized(message = 'the core is already initialised') { return new TwinpageError('ALREADY_INITIALIZED', message); }
  static frameOutOfRange(message: string) { return new TwinpageError('FRAME_OUT_OF_RANGE', message); }
  static frameNotMapped(message: string) { return new TwinpageError('FRAME_NOT_MAPPED', message); }
  static invalidPage(message: string) { return new TwinpageError('INVALID_PAGE', message); }
  static notFound(message: string, cause?: unknown) { return new TwinpageError('NOT_FOUND', message, cause === undefined ? undefined : { cause }); }
  static alreadyExists(message: string) { return new TwinpageError('ALREADY_EXISTS', message); }
  static full(message: string) { return new TwinpageError('FULL', message); }
  static busy(message: string) { return new TwinpageError('BUSY', message); }
  static pinConflict(message: string) { return new TwinpageError('PIN_CONFLICT', message); }
  static pinUnderflow(message: string) { return new TwinpageError('PIN_UNDERFLOW', message); }
  static noVictim(message: string) { return new TwinpageError('NO_VICTIM', message); }
  static tableOutOfRange(message: string) { return new TwinpageError('TABLE_OUT_OF_RANGE', message); }

  // --- storage ---------------------------------------------------------------
  static closed(message: string) { return new TwinpageError('CLOSED', message); }
  static noSpace(message: string, cause?: unknown) { return new TwinpageError('NO_SPACE', message, cause === undefined ? undefined : { cause }); }
  static ioError(message: string, cause?: unknown) { return new TwinpageError('IO_ERROR', message, { cause }); }
  static corrupt(message: string) { return new TwinpageError('CORRUPT', message); }
  static unsupportedFormat(message: string) { return new TwinpageError('UNSUPPORTED_FORMAT', message); }

  // --- memory: blocks and pointers ------------------------------------------------
  static unknownBlock(message: string) { return new TwinpageError('UNKNOWN_BLOCK', message); }
  static outOfRange(message: string) { return new TwinpageError('OUT_OF_RANGE', message); }
  static pointerReleased(message: string) { return new TwinpageError('POINTER_RELEASED', message); }

  // --- messages: frames between the nodes ------------------------------------------
  static badFrame(message: string, cause?: unknown) { return new TwinpageError('BAD_FRAME', message, cause === undefined ? undefined : { cause }); }

  // --- transports: the connection between the nodes ---------------------------------
  static splitBrain(message: string) { return new TwinpageError('SPLIT_BRAIN', message); }
  static authFailed(message: string, cause?: unknown) { return new TwinpageError('AUTH_FAILED', message, cause === undefined ? undefined : { cause }); }
  /** A node that does not hold all of its partner's data yet (being resynced) was asked to serve. */
  static inconsistent(message: string) { return new TwinpageError('INCONSISTENT', message); }
  /** A secondary's own callers asked to change it: only its primary's stream does. */
  static notPrimary(message: string) { return new TwinpageError('NOT_PRIMARY', message); }
  /** The partner's handshake was refused (split brain, unrelated data, a primary behind): nothing changed. */
  static refused(message: string) { return new TwinpageError('REFUSED', message); }
  /** A write the partner lacks cannot be acknowledged: no lease from the arbiter (onNoQuorum: 'error'). */
  static noQuorum(message: string) { return new TwinpageError('NO_QUORUM', message); }
  /** A frame or a role of an older epoch: a newer primary took over through the arbiter. */
  static fenced(message: string) { return new TwinpageError('FENCED', message); }
  /** The partner did not answer a request in time. */
  static timeout(message: string) { return new TwinpageError('TIMEOUT', message); }

  /**
   * An error named by a code that came from elsewhere (a partner's ERROR
   * frame, a node's reply on its control socket): kept when it is one of
   * ours, else IO_ERROR with the code in the message.
   */
  static fromCode(code: unknown, message: string): TwinpageError {
    if (typeof code === 'string' && (CODES as readonly string[]).includes(code)) return new TwinpageError(code as TwinpageErrorCode, message);
    return TwinpageError.ioError(typeof code === 'string' ? `${code}: ${message}` : message);
  }

  /** `err` as a TwinpageError: itself when it is one, else IO_ERROR with its message and `err` as cause. */
  static from(err: unknown): TwinpageError {
    if (err instanceof TwinpageError) return err;
    return TwinpageError.ioError(String((err as Error)?.message ?? err), err);
  }
}

/** Every code, stable across versions. */
export const CODES = [
  'INVALID_ARGUMENT',
  'TOO_LARGE',
  'OUT_OF_BOUNDS',
  'CORE_NOT_READY',
  'ALREADY_INITIALIZED',
  'FRAME_OUT_OF_RANGE',
  'FRAME_NOT_MAPPED',
  'INVALID_PAGE',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'FULL',
  'BUSY',
  'PIN_CONFLICT',
  'PIN_UNDERFLOW',
  'NO_VICTIM',
  'TABLE_OUT_OF_RANGE',
  'CLOSED',
  'NO_SPACE',
  'IO_ERROR',
  'CORRUPT',
  'UNSUPPORTED_FORMAT',
  'UNKNOWN_BLOCK',
  'OUT_OF_RANGE',
  'POINTER_RELEASED',
  'SPLIT_BRAIN',
  'BAD_FRAME',
  'AUTH_FAILED',
  'INCONSISTENT',
  'TIMEOUT',
  'NOT_PRIMARY',
  'REFUSED',
  'NO_QUORUM',
  'FENCED',
] as const;

/** Every code a TwinpageError may carry. */
export type TwinpageErrorCode = (typeof CODES)[number];
