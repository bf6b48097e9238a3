// Processes dying at the worst moment (SIGKILL): senders learn what happened, held messages come back,
// nothing torn is ever delivered, and the channel keeps working.

import assert from "node:assert/strict";
import { PeerDiedError } from "../mod.ts";
import { BIG_PAYLOAD_BYTES, checkPayload, follow, patternPayload, Scope, within } from "./helpers.ts";

function assertNotAlive(participants: { pid: number; alive: boolean }[], pid: number) {
  assert.ok(!participants.some((p) => p.pid === pid && p.alive), `killed pid ${pid} is still listed alive`);
}

Deno.test("a receiver killed while holding an ack message: the sender's send rejects with PeerDiedError", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "ack" });
  const receiver = await s.spawn("peer.ts", "jobs", { mode: "ack", autoRelease: false });

  // The long timeout makes a PeerDiedError prove that the death was noticed, not the wait running out.
  const sent = follow(ch.send({ job: 1 }, { timeout: 20_000 }));
  assert.deepEqual((await receiver.ask("recv", { timeout: 10_000 })).data, { job: 1 });
  await receiver.kill();
  await within(assert.rejects(sent.promise, PeerDiedError), "the ack send after its receiver died", 25_000);
  assertNotAlive(ch.stat().participants, receiver.pid);

  // The dead receiver's hold on the sender's only ack slot is gone: the next round trip works.
  const next = await s.spawn("peer.ts", "jobs", { mode: "ack" });
  const [, got] = await within(
    Promise.all([ch.send({ job: 2 }, { timeout: 20_000 }), next.ask("recv", { timeout: 10_000 })]),
    "an ack round trip after the crash",
  );
  assert.deepEqual(got.data, { job: 2 });
  assert.equal(got.redelivered, false);
  assert.equal(ch.tryRecv(), undefined);
});

Deno.test("a receiver that closes (not dies) holding an ack message hands it on, and the send succeeds", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "ack" });
  const leaving = await s.spawn("peer.ts", "jobs", { mode: "ack", autoRelease: false });

  const sent = follow(ch.send({ job: 1 }, { timeout: 20_000 }));
  assert.deepEqual((await leaving.ask("recv", { timeout: 10_000 })).data, { job: 1 });
  assert.deepEqual(await leaving.ask("close"), {});

  const next = await s.spawn("peer.ts", "jobs", { mode: "ack", autoRelease: false });
  const got = await next.ask("recv", { timeout: 10_000 });
  assert.deepEqual([got.data, got.redelivered], [{ job: 1 }, true]);
  assert.equal(sent.settled, false, "the send settled before any receiver released the message");
  assert.deepEqual(await next.ask("release"), { released: 1 });
  await within(sent.promise, "the ack send after its first receiver closed");

  assert.equal(ch.stat().counters.redelivered, 1);
  assert.deepEqual(await leaving.ask("ping"), {}, "the closing receiver is alive: it did not die");
  assert.ok(!ch.stat().participants.some((p) => p.pid === leaving.pid), "a closed handle is not listed");
});

Deno.test("a receiver killed while holding async messages: they are delivered again, marked redelivered", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async" });
  for (const n of [0, 1, 2]) ch.trySend({ n });

  const doomed = await s.spawn("peer.ts", "jobs", { mode: "async", autoRelease: false });
  const held = [];
  for (let i = 0; i < 3; i++) held.push(await doomed.ask("recv", { timeout: 10_000 }));
  assert.deepEqual(held.map((m) => m.redelivered), [false, false, false]);
  assert.deepEqual({ depth: ch.stat().depth, inFlight: ch.stat().inFlight }, { depth: 0, inFlight: 3 });
  await doomed.kill();

  const other = await s.spawn("peer.ts", "jobs", { mode: "async" });
  const again = [];
  for (let i = 0; i < 3; i++) again.push(await other.ask("recv", { timeout: 10_000 }));
  const bySeq = (a: { seq?: number }, b: { seq?: number }) => a.seq! - b.seq!;
  assert.deepEqual(
    again.sort(bySeq).map(({ seq, data, redelivered, sender }) => ({ seq, data, redelivered, sender })),
    held.sort(bySeq).map(({ seq, data, sender }) => ({ seq, data, redelivered: true, sender })),
  );
  assert.equal((await other.ask("recv", { timeout: 50 })).error, "TimeoutError", "delivered a third time");

  const { counters, depth, inFlight, participants } = ch.stat();
  assert.equal(counters.redelivered, 3);
  assert.deepEqual({ depth, inFlight }, { depth: 0, inFlight: 0 });
  assertNotAlive(participants, doomed.pid);
});

Deno.test("a sender killed mid-stream never exposes a torn message, and the channel keeps working", async () => {
  await using s = new Scope();
  const capacity = 8;
  const bigSeq = 10;
  const ch = s.open("stream", {
    mode: "async",
    codec: "raw",
    capacity,
    maxMessageSize: BIG_PAYLOAD_BYTES,
    autoRelease: false,
  });
  const nextSeq = new Map<number, number>(); // sender pid -> payload seq it must send next

  // Every payload is checked in full, and each sender's payloads must arrive as 0, 1, 2, ... with no gap.
  function receiveChecked(msg: NonNullable<ReturnType<typeof ch.tryRecv>>) {
    const seq = checkPayload(msg.bytes);
    assert.equal(msg.redelivered, false);
    assert.equal(seq, nextSeq.get(msg.sender) ?? 0, `sender ${msg.sender}: gap or reorder`);
    nextSeq.set(msg.sender, seq + 1);
    msg.release();
  }

  for (let round = 0; round < 4; round++) {
    const sender = await s.spawn("stream_sender.ts", "stream", bigSeq);
    // Leave room for the sender to reach its 16 MiB payload, and kill it as it starts copying that in.
    while ((nextSeq.get(sender.pid) ?? 0) < bigSeq - 4) receiveChecked(await ch.recv({ timeout: 10_000 }));
    await sender.expectLine(`writing ${bigSeq}`);
    await sender.kill();
    for (let msg = ch.tryRecv(); msg !== undefined; msg = ch.tryRecv()) receiveChecked(msg);
    assert.ok(nextSeq.get(sender.pid)! >= bigSeq, "messages written before the crash were lost");
    assertNotAlive(ch.stat().participants, sender.pid);
  }

  // Slots the dead writers held are reclaimed: the channel takes `capacity` new messages and returns them.
  for (let seq = 0; seq < capacity; seq++) {
    await within(ch.send(patternPayload(seq, 4096), { timeout: 10_000 }), `send ${seq} after the crashes`);
  }
  for (let i = 0; i < capacity; i++) receiveChecked(await ch.recv({ timeout: 10_000 }));
  assert.equal(nextSeq.get(Deno.pid), capacity);
  assert.equal(ch.tryRecv(), undefined);
});
