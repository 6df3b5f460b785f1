// The limit pair's secondary: a child process (`node limit-secondary.js DIR`)
// that takes records from its primary over TCP on loopback, appends them to
// its own group-commit journal (limit-journal.ts) and acknowledges them
// cumulatively. It prints {"event":"listening","port":N} once it listens.
//
// A connection opens with a hello: u8 mode ('m' memory, 'd' disk), u8 name
// length, the journal's file name in DIR. The secondary answers with an ack
// of 0 once its journal is open. Then records (the journal's own format,
// length first) come in and u32 LE acks go out: at `memory` durability the
// highest record received (after each read from the socket), at `disk` the
// highest record flushed (after each fdatasync).
import { createServer, type Socket } from 'node:net';
import { basename, join } from 'node:path';
import { LimitJournal, RECORD_HEADER, recordCrc } from './limit-journal.js';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node limit-secondary.js DIR');
  process.exit(2);
}

function ack(socket: Socket, seq: number): void {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(seq >>> 0, 0);
  socket.write(b);
}

function serve(socket: Socket): void {
  socket.setNoDelay(true);
  let journal: LimitJournal | null = null;
  let mode: 'm' | 'd' = 'd';
  let buf: Buffer = Buffer.alloc(0);
  let expected = 1;
  const fail = (why: string) => {
    console.error(`limit-secondary: ${why}`);
    socket.destroy();
  };
  const take = () => {
    let at = 0;
    let last = 0;
    let flushed: Promise<void> | null = null;
    while (buf.length - at >= RECORD_HEADER) {
      const total = RECORD_HEADER + buf.readUInt32LE(at);
      if (buf.length - at < total) break;
      const rec = buf.subarray(at, at + total);
      if (rec.readUInt32LE(12) !== recordCrc(rec)) return fail(`record at seq ${expected} fails its crc32`);
      const seq = rec.readUInt32LE(4);
      if (seq !== expected) return fail(`record ${seq} where ${expected} was due`);
      expected++;
      flushed = journal!.append(rec);
      last = seq;
      at += total;
    }
    buf = at === buf.length ? Buffer.alloc(0) : buf.subarray(at);
    if (!last) return;
    if (mode === 'm') {
      ack(socket, last);
      flushed!.catch((err) => fail(`journal: ${(err as Error).message}`));
    } else {
      flushed!.then(() => { if (!socket.destroyed) ack(socket, last); }, (err) => fail(`journal: ${(err as Error).message}`));
    }
  };
  socket.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    if (journal) return take();
    if (buf.length < 2 || buf.length < 2 + buf[1]) return;
    mode = buf[0] === 0x6D ? 'm' : 'd';
    const name = basename(buf.subarray(2, 2 + buf[1]).toString('utf8'));
    buf = buf.subarray(2 + buf[1]);
    socket.pause();
    LimitJournal.create(join(dir, name)).then((j) => {
      journal = j;
      ack(socket, 0);
      socket.resume();
      take();
    }, (err) => fail(`cannot create journal ${name}: ${(err as Error).message}`));
  });
  socket.on('error', () => {});
  socket.on('close', () => void journal?.close());
}

const server = createServer(serve);
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(JSON.stringify({ event: 'listening', port: typeof address === 'object' && address ? address.port : 0 }) + '\n');
});
// The bench closes stdin (or dies): leave with it.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
