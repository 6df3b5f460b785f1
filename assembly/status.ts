// Status codes returned by every exported core function.
//
// The core never throws and never traps on bad input: each export checks its
// arguments and returns one of these (negative) codes, or a non-negative
// result. bindings/core/status.ts maps each code to a TwinpageError code;
// keep the two lists in step.

@inline export const OK: i32 = 0;
/** init() has not run yet. */
@inline export const E_NOT_READY: i32 = -1;
/** An argument is outside its documented domain (mode, size, count...). */
@inline export const E_INVALID_ARG: i32 = -2;
/** A frame index is >= the frame count. */
@inline export const E_FRAME_RANGE: i32 = -3;
/** A page number is the reserved value 0xFFFFFFFF. */
@inline export const E_PAGE_INVALID: i32 = -4;
/** The page, entry or owner asked for is not there. */
@inline export const E_NOT_FOUND: i32 = -5;
/** The page is already mapped. */
@inline export const E_EXISTS: i32 = -6;
/** No free frame, or the conflict table has no free entry. */
@inline export const E_FULL: i32 = -7;
/** The frame is pinned or has I/O in flight and cannot be removed. */
@inline export const E_BUSY: i32 = -8;
/** A pin conflicts with an exclusive pin (or an exclusive pin with any pin). */
@inline export const E_CONFLICT: i32 = -9;
/** Unpin of a frame that is not pinned. */
@inline export const E_UNDERFLOW: i32 = -10;
/** Every mapped frame is pinned or busy: nothing can be evicted. */
@inline export const E_NO_VICTIM: i32 = -11;
/** A pointer and length reach outside the region they must stay in. */
@inline export const E_BOUNDS: i32 = -12;
/** The frame holds no page. */
@inline export const E_NOT_MAPPED: i32 = -13;
/** A conflict-table handle is >= the table count. */
@inline export const E_TABLE_RANGE: i32 = -14;
/** init() sizes do not fit in 4 GiB of linear memory. */
@inline export const E_TOO_LARGE: i32 = -15;
/** init() was already called on this instance. */
@inline export const E_ALREADY_INIT: i32 = -16;
