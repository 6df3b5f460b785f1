// The page side of the browser test: starts twinpage nodes in dedicated
// workers and relays the test's calls to them (window.harness, driven by
// test/browser.test.ts through playwright-core).
//
// page.html?variant=esm     workers import build/bindings/index.js unbundled
// page.html?variant=bundle  workers run the esbuild bundle of worker-bundle.js

const variant = new URLSearchParams(location.search).get('variant');
if (variant !== 'esm' && variant !== 'bundle') throw new Error(`page.html needs ?variant=esm or ?variant=bundle, got ${variant}`);
const workerUrl = variant === 'esm' ? '/test/browser/worker-esm.js' : '/bundle/worker-bundle.js';
const libraryUrl = variant === 'esm' ? '/build/bindings/index.js' : '/bundle/page-bundle.js';

const CALL_TIMEOUT_MS = 20_000;

class RemoteError extends Error {
  constructor(node, cmd, e) {
    super(`${node} ${cmd}: ${e.code ? `[${e.code}] ` : ''}${e.message}${e.cause ? ` (cause ${e.cause})` : ''}`);
    this.remote = e;
  }
}

/** One twinpage node in a dedicated module worker. */
class Node {
  #worker;
  #pending = new Map();
  #next = 1;
  terminated = false;
  onEvent = null;

  constructor(name) {
    this.name = name;
    this.#worker = new Worker(workerUrl, { type: 'module', name });
    this.ready = new Promise((resolve, reject) => {
      this.#worker.onerror = (event) => {
        const error = new Error(`worker ${name} (${workerUrl}) failed: ${event.message ?? 'it did not load (see the console)'}`);
        reject(error);
        this.#failAll(error);
      };
      this.#worker.onmessage = ({ data }) => {
        if (data.event === 'ready') return resolve();
        if (data.event) return this.onEvent?.(data);
        const pending = this.#pending.get(data.id);
        if (!pending) return;
        this.#pending.delete(data.id);
        clearTimeout(pending.timer);
        if (data.error) pending.reject(new RemoteError(name, pending.cmd, data.error));
        else pending.resolve(data.value);
      };
    });
    this.ready.catch(() => {});
  }

  async call(cmd, args = {}, transfer = []) {
    await this.ready;
    if (this.terminated) throw new Error(`${this.name} was terminated`);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.name} ${cmd}: no answer in ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.#pending.set(id, { cmd, resolve, reject, timer });
      this.#worker.postMessage({ id, cmd, args }, transfer);
    });
  }

  /** Kills the worker at once (no close, no flush): its OPFS handles and port die with it. */
  terminate() {
    this.terminated = true;
    this.#worker.terminate();
    this.#failAll(new Error(`${this.name} was terminated`));
  }

  #failAll(error) {
    for (const { reject, timer } of this.#pending.values()) { clearTimeout(timer); reject(error); }
    this.#pending.clear();
  }
}

const nodes = {};

window.harness = {
  variant,

  environment() {
    return {
      crossOriginIsolated: self.crossOriginIsolated,
      sharedArrayBuffer: typeof SharedArrayBuffer === 'function',
      opfs: typeof navigator.storage?.getDirectory === 'function',
      userAgent: navigator.userAgent,
    };
  },

  /** The package in the page itself (main thread): a MemoryStore memory, written and read. */
  async mainThread() {
    const { openMemory, MemoryStore } = await import(libraryUrl);
    const memory = await openMemory({ store: new MemoryStore(), cacheBytes: 1 << 20 });
    const block = await memory.allocate(20_000);
    await memory.write(block.id, 5000, new Uint8Array([7, 8, 9]));
    const back = Array.from(await memory.read(block.id, 4999, 5));
    await memory.close();
    return back;
  },

  /**
   * Two nodes in two workers, paired over a MessageChannel whose ends both
   * get the same SharedArrayBuffer; b (secondary) and a (primary), each on
   * its own OPFS folder.
   */
  async startPair({ dirA, dirB, copy, sharedBytes, chunkBytes, heartbeatMs, timeoutMs }) {
    const shared = new SharedArrayBuffer(sharedBytes);
    const { port1, port2 } = new MessageChannel();
    nodes.b = new Node('b');
    nodes.a = new Node('a');
    const [b, a] = await Promise.all([
      nodes.b.call('open', { dir: dirB, role: 'secondary', port: port2, shared, copy, chunkBytes, heartbeatMs, timeoutMs }, [port2]),
      nodes.a.call('open', { dir: dirA, role: 'primary', port: port1, shared, copy, chunkBytes, heartbeatMs, timeoutMs }, [port1]),
    ]);
    return { a, b };
  },

  /** One node on its own (no mirror) on an OPFS folder. */
  async openSolo({ name, dir, chunkBytes }) {
    nodes[name] = new Node(name);
    return nodes[name].call('open', { dir, chunkBytes });
  },

  call({ name, cmd, args }) {
    const node = nodes[name];
    if (!node) throw new Error(`no node ${name}`);
    return node.call(cmd, args);
  },

  /**
   * Has node `name` write chunks in parallel streams and terminates its
   * worker as soon as the page has seen `killAfter` of them acknowledged
   * (more may be acknowledged, or half sent, at that moment).
   */
  streamAndKill({ name, id, first, count, streams, killAfter }) {
    const node = nodes[name];
    const acked = [];
    return new Promise((resolve, reject) => {
      node.onEvent = (data) => {
        if (data.event !== 'acked' || node.terminated) return;
        acked.push(data.i);
        if (acked.length >= killAfter) {
          node.terminate();
          resolve({ acked: acked.slice() });
        }
      };
      node.call('stream', { id, first, count, streams }).then(
        () => reject(new Error(`${name} wrote all ${count} chunks before ${killAfter} acknowledgements reached the page`)),
        (err) => { if (!node.terminated) reject(err); },
      );
    });
  },
};

window.harnessReady = true;
