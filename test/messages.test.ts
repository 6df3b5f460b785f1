// The frame codec: every message round-trips; every other byte string is a
// BAD_FRAME, never another error; the stream reader reassembles frames at
// every chunk boundary and refuses an oversized length at once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { Core, TwinpageError } from '../bindings/index.js';
import {
  decodeFrame, encodeFrame, FrameArena, FrameReader, MessageType, MESSAGE_TYPES, FRAME_HEADER_SIZE, FRAME_MAGIC,
  messageName, replyTypeOf, isReply, isRequest, SUMS_PER_FRAME, type Message, type MessageOf, type Frame,
} from '../bindings/messages.js';

const core = await Core.create({ frames: 1, ioBytes: 1 << 20 });
const hash = (b: Uint8Array): bigint => core.checksum(b);
const LIMITS = { maxBody: 1 << 16 };

/** The decoded frame, or the error code it threw; any other kind of error fails the test. */
function decoded(bytes: Uint8Array, limits: { maxBody: number; pageSize?: number }, adopt: boolean): Frame | { code: string; message: string } {
  try {
    return decodeFrame(bytes, hash, limits, adopt);
  } catch (err) {
    if (!(err instanceof TwinpageError)) throw new Error(`decodeFrame threw a non-TwinpageError: ${String(err)}`, { cause: err });
    return { code: err.code, message: err.message };
  }
}

/**
 * What decodeFrame makes of `bytes`: checked to be the same whether it
 * copies them or adopts them, and adopted bytes to be as they were after.
 */
function outcome(bytes: Uint8Array, limits: { maxBody: number; pageSize?: number } = LIMITS): Frame | { code: string; message: string } {
  const copied = decoded(bytes, limits, false);
  if (!(bytes instanceof Uint8Array)) return copied;
  const mine = bytes.slice();
  const adopted = decoded(mine, limits, true);
  assert.equal(mine, bytes, 'an adopted frame is as it was after decoding');
  assert.equal(adopted, copied, 'an adopted frame decodes as a copied one');
  return copied;
}

function rejects(bytes: Uint8Array, pattern: RegExp, limits?: { maxBody: number; pageSize?: number }) {
  const r = outcome(bytes, limits);
  assert.ok('code' in r, `expected BAD_FRAME matching ${pattern}, it decoded`);
  assert.is(r.code, 'BAD_FRAME');
  assert.match(r.message, pattern);
}

