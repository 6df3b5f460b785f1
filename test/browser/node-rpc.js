// One twinpage node in a dedicated worker, driven by the page (harness.js)
// with { id, cmd, args } messages, each answered with { id, value } or
// { id, error }. The twinpage functions are passed in by the worker entry:
// worker-esm.js imports the package unbundled, worker-bundle.js is bundled
// by esbuild from 'twinpage'.

/** The bytes chunk `i` holds once written (never all zero). */
export function pattern(i, length) {
  const bytes = new Uint8Array(length);
  let x = (i + 1) * 2654435761 >>> 0;
  for (let k = 0; k < length; k++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    bytes[k] = x & 0xff;
  }
  bytes[0] = 1 + (i % 255);
  return bytes;
}

/** Where chunk `i` lives in its block: chunks straddle pages, so a chunk is a multi-page release. */
export const chunkOffset = (i, chunkBytes) => 100 + i * chunkBytes;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A worker that reloaded may find the OPFS handles of the killed one not yet released: retry a while. */
async function openRetrying(open, ms = 10_000) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await open();
    } catch (err) {
      const busy = err?.cause?.name === 'NoModificationAllowedError' || err?.name === 'NoModificationAllowedError';
      if (!busy || Date.now() > until) throw err;
      await sleep(100);
    }
  }
}

export function serve({ openMemory, openOpfsStore, messagePortTransport }) {
  let memory = null;
  const chunk = { bytes: 6000 };

  const commands = {
    async open({ dir, role, port, shared, copy, chunkBytes, heartbeatMs, timeoutMs }) {
      if (memory) throw new Error('already open');
      chunk.bytes = chunkBytes;
      const options = { store: await openOpfsStore(dir), cacheBytes: 8 << 20, flushIntervalMs: 0 };
      if (role) {
        const transport = messagePortTransport(port, shared ? { shared } : {});
        options.mirror = { role, transport, heartbeatMs, timeoutMs };
        if (copy) options.mirror.copy = copy; // else the default, 'auto'
      }
      memory = await openRetrying(() => openMemory(options));
      return { crossOriginIsolated: self.crossOriginIsolated, sharedTransport: !!shared };
    },
    async allocate({ size }) {
      return (await memory.allocate(size)).id;
    },
    async write({ id, i }) {
      await memory.write(id, chunkOffset(i, chunk.bytes), pattern(i, chunk.bytes));
      return i;
    },
    /** Writes chunks first..first+count-1 in `streams` parallel streams, posting { event: 'acked', i } as each resolves. */
    async stream({ id, first, count, streams }) {
      const run = async (s) => {
        for (let i = first + s; i < first + count; i += streams) {
          await memory.write(id, chunkOffset(i, chunk.bytes), pattern(i, chunk.bytes));
          self.postMessage({ event: 'acked', i });
        }
      };
      await Promise.all(Array.from({ length: streams }, (_, s) => run(s)));
      return count;
    },
    /** Reads chunks first..first+count-1 and sorts them: whole (the pattern), zero, or torn/wrong. */
    async check({ id, first, count }) {
      const whole = [], zero = [], bad = [];
      for (let i = first; i < first + count; i++) {
        const got = await memory.read(id, chunkOffset(i, chunk.bytes), chunk.bytes);
        const want = pattern(i, chunk.bytes);
        if (got.length === want.length && got.every((b, k) => b === want[k])) whole.push(i);
        else if (got.every((b) => b === 0)) zero.push(i);
        else bad.push(i);
      }
      return { whole, zero, bad };
    },
    /**
     * Cached reads of 4 KiB of chunk `i`, `count` times each way: readInto
     * (into one buffer, allocating nothing) and read (a new buffer each), both
     * checked against the bytes written there; reads per second of each, for
     * the test to report (a figure, not a timed test).
     */
    async cachedReads({ id, i, count }) {
      // Chunk i's first 4 KiB, as written (it is cached: read just before).
      const offset = chunkOffset(i, chunk.bytes);
      const want = pattern(i, chunk.bytes).subarray(0, 4096);
      await memory.read(id, offset, 4096);
      const into = new Uint8Array(4096);
      const rate = async (one) => {
        const t = performance.now();
        for (let k = 0; k < count; k++) await one();
        return Math.round(count / ((performance.now() - t) / 1000));
      };
      const readInto = await rate(() => memory.readInto(id, offset, into));
      const same = into.every((b, k) => b === want[k]);
      let last = null;
      const read = await rate(async () => { last = await memory.read(id, offset, 4096); });
      return { readInto, read, same: same && last.every((b, k) => b === want[k]) };
    },
    blocks() {
      return memory.blocks().map((b) => ({ id: b.id, length: b.length }));
    },
    stats() {
      return memory.mirror.stats();
    },
    sense() {
      const { role, health, connected } = memory.mirror.sense();
      return { role, health, connected };
    },
    async promote() {
      await memory.mirror.promote();
      return commands.sense();
    },
    async close() {
      await memory.close();
      memory = null;
      return true;
    },
  };

  self.onmessage = async (event) => {
    const { id, cmd, args } = event.data;
    try {
      const fn = commands[cmd];
      if (!fn) throw new Error(`unknown command ${cmd}`);
      self.postMessage({ id, value: await fn(args ?? {}) });
    } catch (err) {
      self.postMessage({
        id,
        error: {
          name: err?.name, code: err?.code, message: String(err?.message ?? err),
          cause: err?.cause ? String(err.cause?.name ?? '') + ': ' + String(err.cause?.message ?? err.cause) : undefined,
          stack: err?.stack,
        },
      });
    }
  };
  self.postMessage({ event: 'ready' });
}
