// The arbiter conformance suite against the in-process arbiter (the witness
// and etcd run it in witness.test.ts and etcd.test.ts).
import { MemoryArbiter } from '../bindings/mirror/arbiter.js';
import { arbiterConformance } from './arbiter-suite.js';

arbiterConformance({
  name: 'in-process arbiter',
  ttlMs: 200,
  expiryMs: 50,
  async open() {
    const arbiter = new MemoryArbiter({ ttlMs: 200 });
    return { client: () => arbiter, close: async () => {} };
  },
});
