// A twinpage node in a dedicated module worker, bundled by esbuild
// (platform browser, format esm) with 'twinpage' resolved to this package.
import { openMemory, openOpfsStore, messagePortTransport } from 'twinpage';
import { serve } from './node-rpc.js';

serve({ openMemory, openOpfsStore, messagePortTransport });
