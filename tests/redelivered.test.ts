// A sender's `redelivered` option: a message it marks as a possible repeat (a relay, a retry after an
// unknown outcome) reaches a receiver in another process with `msg.redelivered` true, whichever way
// either side sends or receives; an unmarked one arrives false; a receiver killed holding a marked
// message hands it on still marked. A bad value is InvalidOptionError and sends nothing.

import assert from "node:assert/strict";
import { InvalidOptionError, type Message } from "../mod.ts";
import { Scope, within } from "./helpers.ts";

const marks = (got: Message<unknown>[]) => got.map((m) => [m.data, m.redelivered]);

Deno.test("marked sends from another process arrive redelivered: single, batch and for await receives", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async" });
  const sender = await s.spawn("peer.ts", "jobs", { mode: "async" });
  const send = (values: unknown[], opts = {}) => sender.ask("send", { values, opts });

  await send([{ n: 0 }]);
  await send([{ n: 1 }], { redelivered: true });
  await send([{ n: 2 }], { redelivered: false });
  const single = [await ch.recv(), await ch.recv(), await ch.recv()];
  assert.deepEqual(marks(single), [[{ n: 0 }, false], [{ n: 1 }, true], [{ n: 2 }, false]]);

  await sender.ask("sendMany", { values: [{ n: 3 }, { n: 4 }], opts: { redelivered: true } });
  await sender.ask("sendMany", { values: [{ n: 5 }] });
  await send([{ n: 6 }], { redelivered: true });
  assert.deepEqual(marks(ch.tryRecvMany(64)), [
    [{ n: 3 }, true],
    [{ n: 4 }, true],
    [{ n: 5 }, false],
    [{ n: 6 }, true],
  ]);

  await send([{ n: 7 }], { redelivered: true });
  await send([{ n: 8 }]);
  const iterated: Message<unknown>[] = [];
  for await (const msg of ch) {
    iterated.push(msg);
    if (iterated.length === 2) break;
  }
  assert.deepEqual(marks(iterated), [[{ n: 7 }, true], [{ n: 8 }, false]]);

  // Ack mode: the mark travels with a message its sender waits on.
  const acked = sender.ask("send", { values: [{ n: 9 }], opts: { mode: "ack", redelivered: true } });
  assert.deepEqual(marks([await ch.recv()]), [[{ n: 9 }, true]]);
  assert.deepEqual(await within(acked, "the ack send of a marked message"), { sent: 1 });
  assert.equal(ch.stat().counters.redelivered, 0, "a sender's mark is no recovery's redelivery");
});

Deno.test("sendSync, trySend and commit mark for a receiver in another process", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async" });
  const receiver = await s.spawn("peer.ts", "jobs", { mode: "async" });
  const recv = async () => {
    const { data, redelivered } = await receiver.ask("recv", { timeout: 10_000 });
    return [data, redelivered];
  };

  ch.sendSync({ n: 0 }, { redelivered: true });
  ch.trySend({ n: 1 }, { redelivered: true });
  ch.trySend({ n: 2 });
  assert.deepEqual([await recv(), await recv(), await recv()], [[{ n: 0 }, true], [{ n: 1 }, true], [
    { n: 2 },
    false,
  ]]);

  const raw = s.open("bytes", { mode: "async", codec: "raw" });
  const rawReceiver = await s.spawn("peer.ts", "bytes", { mode: "async", codec: "raw" });
  const marked = raw.loan(3);
  marked.set([1, 2, 3]);
  raw.commit(marked, { redelivered: true });
  const plain = raw.loan(3);
  plain.set([4, 5, 6]);
  raw.commit(plain);
  const got = [
    await rawReceiver.ask("recv", { timeout: 10_000 }),
    await rawReceiver.ask("recv", { timeout: 10_000 }),
  ];
  assert.deepEqual(got.map((r) => [r.size, r.redelivered]), [[3, true], [3, false]]);
});

Deno.test("a receiver killed holding a marked message: the next receiver sees it marked", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async" });
  ch.trySend({ job: 1 }, { redelivered: true });

  const doomed = await s.spawn("peer.ts", "jobs", { mode: "async", autoRelease: false });
  const held = await doomed.ask("recv", { timeout: 10_000 });
  assert.deepEqual([held.data, held.redelivered], [{ job: 1 }, true]);
  await doomed.kill();

  const next = await s.spawn("peer.ts", "jobs", { mode: "async" });
  const again = await next.ask("recv", { timeout: 10_000 });
  assert.deepEqual([again.data, again.redelivered, again.seq], [{ job: 1 }, true, held.seq]);
  assert.equal(ch.stat().counters.redelivered, 1);
});

Deno.test("a redelivered option that is not a boolean: InvalidOptionError, nothing sent, the loan kept", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async" });
  const bad = { redelivered: "yes" } as unknown as { redelivered: boolean };
  await assert.rejects(ch.send({ n: 1 }, bad), InvalidOptionError);
  assert.throws(() => ch.sendSync({ n: 1 }, bad), InvalidOptionError);
  assert.throws(() => ch.trySend({ n: 1 }, bad), InvalidOptionError);
  await assert.rejects(ch.sendMany([{ n: 1 }], bad), InvalidOptionError);
  assert.throws(() => ch.sendManySync([{ n: 1 }], bad), InvalidOptionError);
  assert.throws(() => ch.trySendMany([{ n: 1 }], bad), InvalidOptionError);
  const { depth, inFlight, counters } = ch.stat();
  assert.deepEqual({ depth, inFlight, sent: counters.sent }, { depth: 0, inFlight: 0, sent: 0 });

  const raw = s.open("bytes", { mode: "async", codec: "raw" });
  const view = raw.loan(2);
  assert.throws(() => raw.commit(view, bad), InvalidOptionError);
  view.set([7, 8]); // still lent: writable, and committed next
  raw.commit(view, { redelivered: true });
  const msg = raw.tryRecv();
  assert.deepEqual([msg?.data, msg?.redelivered], [new Uint8Array([7, 8]), true]);
});
