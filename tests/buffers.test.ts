// Where received bytes land and how a zero-copy producer waits: recv/recvSync `into` a caller's
// reused buffer (and a buffer of the message's own when the payload does not fit), large payloads
// copied into memory the receiver owns, and loanSync, which waits for room where loan throws.

import assert from "node:assert/strict";
import { Channel, ChannelFullError, InvalidOptionError, type Message } from "../mod.ts";
import { checkPayload, Scope } from "./helpers.ts";

Deno.test("recvSync and recv into a reused buffer: the message's bytes are a view of it", async () => {
  await using s = new Scope();
  const ch = s.open("frames", { mode: "async", codec: "raw" });
  const into = new Uint8Array(1024);
  const first = crypto.getRandomValues(new Uint8Array(1000));
  const second = crypto.getRandomValues(new Uint8Array(600));

  ch.sendSync(first);
  const a = ch.recvSync({ into, timeout: 5_000 });
  assert.equal(a.bytes.buffer, into.buffer);
  assert.deepEqual([...(a.data as Uint8Array)], [...first]);

  ch.sendSync(second);
  const b = await ch.recv({ into, timeout: 5_000 });
  assert.equal(b.bytes.buffer, into.buffer);
  assert.deepEqual([...b.bytes], [...second]);
  // The caller reused the buffer: the first message's view now reads the second's bytes.
  assert.deepEqual([...a.bytes.subarray(0, 600)], [...second]);
});

Deno.test("a payload longer than `into` gets a buffer of its own, copied whole", async () => {
  await using s = new Scope();
  const ch = s.open("big", { mode: "async", codec: "raw" });
  const into = new Uint8Array(16);
  const payload = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) & 0xff);
  ch.sendSync(payload);
  const msg = ch.recvSync({ into, timeout: 5_000 });
  assert.notEqual(msg.bytes.buffer, into.buffer);
  assert.deepEqual(msg.bytes, payload);
  assert.equal(ch.tryRecv(), undefined, "received once, released");
});

Deno.test("large payloads are the receiver's own copy: they outlive their slots, the channel and its segment", async () => {
  await using s = new Scope();
  // Four slots, so that every slot carries several of the messages kept below.
  const ch = s.open("stream", { codec: "raw", capacity: 4 });
  // Sends self-checking payloads of 64-128 KiB, each too big for a receive chunk's remainder.
  await s.spawn("stream_sender.ts", "stream", -1);
  const kept: Message[] = [];
  for (let i = 0; i < 4; i++) kept.push(ch.recvSync({ timeout: 20_000 }));
  for (let i = 0; i < 4; i++) kept.push(await ch.recv({ timeout: 20_000 }));
  for await (const msg of ch) {
    kept.push(msg);
    if (kept.length === 12) break;
  }
  while (kept.length < 16) kept.push(...ch.recvManySync(16 - kept.length, { timeout: 20_000 }));
  // Every slot has been written again since the first messages arrived; now the mapping goes too.
  ch.close();
  Channel.unlink("stream", { prefix: s.prefix });
  const seqs = kept.map((msg) => checkPayload(msg.data as Uint8Array));
  assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), "each kept payload whole, in order");
  for (const msg of kept) assert.equal(msg.bytes.byteLength, (msg.data as Uint8Array).byteLength);
});

Deno.test("into works with msgpack values and is refused on zeroCopy handles and for non-buffers", async () => {
  await using s = new Scope();
  const packed = s.open("packed", { mode: "async" });
  const value = { when: new Date(1_700_000_000_000), big: 2n ** 70n, map: new Map([[1, "a"]]) };
  packed.sendSync(value);
  assert.deepStrictEqual(packed.recvSync({ into: new Uint8Array(256), timeout: 5_000 }).data, value);
  assert.throws(() => packed.recvSync({ into: [] as unknown as Uint8Array }), InvalidOptionError);

  const views = s.open("views", { mode: "async", codec: "raw", zeroCopy: true });
  views.sendSync(new Uint8Array([1]));
  assert.throws(() => views.recvSync({ into: new Uint8Array(8) }), InvalidOptionError);
});

Deno.test("loanSync waits for room where loan throws, and gives up after its timeout", async () => {
  await using s = new Scope();
  const tx = s.open("lent", { mode: "async", codec: "raw", slots: 1 });
  const rx = s.open("lent", { codec: "raw" });
  const one = tx.loanSync(8);
  one[0] = 1;
  tx.commit(one);
  assert.throws(() => tx.loan(8), ChannelFullError, "the sender's one slot is taken");
  assert.throws(() => tx.loanSync(8, { timeout: 20 }), ChannelFullError);
  // Once a receiver released the message, the slot is the sender's to lend again.
  assert.deepEqual([...rx.recvSync({ timeout: 5_000 }).bytes], [1, 0, 0, 0, 0, 0, 0, 0]);
  const two = tx.loanSync(8, { timeout: 5_000 });
  tx.commit(two);
  assert.equal(rx.recvSync({ timeout: 5_000 }).bytes.length, 8);
});
