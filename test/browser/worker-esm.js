// A twinpage node in a dedicated module worker, importing the package
// unbundled: build/bindings/index.js by URL (workers have no import maps).
import { openMemory, openOpfsStore, messagePortTransport } from '../../build/bindings/index.js';
import { serve } from './node-rpc.js';

serve({ openMemory, openOpfsStore, messagePortTransport });
