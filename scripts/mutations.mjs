// The mutations `npm run mutate` applies to the built code (scripts/mutate.mjs):
// each is a bug a user would meet, made by string replacements in
// build/bindings/**/*.js, and each must turn some test red.
//
//   id       a short name (`npm run mutate -- ID...` runs only those)
//   what     the bug, as a user would meet it
//   file     the built file, under build/bindings
//   edits    [find, replace] pairs: `find` must occur exactly once in the file
//            (runs of whitespace in it match any run of whitespace, so the
//            compiler's line breaks do not matter)
//   tests    the test files to run (names under build/test, without .test.js):
//            the files of the mechanism, not the whole suite
//
// When the code a mutation names changes, the run stops before mutating
// anything and says which `find` no longer matches once: update it here.

/** @type {Array<{ id: string, what: string, file: string, edits: Array<[string, string]>, tests: string[] }>} */
export const MUTATIONS = [
  // --- checksums off ------------------------------------------------------------------------
  {
    id: 'journal-record-checksum',
    what: "a journal record's checksum (header and body) is not checked at replay",
    file: 'storage/format.js',
    edits: [['setBigUint64(48, 0n, true);\n    return hash(copy) === h.checksum;', 'setBigUint64(48, 0n, true);\n    return true;']],
    tests: ['damage', 'integrity', 'corruption'],
  },
  {
    id: 'replay-page-image-checksum',
    what: 'a page image in the journal is replayed without checking it against its checksum',
    file: 'storage/journal.js',
    edits: [['if (hash(img) !== expected && !(await', 'if (false && !(await']],
    tests: ['damage', 'integrity', 'corruption'],
  },
  {
    id: 'page-read-checksum',
    what: 'a page read from the page file is not checked against its checksum entry',
    file: 'memory/cache.js',
    edits: [['this.#core.checksum(bytes)) === sum.checksum);', 'this.#core.checksum(bytes)) === sum.checksum || true);']],
    tests: ['corruption', 'integrity', 'mirror-sync'],
  },
  {
    id: 'frame-checksum',
    what: "a frame's checksum is not checked by the codec",
    file: 'messages.js',
    edits: [['if (sum !== h.checksum)', 'if (false)']],
    tests: ['messages', 'transport'],
  },
  // --- generations ------------------------------------------------------------------------------
  {
    id: 'handshake-split-brain-as-peer-behind',
    what: 'both nodes changed since they parted, and the handshake takes the partner for behind (its changes overwritten)',
    file: 'mirror/handshake.js',
    edits: [["return splitBrain(self, peer, 'both nodes changed since they parted');", "return ahead(self, peer, false, 'both nodes changed since they parted');"]],
    tests: ['generations', 'mirror', 'events'],
  },
  {
    id: 'handshake-self-behind',
    what: 'a node whose bitmap generation is its partner\'s current one takes itself for behind',
    file: 'mirror/handshake.js',
    edits: [["return ahead(self, peer, false, 'the partner missed what this node changed since they parted');", "return behind(self, peer, false, 'the partner missed what this node changed since they parted');"]],
    tests: ['generations', 'mirror'],
  },
  {
    id: 'large-read-stale-generation',
    what: "a large read (or a resync's copy) of a block given a freed block's pages returns the freed block's bytes, not zeros",
    file: 'memory/transfer.js',
    edits: [['e.lsn === 0 || e.lsn < block.generation', 'e.lsn === 0']],
    tests: ['bulk'],
  },
  // --- flushes ----------------------------------------------------------------------------------
  {
    id: 'file-flush-noop',
    what: "a file device's flush does not fdatasync",
    file: 'storage/file.js',
    edits: [['await fh.datasync();', '']],
    tests: ['devices', 'storage'],
  },
  {
    id: 'journal-commit-flush-noop',
    what: "the journal's group commit acknowledges without flushing the batch",
    file: 'storage/journal.js',
    edits: [['const aheadDone = filled.value;\n                await this.device.flush();\n                if (this.#fresh)', 'const aheadDone = filled.value;\n                if (this.#fresh)']],
    tests: ['powerloss'],
  },
  {
    id: 'journal-fill-scan-blind',
    what: 'the replay, past a clean end, never sees a later batch after the fill (a lost batch read as the end)',
    file: 'storage/journal.js',
    edits: [['if (words[o + w] !== fill[w])\n                return o << 2;', 'if (words[o + w] !== fill[w])\n                return -1;']],
    tests: ['journal'],
  },
  {
    id: 'intent-failed-save-stays-hot',
    what: "a write intent whose save failed stays hot: the next write in its extent goes on without one, and a crash then loses the page from the resync",
    file: 'memory/intents.js',
    edits: [['if (failed && ', 'if (false && ']],
    tests: ['intents'],
  },
  // --- the pair ---------------------------------------------------------------------------------
  {
    id: 'apply-barrier-no-wait',
    what: 'the secondary applies a block-table change without waiting for the applies before it',
    file: 'mirror/apply.js',
    edits: [['if (isBarrier(msg)) {', 'if (false) {']],
    tests: ['applier'],
  },
  {
    id: 'ack-before-apply',
    what: 'the secondary acknowledges frames at disk level as they arrive, before their apply finished',
    file: 'mirror/apply.js',
    edits: [
      ['const applied = lvl >= AckLevel.DISK ? this.#applied : this.#received;', 'const applied = this.#received;'],
      ['this.#scheduleAck(AckLevel.MEMORY);', 'this.#scheduleAck(AckLevel.DISK);'],
    ],
    tests: ['mirror', 'apply', 'mirror-sync'],
  },
  {
    id: 'unacked-pages-forgotten',
    what: 'pages sent and not yet acknowledged are not recorded as out of sync when the link is lost',
    file: 'memory/out-of-sync.js',
    edits: [['for (const p of e.pages)\n                this.bitmap.set(p);', '']],
    tests: ['mirror', 'mirror-sync'],
  },
  {
    id: 'resync-skipped',
    what: 'a resync sends nothing',
    file: 'mirror/resync.js',
    edits: [['while (!oos.empty && this.#hooks.canRun())', 'while (false)']],
    tests: ['mirror', 'mirror-sync'],
  },
  {
    id: 'range-exclusive-as-shared',
    what: "the range table lets a write pointer's exclusive range through (taken as shared)",
    file: 'memory/ranges.js',
    edits: [["table.insert(first, last, exclusive ? 'exclusive' : 'shared', 0)", "table.insert(first, last, 'shared', 0)"]],
    tests: ['memory', 'signal'],
  },
  {
    id: 'sched-conflict-off',
    what: "the scheduler's conflict table takes every operation as shared: conflicting operations overlap",
    file: 'sched/group.js',
    edits: [['w.entry = this.#table.insert(w.first, w.last, w.mode, 0);', "w.entry = this.#table.insert(w.first, w.last, 'shared', 0);"]],
    tests: ['sched'],
  },
  {
    id: 'quorum-off',
    what: 'a primary cut off from its partner acknowledges alone without the lease',
    file: 'mirror/quorum.js',
    edits: [['return performance.now() < this.#validUntil && (partner === null || this.#outdated === partner);', 'return true;']],
    tests: ['quorum', 'quorum-rules'],
  },
  {
    id: 'fencing-off',
    what: 'a frame of an older epoch is accepted',
    file: 'mirror/pair.js',
    edits: [['if (frame.epoch < this.#replica.epoch && !this.#behindSecondary(frame.message)) {', 'if (false) {']],
    tests: ['quorum', 'quorum-rules'],
  },
  {
    id: 'intent-not-awaited',
    what: 'pages are written before their write intent is durable',
    file: 'memory/commit.js',
    edits: [['if (intent)\n            await intent;', '']],
    tests: ['mirror-sync'],
  },
  {
    id: 'bitmap-not-saved-before-intent-retires',
    what: "the out-of-sync bitmap is saved only at a clean close: a save that retires write intents does not write the bitmap's changed chunks first",
    file: 'memory/replica.js',
    edits: [['const dirty = bitmap.dirtyChunks();', 'const dirty = clean ? bitmap.dirtyChunks() : [];']],
    tests: ['mirror-sync', 'out-of-sync-crash'],
  },
  {
    id: 'late-apply-overtaken',
    what: "a new connection's frames are applied while the previous connection's applies are still under way (a dead partner's last page lands over the resync's)",
    file: 'mirror/pair.js',
    edits: [['this.#applier.hold(earlier.drained());', 'void 0;']],
    tests: ['mirror'],
  },
  {
    id: 'intents-ignored-after-crash',
    what: 'after a crash, the pages of the write intents still hot are not added to the out-of-sync record',
    file: 'memory/replica.js',
    edits: [['#afterCrash(clean, intents, extentPages, blockList) {\n        if (clean)', '#afterCrash(clean, intents, extentPages, blockList) {\n        if (true)']],
    tests: ['out-of-sync-crash'],
  },
  {
    id: 'secondary-accepts-writes',
    what: "a secondary accepts its callers' changes (no NOT_PRIMARY)",
    file: 'memory/memory.js',
    edits: [['if (this.#link && !(this.#link.accepting ?? this.#link.primary)) {', 'if (false) {']],
    tests: ['mirror', 'quorum'],
  },
  {
    id: 'space-refusal-ignored',
    what: "a partner's SPACE_REQUEST refusal is ignored: the primary allocates anyway",
    file: 'mirror/pair.js',
    edits: [['return reply.granted;', 'return true;']],
    tests: ['mirror'],
  },
  {
    id: 'synced-before-plan',
    what: 'the partner is told it holds everything while its resync is still being planned (a heartbeat finds nothing lagging yet)',
    file: 'mirror/pair.js',
    edits: [
      ['if (this.#peer === null || this.#planning === this.#peer)\n            return;', ''],
      ['&& peer && this.#planning !== peer)', '&& peer)'],
    ],
    tests: ['mirror-sync', 'events'],
  },
];
