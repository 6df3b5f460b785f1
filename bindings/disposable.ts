// `await using` (explicit resource management: TypeScript 5.2+, Node 20+,
// recent browsers) for memories and pointers, without a polyfill: their
// dispose method is keyed by `Symbol.asyncDispose` where the runtime has the
// symbol, and elsewhere by a symbol of this module that nothing calls (no
// global is added or changed).
//
// The types declare `Symbol.asyncDispose` as TypeScript 5.2's
// `esnext.disposable` library and @types/node do, word for word, so the
// package's declarations compile with TypeScript 5.0 and with any `lib`.

declare global {
  interface SymbolConstructor {
    readonly asyncDispose: unique symbol;
  }
}

/** `Symbol.asyncDispose`, or a stand-in where the runtime lacks it. */
export const asyncDispose: typeof Symbol.asyncDispose =
  ((Symbol as { asyncDispose?: symbol }).asyncDispose ?? Symbol('Symbol.asyncDispose')) as typeof Symbol.asyncDispose;