function throwsCode(fn: () => unknown, code: string, pattern?: RegExp) {
  try {
    fn();
  } catch (err) {
    assert.instance(err, TwinpageError);
    assert.is((err as TwinpageError).code, code);
    if (pattern) assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

/** Sets the checksum of `frame` (in place) to the one its header and body call for. */
function reseal(frame: Uint8Array): Uint8Array {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  v.setBigUint64(32, 0n, true);
  v.setBigUint64(32, hash(frame), true);
  return frame;
}

/** A frame with `body`, a correct checksum, and header fields overridden as asked. */
function forge(type: number, body: Uint8Array, o: { version?: number; flags?: number; reserved?: number; bodyLength?: number; sequence?: bigint } = {}): Uint8Array {
  const f = new Uint8Array(FRAME_HEADER_SIZE + body.length);
  const v = new DataView(f.buffer);
  v.setUint32(0, FRAME_MAGIC, true);
  f[4] = o.version ?? 1;
  f[5] = type;
  v.setUint16(6, o.flags ?? 0, true);
  v.setBigUint64(8, o.sequence ?? 7n, true);
  v.setBigUint64(16, 3n, true);
  v.setUint32(24, o.bodyLength ?? body.length, true);
  v.setUint32(28, o.reserved ?? 0, true);
  f.set(body, FRAME_HEADER_SIZE);
  return reseal(f);
}

function bodyOf(frame: Uint8Array): Uint8Array {
  return frame.slice(FRAME_HEADER_SIZE);
}

// --- arbitraries ---------------------------------------------------------------------

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const guid = fc.uint8Array({ minLength: 16, maxLength: 16 })
  .filter((b) => b.some((x) => x !== 0))
  .map((b) => { const h = hex(b); return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`; });
const u8 = fc.integer({ min: 0, max: 255 });
const u32 = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.bigInt({ min: 0n, max: 0xFFFFFFFFn }).map(Number), fc.constant(0xFFFFFFFF));
const safe = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.maxSafeNat(), fc.constant(Number.MAX_SAFE_INTEGER));
const big64 = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constant((1n << 64n) - 1n), fc.constant(0n));
const generationId = big64.map((g) => g.toString(16).padStart(16, '0'));
const text = fc.string({ unit: 'grapheme', maxLength: 40 });
const code = fc.stringMatching(/^[A-Z][A-Z0-9_]{0,63}$/);
const json = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }) as fc.Arbitrary<Record<string, unknown>>;
const range = safe.chain((offset) => fc.integer({ min: 0, max: Math.min(1 << 30, Number.MAX_SAFE_INTEGER - offset) }).map((length) => ({ offset, length })));
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const blockHeader = (maxPages: number) => fc.integer({ min: 1, max: maxPages }).chain((pages) => fc.record({
  blockId: guid,
  base: fc.integer({ min: 0, max: 0xFFFFFFFF - pages + 1 }),
  pages: fc.constant(pages),
  length: fc.integer({ min: 0, max: pages * 512 }),
  generation: safe,
  policy: json,
}));
const statusReply = <T extends MessageType>(type: T) => fc.oneof(
  fc.record({ type: fc.constant(type), replyTo: safe, status: fc.constant('ok' as const) }),
  fc.record({ type: fc.constant(type), replyTo: safe, status: fc.constantFrom('refused' as const, 'failed' as const), error: fc.record({ code, message: text }) }),
);
const withType = <T extends MessageType, R>(type: T, arb: fc.Arbitrary<R>) => arb.map((r) => ({ type, ...r }));

const ARBITRARIES: { [T in MessageType]: fc.Arbitrary<MessageOf<T>> } = {
  [MessageType.SPACE_REQUEST]: withType(MessageType.SPACE_REQUEST, u32.chain((reservePages) => fc.integer({ min: 0, max: 0x100000000 - reservePages }).map((base) => ({ reservePages, base })))),
  [MessageType.ALLOCATE_MEMORY]: withType(MessageType.ALLOCATE_MEMORY, blockHeader(0xFFFFFFFF)),
  [MessageType.RELEASE_MEMORY]: withType(MessageType.RELEASE_MEMORY, fc.record({ blockId: guid })),
  [MessageType.LOCK_REQUEST]: withType(MessageType.LOCK_REQUEST, fc.tuple(guid, range, fc.constantFrom('shared' as const, 'exclusive' as const))
    .map(([blockId, r, mode]) => ({ blockId, ...r, mode }))),
  [MessageType.READ_HEADER]: withType(MessageType.READ_HEADER, fc.oneof(
    fc.record({ blockId: guid, checksums: fc.constant(false), first: fc.constant(0), count: fc.constant(0) }),
    fc.record({ blockId: guid, checksums: fc.constant(true), first: u32, count: fc.integer({ min: 0, max: SUMS_PER_FRAME }) }),
  )),
  [MessageType.WRITE_PAGE]: withType(MessageType.WRITE_PAGE, fc.oneof(
    fc.record({ blockId: guid, page: u32, lsn: safe, checksum: big64, copy: fc.constant('message' as const), data: fc.uint8Array({ maxLength: 96 }) }),
    fc.record({ blockId: guid, page: u32, lsn: safe, checksum: big64, copy: fc.constantFrom('shared' as const, 'storage' as const), location: range }),
  )),
  [MessageType.SENSE_REQUEST]: fc.constant({ type: MessageType.SENSE_REQUEST as const }),
  [MessageType.ALLOCATE_READ]: withType(MessageType.ALLOCATE_READ, fc.tuple(guid, range).map(([blockId, r]) => ({ blockId, ...r }))),
  [MessageType.ALLOCATE_WRITE]: withType(MessageType.ALLOCATE_WRITE, fc.tuple(guid, range).map(([blockId, r]) => ({ blockId, ...r }))),
  [MessageType.RELEASE_POINTER]: withType(MessageType.RELEASE_POINTER, fc.tuple(guid, range, safe, u32)
    .map(([blockId, r, lsn, pages]) => ({ blockId, ...r, lsn, pages }))),
  [MessageType.SPACE_REPLY]: withType(MessageType.SPACE_REPLY, fc.record({ replyTo: safe, addressFree: safe, storageFree: safe, cacheFree: safe, granted: fc.boolean() })),
  [MessageType.ALLOCATE_MEMORY_REPLY]: statusReply(MessageType.ALLOCATE_MEMORY_REPLY),
  [MessageType.RELEASE_MEMORY_REPLY]: statusReply(MessageType.RELEASE_MEMORY_REPLY),
  [MessageType.LOCK_REPLY]: withType(MessageType.LOCK_REPLY, fc.record({ replyTo: safe, status: fc.constantFrom('granted' as const, 'queued' as const, 'refused' as const) })),
  [MessageType.READ_HEADER_REPLY]: withType(MessageType.READ_HEADER_REPLY, fc.oneof(
    fc.tuple(safe, blockHeader(0xFFFFFFFF)).map(([replyTo, h]) => ({ replyTo, ...h })),
    fc.tuple(safe, blockHeader(16)).chain(([replyTo, h]) => fc.integer({ min: 0, max: h.pages }).chain((first) =>
      fc.array(big64, { maxLength: h.pages - first }).map((checksums) => ({ replyTo, ...h, first, checksums })))),
  )),
  [MessageType.WRITE_PAGE_REPLY]: statusReply(MessageType.WRITE_PAGE_REPLY),
  [MessageType.SENSE_REPLY]: withType(MessageType.SENSE_REPLY, fc.record({
    replyTo: safe, role: fc.constantFrom('primary' as const, 'secondary' as const, 'none' as const), nodeId: guid, generation: generationId,
    history: fc.array(generationId, { maxLength: 6 }), lastApplied: safe, health: fc.constantFrom('ok' as const, 'degraded' as const), lagPages: safe,
  })),
  [MessageType.ALLOCATE_READ_REPLY]: statusReply(MessageType.ALLOCATE_READ_REPLY),
  [MessageType.ALLOCATE_WRITE_REPLY]: statusReply(MessageType.ALLOCATE_WRITE_REPLY),
  [MessageType.RELEASE_POINTER_REPLY]: statusReply(MessageType.RELEASE_POINTER_REPLY),
  [MessageType.HELLO]: withType(MessageType.HELLO, fc.record({
    protocol: u32.filter((p) => p >= 1), pageSize: fc.integer({ min: 9, max: 20 }).map((k) => 2 ** k), nodeId: guid,
    role: fc.constantFrom('primary' as const, 'secondary' as const),
    flags: fc.record({ inconsistent: fc.boolean(), outOfSyncKnown: fc.boolean(), synced: fc.boolean(), crashed: fc.boolean(), discardLocal: fc.boolean() }),
    splitBrain: fc.constantFrom('refuse' as const, 'discard-local' as const, 'discard-younger-primary' as const, 'discard-least-changes' as const, 'discard-zero-changes' as const),
    current: generationId, bitmap: generationId, primarySince: safe, changes: safe, blocks: safe, epoch: safe,
    history: fc.array(generationId, { maxLength: 64 }),
  })),
  [MessageType.OUT_OF_SYNC]: withType(MessageType.OUT_OF_SYNC, fc.record({
    last: fc.boolean(),
    runs: fc.array(fc.integer({ min: 1, max: 0xFFFFFFFF }).chain((pages) => fc.integer({ min: 0, max: 0x100000000 - pages }).map((first) => [first, pages] as [number, number])), { maxLength: 8 }),
  })),
  [MessageType.BLOCK_LIST]: fc.constant({ type: MessageType.BLOCK_LIST as const }),
  [MessageType.BLOCK_IDS]: withType(MessageType.BLOCK_IDS, fc.record({ replyTo: safe, last: fc.boolean(), ids: fc.array(guid, { maxLength: 8 }) })),
  [MessageType.ACK]: withType(MessageType.ACK, fc.record({ applied: safe, level: fc.constantFrom(0 as const, 1 as const, 2 as const) })),
  [MessageType.ERROR]: withType(MessageType.ERROR, fc.record({ replyTo: safe, code, message: text })),
} as never;

const anyMessage: fc.Arbitrary<Message> = fc.oneof(...MESSAGE_TYPES.map((t) => ARBITRARIES[t] as fc.Arbitrary<Message>));
const header = fc.record({ sequence: safe, generation: big64 });

// --- round trips ----------------------------------------------------------------------

test('the message types: ten requests, a reply for each, six transport frames', () => {
  const requests = MESSAGE_TYPES.filter(isRequest);
  assert.equal(requests.map(messageName), [
    'SPACE_REQUEST', 'ALLOCATE_MEMORY', 'RELEASE_MEMORY', 'LOCK_REQUEST', 'READ_HEADER',
    'WRITE_PAGE', 'SENSE_REQUEST', 'ALLOCATE_READ', 'ALLOCATE_WRITE', 'RELEASE_POINTER',
  ]);
  for (const t of requests) {
    const reply = replyTypeOf(t as never);
    assert.ok(MESSAGE_TYPES.includes(reply) && isReply(reply), messageName(reply));
    assert.is(reply, t | 0x80);
  }
  assert.is(MESSAGE_TYPES.length, 26);
  assert.is(messageName(0x7f), '0x7f');
});

for (const type of MESSAGE_TYPES) {
  test(`round trip: ${messageName(type)}`, () => {
    fc.assert(fc.property(ARBITRARIES[type] as fc.Arbitrary<Message>, header, (msg, h) => {
      const bytes = encodeFrame(msg, h, hash);
      const f = decodeFrame(bytes, hash, LIMITS);
      assert.equal(f.message, plain(msg));
      assert.is(f.type, type);
      assert.is(f.sequence, h.sequence);
      assert.is(f.generation, h.generation);
      assert.is(f.bodyLength, bytes.length - FRAME_HEADER_SIZE);
      assert.equal(encodeFrame(f.message, f, hash), bytes);
    }), { numRuns: 150 });
  });
}

test('an arena: frames encoded one after the other in one buffer are the frames encoded alone', () => {
  const arena = new FrameArena();
  fc.assert(fc.property(fc.array(fc.tuple(anyMessage, header), { minLength: 1, maxLength: 20 }), (list) => {
    for (const [m, h] of list) assert.equal(encodeFrame(m, h, hash, arena), encodeFrame(m, h, hash));
  }), { numRuns: 200 });
});

const SEQ0 = { sequence: 1, generation: 1n };

test('the block id last seen is remembered, never trusted: an empty id is refused, first thing in a process or after any other', () => {
  // In a process of its own, so that no GUID was encoded or decoded before.
  const script = `import { encodeFrame } from ${JSON.stringify(new URL('../bindings/messages.js', import.meta.url).href)};
    try { encodeFrame({ type: 0x03, blockId: '' }, { sequence: 1, generation: 1n }, () => 0n); console.log('encoded'); }
    catch (err) { console.log(err.code); }`;
  assert.is(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim(), 'INVALID_ARGUMENT');
  throwsCode(() => encodeFrame({ type: MessageType.RELEASE_MEMORY, blockId: '' }, SEQ0, hash), 'INVALID_ARGUMENT', /blockId/);
  const id = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
  decodeFrame(encodeFrame({ type: MessageType.RELEASE_MEMORY, blockId: id }, SEQ0, hash), hash, LIMITS);
  throwsCode(() => encodeFrame({ type: MessageType.RELEASE_MEMORY, blockId: id.toUpperCase() }, SEQ0, hash), 'INVALID_ARGUMENT', /blockId/);
  throwsCode(() => encodeFrame({ type: MessageType.RELEASE_MEMORY, blockId: '' }, SEQ0, hash), 'INVALID_ARGUMENT', /blockId/);
});

test('an adopted WRITE_PAGE views its frame: the page is not copied', () => {
  const data = new Uint8Array(4096).map((_, i) => i * 3);
  const msg: Message = { type: MessageType.WRITE_PAGE, blockId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', page: 3, lsn: 9, checksum: hash(data), copy: 'message', data };
  const bytes = encodeFrame(msg, { sequence: 1, generation: 5n }, hash);
  const f = decodeFrame(bytes, hash, { maxBody: 8192, pageSize: 4096 }, true);
  const got = (f.message as MessageOf<MessageType.WRITE_PAGE>).data!;
  assert.equal(got, data);
  assert.is(got.buffer, bytes.buffer);
  assert.is(got.byteOffset, bytes.byteOffset + FRAME_HEADER_SIZE + 56);
});

test('round trip with a page size: WRITE_PAGE carries exactly one page', () => {
  const data = new Uint8Array(4096).map((_, i) => i * 7);
  const msg: Message = { type: MessageType.WRITE_PAGE, blockId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', page: 12, lsn: 99, checksum: hash(data), copy: 'message', data };
  const bytes = encodeFrame(msg, { sequence: 1, generation: 5n }, hash);
  const f = decodeFrame(bytes, hash, { maxBody: 8192, pageSize: 4096 });
  assert.equal(f.message, msg);
  bytes.fill(0xEE, FRAME_HEADER_SIZE + 56);
  assert.equal((f.message as MessageOf<MessageType.WRITE_PAGE>).data, data, 'the decoded data does not alias the input');
  rejects(encodeFrame({ ...msg, data: data.subarray(0, 4095) }, { sequence: 1, generation: 5n }, hash), /WRITE_PAGE\.data is 4095 bytes, the page size is 4096/, { maxBody: 8192, pageSize: 4096 });
  const shared: Message = { type: MessageType.WRITE_PAGE, blockId: msg.blockId, page: 1, lsn: 2, checksum: 3n, copy: 'shared', location: { offset: 8192, length: 4096 } };
  assert.equal(decodeFrame(encodeFrame(shared, { sequence: 1, generation: 5n }, hash), hash, { maxBody: 8192, pageSize: 4096 }).message, shared);
  rejects(encodeFrame({ ...shared, location: { offset: 0, length: 512 } }, { sequence: 1, generation: 5n }, hash), /location\.length is 512 bytes/, { maxBody: 8192, pageSize: 4096 });
});

// --- strict decoding, one check at a time ----------------------------------------------

const SEQ = { sequence: 7, generation: 3n };
const release = encodeFrame({ type: MessageType.RELEASE_MEMORY, blockId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' }, SEQ, hash);

test('header: magic, version, type, flags, epoch, lengths, checksum', () => {
  assert.equal(decodeFrame(release, hash, LIMITS).message.type, MessageType.RELEASE_MEMORY);
  const body = bodyOf(release);
  const bad = release.slice(); bad[0] ^= 1;
  rejects(reseal(bad), /magic/);
  rejects(forge(MessageType.RELEASE_MEMORY, body, { version: 2 }), /version 2 is not supported/);
  rejects(forge(0x0B, body), /type 0x0b is unknown/);
  rejects(forge(0x00, body), /type 0x00 is unknown/);
  rejects(forge(0x8B, body), /unknown/);
  rejects(forge(MessageType.RELEASE_MEMORY, body, { flags: 1 }), /flags/);
  assert.is(decodeFrame(forge(MessageType.RELEASE_MEMORY, body, { reserved: 0xFFFFFFF0 }), hash, LIMITS).epoch, 0xFFFFFFF0, 'the epoch field (fencing)');
  assert.is(decodeFrame(encodeFrame({ type: MessageType.SENSE_REQUEST }, { ...SEQ, epoch: 7 }, hash), hash, LIMITS).epoch, 7);
  throwsCode(() => encodeFrame({ type: MessageType.SENSE_REQUEST }, { ...SEQ, epoch: -1 }, hash), 'INVALID_ARGUMENT', /header\.epoch/);
  rejects(forge(MessageType.RELEASE_MEMORY, body, { sequence: 1n << 53n }), /sequence is not a safe integer/);
  rejects(release.subarray(0, 39), /shorter than a frame header/);
  rejects(new Uint8Array(0), /shorter than a frame header/);
  rejects(release.subarray(0, release.length - 1), /declares/);
  const longer = new Uint8Array(release.length + 1); longer.set(release);
  rejects(longer, /declares/);
  rejects(forge(MessageType.RELEASE_MEMORY, body, { bodyLength: 17 }), /declares/);
  rejects(forge(MessageType.RELEASE_MEMORY, body, { bodyLength: 0xFFFFFFFF }), /over the limit/);
  rejects(release, /over the limit of 15/, { maxBody: 15 });
  const flipped = release.slice(); flipped[45] ^= 0x10;
  rejects(flipped, /checksum does not match/);
  const sum = release.slice(); sum[32] ^= 1;
  rejects(sum, /checksum does not match/);
  rejects('nope' as never, /not a Uint8Array/);
  throwsCode(() => decodeFrame(release, hash, { maxBody: -1 }), 'INVALID_ARGUMENT', /maxBody/);
  throwsCode(() => decodeFrame(release, hash, { maxBody: 10, pageSize: 1000 }), 'INVALID_ARGUMENT', /pageSize/);
});

test('a Node Buffer decodes, and the input is left as it was', () => {
  const buf = Buffer.from(release);
  assert.equal(decodeFrame(buf, hash, LIMITS).message.type, MessageType.RELEASE_MEMORY);
  assert.equal(new Uint8Array(buf), release);
  const r = new FrameReader(LIMITS);
  assert.equal(r.push(Buffer.concat([buf, buf.subarray(0, 5)])), [release]);
  assert.equal(r.push(buf.subarray(5)), [release]);
});

test('a hash that throws is a BAD_FRAME, not another error', () => {
  const r = (() => { try { return decodeFrame(release, () => { throw new RangeError('boom'); }, LIMITS); } catch (e) { return e; } })();
  assert.instance(r, TwinpageError);
  assert.is((r as TwinpageError).code, 'BAD_FRAME');
});

test('bodies: GUIDs, enums, booleans, padding, safe integers, trailing bytes', () => {
  const id = guidBytes('0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0');
  rejects(forge(MessageType.RELEASE_MEMORY, new Uint8Array(16)), /RELEASE_MEMORY\.blockId is the nil GUID/);
  rejects(forge(MessageType.RELEASE_MEMORY, id.subarray(0, 15)), /blockId needs 16 bytes/);
  rejects(forge(MessageType.RELEASE_MEMORY, cat(id, [0])), /1 trailing bytes/);
  rejects(forge(MessageType.READ_HEADER, cat(id, [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), /READ_HEADER\.checksums is 2/);
  rejects(forge(MessageType.READ_HEADER, cat(id, [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])), /READ_HEADER\.count is 1 from 0/);
  rejects(forge(MessageType.READ_HEADER, cat(id, [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0])), /READ_HEADER\.count is 65537 from 0/);
  throwsCode(() => encodeFrame({ type: MessageType.READ_HEADER, blockId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', checksums: true, first: 0, count: SUMS_PER_FRAME + 1 }, SEQ, hash), 'INVALID_ARGUMENT', /READ_HEADER\.count/);
  const lock = bodyOf(encodeFrame({ type: MessageType.LOCK_REQUEST, blockId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', offset: 1, length: 2, mode: 'exclusive' }, SEQ, hash));
  lock[32] = 2;
  rejects(forge(MessageType.LOCK_REQUEST, lock), /LOCK_REQUEST\.mode is 2/);
  const ack = new Uint8Array(9); ack[8] = 3;
  rejects(forge(MessageType.ACK, ack), /ACK\.level is 3/);
  const big = new Uint8Array(9); new DataView(big.buffer).setBigUint64(0, 1n << 53n, true);
  rejects(forge(MessageType.ACK, big), /ACK\.applied is not a safe integer/);
  new DataView(big.buffer).setBigUint64(0, (1n << 53n) - 1n, true);
  assert.equal(decodeFrame(forge(MessageType.ACK, big), hash, LIMITS).message, { type: MessageType.ACK, applied: Number.MAX_SAFE_INTEGER, level: 0 });
  const range = new Uint8Array(32); range.set(id); new DataView(range.buffer).setBigUint64(16, (1n << 53n) - 1n, true); range[24] = 1;
  rejects(forge(MessageType.ALLOCATE_READ, range), /ALLOCATE_READ\.length runs past 2\^53/);
  const wp = bodyOf(encodeFrame({ type: MessageType.WRITE_PAGE, blockId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', page: 1, lsn: 1, checksum: 1n, copy: 'storage', location: { offset: 0, length: 4096 } }, SEQ, hash));
  wp[22] = 1;
  rejects(forge(MessageType.WRITE_PAGE, wp), /padding must be zero/);
  wp[22] = 0; wp[20] = 3;
  rejects(forge(MessageType.WRITE_PAGE, wp), /WRITE_PAGE\.copy is 3/);
  rejects(forge(MessageType.SENSE_REQUEST, new Uint8Array(1)), /trailing/);
  const status = new Uint8Array(9); status[8] = 0;
  assert.equal(decodeFrame(forge(MessageType.WRITE_PAGE_REPLY, status), hash, LIMITS).message, { type: MessageType.WRITE_PAGE_REPLY, replyTo: 0, status: 'ok' });
  rejects(forge(MessageType.WRITE_PAGE_REPLY, cat(status, [0, 0, 0, 0])), /trailing/);
  status[8] = 1;
  rejects(forge(MessageType.WRITE_PAGE_REPLY, status), /error\.code\.length needs 4 bytes/);
  rejects(forge(MessageType.WRITE_PAGE_REPLY, cat(status, u32le(3), [0x61, 0x62, 0x63], u32le(0))), /"abc" is not an upper snake case code/);
});

test('bodies: UTF-8 and JSON', () => {
  const err = (msg: number[]) => forge(MessageType.ERROR, cat(new Uint8Array(8), u32le(3), [0x42, 0x41, 0x44], u32le(msg.length), msg));
  assert.equal(decodeFrame(err([0xEF, 0xBB, 0xBF, 0x68, 0x69]), hash, LIMITS).message, { type: MessageType.ERROR, replyTo: 0, code: 'BAD', message: '\uFEFFhi' });
  rejects(err([0xC3, 0x28]), /ERROR\.message is not valid UTF-8/);
  rejects(err([0xED, 0xA0, 0x80]), /not valid UTF-8/); // an encoded surrogate
  rejects(err([0xC0, 0xAF]), /not valid UTF-8/); // overlong
  rejects(forge(MessageType.ERROR, cat(new Uint8Array(8), u32le(3), [0x42, 0x41, 0x44], u32le(10), [0x68])), /ERROR\.message needs 10 bytes, the body has 1 left/);
  rejects(forge(MessageType.ERROR, cat(new Uint8Array(8), u32le(0xFFFFFFFF))), /needs 4294967295 bytes/);
  // JSON travels in a block header's policy: ALLOCATE_MEMORY's last field.
  const alloc = (json: string) => {
    const j = new TextEncoder().encode(json);
    return forge(MessageType.ALLOCATE_MEMORY, cat(guidBytes('0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'), u32le(0), u32le(1), new Uint8Array(8), new Uint8Array(8), u32le(j.length), j));
  };
  assert.equal((decodeFrame(alloc('{"generation":"01","n":[1,2]}'), hash, LIMITS).message as MessageOf<MessageType.ALLOCATE_MEMORY>).policy, { generation: '01', n: [1, 2] });
  rejects(alloc('{"a":'), /ALLOCATE_MEMORY\.policy is not valid JSON/);
  rejects(alloc('[1,2]'), /is not a JSON object/);
  rejects(alloc('null'), /is not a JSON object/);
  rejects(alloc('{"a": 1}'), /not JSON as JSON\.stringify writes it/);
  rejects(alloc('{"a":1,"a":2}'), /not JSON as JSON\.stringify writes it/);
  rejects(alloc('{"a":1.0}'), /not JSON as JSON\.stringify writes it/);
  rejects(alloc('{"b":1,"1":2}'), /not JSON as JSON\.stringify writes it/);
  rejects(alloc(`{"a":${'['.repeat(200000)}${']'.repeat(200000)}}`), /BAD_FRAME|not/, { maxBody: 1 << 19 });
  // HELLO: typed fields, each checked.
  const hello = (fields: { pageSize?: number; flags?: number; policy?: number; pad?: number; count?: number; extra?: number }) => forge(MessageType.HELLO, cat(
    u32le(2), u32le(fields.pageSize ?? 4096), guidBytes('0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'),
    [1, fields.flags ?? 0, fields.policy ?? 0, fields.pad ?? 0], new Uint8Array(48), u32le(fields.count ?? 0), new Uint8Array(fields.extra ?? 0)));
  const h = decodeFrame(hello({ flags: 0b10011 }), hash, LIMITS).message as MessageOf<MessageType.HELLO>;
  assert.equal([h.role, h.flags, h.splitBrain, h.current, h.history], ['secondary', { inconsistent: true, outOfSyncKnown: true, synced: false, crashed: false, discardLocal: true }, 'refuse', '0000000000000000', []]);
  rejects(hello({ pageSize: 4097 }), /HELLO\.pageSize is 4097/);
  rejects(hello({ flags: 0x20 }), /HELLO\.flags has unknown bits 0x20/);
  rejects(hello({ policy: 5 }), /HELLO\.splitBrain is 5/);
  rejects(hello({ pad: 1 }), /HELLO\.padding must be zero/);
  rejects(hello({ count: 2, extra: 8 }), /HELLO\.history has 8 bytes for 2 generation ids/);
  rejects(hello({ count: 65, extra: 65 * 8 }), /HELLO\.history has 65 entries/);
});

test('bodies: block headers, checksum lists and histories must fit', () => {
  const block = { type: MessageType.ALLOCATE_MEMORY, blockId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', base: 10, pages: 2, length: 8192, generation: 4, policy: { name: 'default' } } as const;
  const bytes = encodeFrame(block, SEQ, hash);
  assert.equal(decodeFrame(bytes, hash, { maxBody: 1000, pageSize: 4096 }).message, block);
  rejects(bytes, /ALLOCATE_MEMORY\.length is 8192 bytes, more than 2 pages hold/, { maxBody: 1000, pageSize: 2048 });
  const body = bodyOf(bytes);
  new DataView(body.buffer).setUint32(20, 0, true);
  rejects(forge(MessageType.ALLOCATE_MEMORY, body), /pages is 0/);
  new DataView(body.buffer).setUint32(16, 0xFFFFFFFF, true);
  new DataView(body.buffer).setUint32(20, 2, true);
  rejects(forge(MessageType.ALLOCATE_MEMORY, body), /ends by page 2\^32/);
  const reply = bodyOf(encodeFrame({ ...block, type: MessageType.READ_HEADER_REPLY, replyTo: 1, checksums: [1n, 2n] }, SEQ, hash));
  rejects(forge(MessageType.READ_HEADER_REPLY, reply.subarray(0, reply.length - 4)), /has 12 bytes from page 0/);
  new DataView(reply.buffer, reply.byteOffset).setUint32(reply.length - 20, 1, true);
  rejects(forge(MessageType.READ_HEADER_REPLY, reply), /has 16 bytes from page 1: .* within the block's 2 pages/);
  const sense = bodyOf(encodeFrame({ type: MessageType.SENSE_REPLY, replyTo: 1, role: 'primary', nodeId: block.blockId, generation: '00000000000000ff', history: ['0000000000000001'], lastApplied: 5, health: 'ok', lagPages: 0 }, SEQ, hash));
  assert.is(sense.length, 62);
  new DataView(sense.buffer).setUint32(50, 0x20000000, true);
  rejects(forge(MessageType.SENSE_REPLY, sense), /history has 8 bytes for 536870912 generation ids/);
});

test('the encoder refuses what the decoder would refuse, naming the field', () => {
  const id = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
  const enc = (m: unknown, h: unknown = SEQ) => () => encodeFrame(m as Message, h as never, hash);
  throwsCode(enc({ type: MessageType.RELEASE_MEMORY, blockId: id.toUpperCase() }), 'INVALID_ARGUMENT', /RELEASE_MEMORY\.blockId/);
  throwsCode(enc({ type: MessageType.RELEASE_MEMORY, blockId: '00000000-0000-0000-0000-000000000000' }), 'INVALID_ARGUMENT', /nil GUID/);
  throwsCode(enc({ type: MessageType.SPACE_REQUEST, reservePages: -1 }), 'INVALID_ARGUMENT', /reservePages/);
  throwsCode(enc({ type: MessageType.SPACE_REQUEST, reservePages: 2 ** 32 }), 'INVALID_ARGUMENT', /reservePages/);
  throwsCode(enc({ type: MessageType.ACK, applied: 2 ** 53, level: 0 }), 'INVALID_ARGUMENT', /ACK\.applied/);
  throwsCode(enc({ type: MessageType.ACK, applied: 1.5, level: 0 }), 'INVALID_ARGUMENT', /ACK\.applied/);
  throwsCode(enc({ type: MessageType.ACK, applied: 1, level: 3 }), 'INVALID_ARGUMENT', /ACK\.level/);
  throwsCode(enc({ type: MessageType.WRITE_PAGE, blockId: id, page: 0, lsn: 0, checksum: 0n, copy: 'message' }), 'INVALID_ARGUMENT', /WRITE_PAGE\.data/);
  throwsCode(enc({ type: MessageType.WRITE_PAGE, blockId: id, page: 0, lsn: 0, checksum: 0n, copy: 'shared', data: new Uint8Array(1) }), 'INVALID_ARGUMENT', /WRITE_PAGE\.data must be absent/);
  throwsCode(enc({ type: MessageType.WRITE_PAGE, blockId: id, page: 0, lsn: 0, checksum: 1n << 64n, copy: 'message', data: new Uint8Array(1) }), 'INVALID_ARGUMENT', /WRITE_PAGE\.checksum/);
  throwsCode(enc({ type: MessageType.WRITE_PAGE_REPLY, replyTo: 1, status: 'ok', error: { code: 'X', message: '' } }), 'INVALID_ARGUMENT', /error must be absent/);
  throwsCode(enc({ type: MessageType.WRITE_PAGE_REPLY, replyTo: 1, status: 'failed' }), 'INVALID_ARGUMENT', /WRITE_PAGE_REPLY\.error/);
  throwsCode(enc({ type: MessageType.ERROR, replyTo: 0, code: 'bad code', message: '' }), 'INVALID_ARGUMENT', /ERROR\.code/);
  throwsCode(enc({ type: MessageType.ERROR, replyTo: 0, code: 'BAD', message: 'a\uD800b' }), 'INVALID_ARGUMENT', /ERROR\.message/);
  throwsCode(enc({ type: MessageType.SENSE_REPLY, replyTo: 1, role: 'primary', nodeId: id, generation: 'FF', history: [], lastApplied: 0, health: 'ok', lagPages: 0 }), 'INVALID_ARGUMENT', /SENSE_REPLY\.generation/);
  throwsCode(enc({ type: MessageType.READ_HEADER_REPLY, replyTo: 1, blockId: id, base: 0, pages: 2, length: 1, generation: 1, policy: {}, checksums: [1n, 2n, 3n] }), 'INVALID_ARGUMENT', /checksums/);
  throwsCode(enc({ type: MessageType.ALLOCATE_MEMORY, blockId: id, base: 0, pages: 1, length: 1, generation: 1, policy: { n: 1n } }), 'INVALID_ARGUMENT', /policy cannot be written as JSON/);
  throwsCode(enc({ type: MessageType.ALLOCATE_MEMORY, blockId: id, base: 0, pages: 1, length: 1, generation: 1, policy: [] }), 'INVALID_ARGUMENT', /policy must be a JSON object/);
  const hello = {
    type: MessageType.HELLO, protocol: 2, pageSize: 4096, nodeId: id, role: 'primary', splitBrain: 'refuse',
    flags: { inconsistent: false, outOfSyncKnown: true, synced: false, crashed: false, discardLocal: false },
    current: '0000000000000001', bitmap: '0000000000000000', primarySince: 0, changes: 0, blocks: 0, epoch: 0, history: [],
  } as const;
  throwsCode(enc({ ...hello, pageSize: 1000 }), 'INVALID_ARGUMENT', /HELLO\.pageSize/);
  throwsCode(enc({ ...hello, flags: { ...hello.flags, synced: 1 as never } }), 'INVALID_ARGUMENT', /HELLO\.flags\.synced/);
  throwsCode(enc({ ...hello, history: Array(65).fill('0000000000000001') }), 'INVALID_ARGUMENT', /HELLO\.history/);
  throwsCode(enc({ type: MessageType.OUT_OF_SYNC, last: true, runs: [[0xFFFFFFFF, 2]] }), 'INVALID_ARGUMENT', /OUT_OF_SYNC\.runs\[0\]\[1\]/);
  throwsCode(enc({ type: MessageType.SPACE_REQUEST, reservePages: 2, base: 0xFFFFFFFF }), 'INVALID_ARGUMENT', /SPACE_REQUEST\.base/);
  throwsCode(enc({ type: 0x55 }), 'INVALID_ARGUMENT', /not a message type/);
  throwsCode(enc({}), 'INVALID_ARGUMENT', /not a message type/);
  throwsCode(enc(null), 'INVALID_ARGUMENT', /message must be an object/);
  throwsCode(enc({ type: MessageType.SENSE_REQUEST }, { sequence: -1, generation: 0n }), 'INVALID_ARGUMENT', /header\.sequence/);
  throwsCode(enc({ type: MessageType.SENSE_REQUEST }, { sequence: 0, generation: 1n << 64n }), 'INVALID_ARGUMENT', /header\.generation/);
});

// --- fuzz: random and mutated frames -----------------------------------------------------

/** xorshift32: fast, seeded, reproducible. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
  return { next, below: (n: number) => next() % n, chance: (p: number) => next() / 0x1_0000_0000 < p };
}

test('100k random and mutated frames: each decodes and re-encodes identically, or is a BAD_FRAME', () => {
  const random = rng(0x7E1E);
  const corpus = fc.sample(fc.tuple(anyMessage, header), { numRuns: 3000, seed: 42 }).map(([m, h]) => encodeFrame(m, h, hash));
  const stats = { runs: 0, accepted: 0, rejected: 0, bodyRejected: 0, mutatedAccepted: 0 };
  const reasons = new Map<string, number>();

  const check = (bytes: Uint8Array, limits: { maxBody: number; pageSize?: number }, mutated: boolean) => {
    stats.runs++;
    const r = outcome(bytes, limits);
    if ('code' in r) {
      assert.is(r.code, 'BAD_FRAME', r.message);
      stats.rejected++;
      const reason = r.message.replace(/[0-9]+|"[^"]*"/g, '#').slice(0, 60);
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      if (/\.\w+ |trailing/.test(r.message) && !/checksum does not match/.test(r.message)) stats.bodyRejected++;
      return;
    }
    stats.accepted++;
    if (mutated) stats.mutatedAccepted++;
    const again = encodeFrame(r.message, r, hash);
    if (again.length !== bytes.length || again.some((b, i) => b !== bytes[i])) {
      assert.unreachable(`${messageName(r.type)} decoded but re-encodes differently`);
    }
  };

  const setBodyLength = (f: Uint8Array) => { if (f.length >= FRAME_HEADER_SIZE) new DataView(f.buffer, f.byteOffset).setUint32(24, f.length - FRAME_HEADER_SIZE, true); return f; };
  const randomBytes = (n: number) => { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = random.below(256); return b; };

  for (let i = 0; i < 110_000; i++) {
    const base = corpus[random.below(corpus.length)];
    const limits = random.chance(0.1) ? { maxBody: LIMITS.maxBody, pageSize: 512 } : LIMITS;
    let f: Uint8Array;
    let seal = true;
    switch (random.below(9)) {
      case 0: { // random bytes, sometimes behind a plausible header
        f = randomBytes(random.below(160));
        if (random.chance(0.7) && f.length >= FRAME_HEADER_SIZE) {
          const v = new DataView(f.buffer);
          v.setUint32(0, FRAME_MAGIC, true); f[4] = 1; f[5] = MESSAGE_TYPES[random.below(MESSAGE_TYPES.length)];
          v.setUint16(6, 0, true); v.setUint32(28, 0, true); f[15] = 0;
          setBodyLength(f);
        } else seal = random.chance(0.5);
        break;
      }
      case 1: { // bit flips anywhere, checksum left as it is
        f = base.slice();
        for (let k = 1 + random.below(3); k > 0; k--) f[random.below(f.length)] ^= 1 << random.below(8);
        seal = false;
        break;
      }
      case 2: case 3: { // bit flips in the body, checksum recomputed: the body decoder must judge
        f = base.slice();
        if (f.length === FRAME_HEADER_SIZE) f = setBodyLength(extend(f, randomBytes(1 + random.below(8))));
        for (let k = 1 + random.below(2); k > 0; k--) f[FRAME_HEADER_SIZE + random.below(f.length - FRAME_HEADER_SIZE)] ^= 1 << random.below(8);
        break;
      }
      case 4: { // a body byte set to a random or edge value
        f = base.slice();
        if (f.length > FRAME_HEADER_SIZE) f[FRAME_HEADER_SIZE + random.below(f.length - FRAME_HEADER_SIZE)] = [0, 1, 2, 3, 0x7F, 0x80, 0xFF, random.below(256)][random.below(8)];
        break;
      }
      case 5: { // truncated, with and without the length field following
        f = base.slice(0, random.below(base.length));
        if (random.chance(0.7)) setBodyLength(f); else seal = random.chance(0.5);
        break;
      }
      case 6: { // extended, with and without the length field following
        f = extend(base, randomBytes(1 + random.below(12)));
        if (random.chance(0.7)) setBodyLength(f);
        break;
      }
      case 7: { // a length field edited: the header's, or a u32 inside the body
        f = base.slice();
        const v = new DataView(f.buffer);
        if (random.chance(0.3) || f.length < FRAME_HEADER_SIZE + 4) v.setUint32(24, [0, 1, f.length, 0xFFFFFFFF, random.next()][random.below(5)], true);
        else {
          const at = FRAME_HEADER_SIZE + random.below(f.length - FRAME_HEADER_SIZE - 3);
          const old = v.getUint32(at, true);
          v.setUint32(at, [0, 1, old + 1, old - 1, f.length - at, 0xFFFFFFFF, 0x80000000, random.below(300)][random.below(8)] >>> 0, true);
        }
        break;
      }
      default: { // a body from another frame of another (or the same) type
        const other = corpus[random.below(corpus.length)];
        f = extend(base.slice(0, FRAME_HEADER_SIZE), other.subarray(FRAME_HEADER_SIZE));
        setBodyLength(f);
        break;
      }
    }
    if (seal && f.length >= FRAME_HEADER_SIZE && f.length <= (1 << 20)) reseal(f);
    check(f, limits, true);
  }
  for (const f of corpus) check(f, LIMITS, false);

  if (process.env.FUZZ_STATS) console.log(stats, [...reasons].sort((a, b) => b[1] - a[1]));
  assert.ok(stats.runs > 100_000);
  assert.ok(stats.mutatedAccepted > 1000, `mutations accepted: ${stats.mutatedAccepted}`);
  assert.ok(stats.bodyRejected > 10_000, `rejected by the body decoder: ${stats.bodyRejected}`);
  assert.ok(reasons.size > 40, `distinct rejections: ${reasons.size}`);
});

test('fast-check: any byte string is a frame that re-encodes to itself, or a BAD_FRAME', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (b, sealIt) => {
    if (sealIt && b.length >= FRAME_HEADER_SIZE) reseal(b);
    const r = outcome(b);
    if ('code' in r) assert.is(r.code, 'BAD_FRAME');
    else assert.equal(encodeFrame(r.message, r, hash), b);
  }), { numRuns: 2000 });
});

// --- the stream reader --------------------------------------------------------------------

const stream = fc.sample(fc.tuple(anyMessage, header), { numRuns: 6, seed: 7 }).map(([m, h]) => encodeFrame(m, h, hash))
  .concat([encodeFrame({ type: MessageType.SENSE_REQUEST }, SEQ, hash)]);
const wire = cat(...stream);

function feed(reader: FrameReader, chunks: Uint8Array[]): Uint8Array[] {
  return chunks.flatMap((c) => reader.push(c));
}

test('FrameReader: a stream split at every boundary reassembles', () => {
  for (let i = 0; i <= wire.length; i++) {
    const r = new FrameReader(LIMITS);
    assert.equal(feed(r, [wire.subarray(0, i), wire.subarray(i)]), stream, `split at ${i}`);
    assert.is(r.buffered, 0);
    r.end();
  }
  for (let i = 0; i <= stream[0].length + stream[1].length; i++) {
    for (let j = i; j <= stream[0].length + stream[1].length + 1; j++) {
      const r = new FrameReader(LIMITS);
      assert.equal(feed(r, [wire.subarray(0, i), wire.subarray(i, j), wire.subarray(j)]), stream);
    }
  }
  const r = new FrameReader(LIMITS);
  const out = feed(r, Array.from(wire, (b) => Uint8Array.of(b)));
  assert.equal(out, stream, 'one byte at a time');
  for (const f of out) assert.ok(decodeFrame(f, hash, LIMITS));
});

test('FrameReader: random chunkings reassemble; frames are fresh arrays', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: wire.length }), { maxLength: 12 }), (cuts) => {
    const points = [0, ...cuts.sort((a, b) => a - b), wire.length];
    const chunks = points.slice(1).map((p, i) => wire.subarray(points[i], p));
    const r = new FrameReader(LIMITS);
    const out = feed(r, chunks);
    assert.equal(out, stream);
    for (const f of out) assert.is.not(f.buffer, wire.buffer);
  }), { numRuns: 300 });
});

test('FrameReader: an oversized declared length throws at the header, before the body', () => {
  const head = forge(MessageType.WRITE_PAGE, new Uint8Array(0), { bodyLength: 0xFFFFFFFF }).subarray(0, FRAME_HEADER_SIZE);
  const r = new FrameReader({ maxBody: 4096 });
  assert.equal(r.push(head.subarray(0, 39)), []);
  assert.is(r.buffered, 39);
  throwsCode(() => r.push(head.subarray(39)), 'BAD_FRAME', /over the limit of 4096/);
  assert.is(r.buffered, 0);
  throwsCode(() => r.push(new Uint8Array(1)), 'BAD_FRAME', /already failed/);

  const just = new FrameReader({ maxBody: 4096 });
  const over = forge(MessageType.BLOCK_LIST, new Uint8Array(0), { bodyLength: 4097 }).subarray(0, FRAME_HEADER_SIZE);
  throwsCode(() => just.push(cat(stream[0], over)), 'BAD_FRAME', /body of 4097 bytes/);

  const garbage = new FrameReader(LIMITS);
  throwsCode(() => garbage.push(new TextEncoder().encode('GET / HTTP/1.1\r\nHost: example.org\r\n\r\n....')), 'BAD_FRAME', /magic/);
});

test('FrameReader: the end of a stream inside a frame is a BAD_FRAME', () => {
  const r = new FrameReader(LIMITS);
  assert.equal(r.push(wire.subarray(0, stream[0].length + 3)), [stream[0]]);
  throwsCode(() => r.end(), 'BAD_FRAME', /ended 3 bytes into a frame/);
  throwsCode(() => new FrameReader({ maxBody: 2 ** 32 }), 'INVALID_ARGUMENT', /maxBody/);
});

// --- helpers ------------------------------------------------------------------------------

/** A deep copy with ordinary prototypes (fast-check makes some objects with a null prototype). */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) Object.defineProperty(out, k, { value: plain((v as Record<string, unknown>)[k]), enumerable: true, writable: true, configurable: true });
  return out;
}

function cat(...parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function extend(a: Uint8Array, b: Uint8Array): Uint8Array {
  return cat(a, b);
}

function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

function guidBytes(id: string): Uint8Array {
  const h = id.replace(/-/g, '');
  return Uint8Array.from({ length: 16 }, (_, i) => parseInt(h.slice(i * 2, i * 2 + 2), 16));
}

test.run();
