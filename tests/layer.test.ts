// The channel layer: capacity by pattern, exact stats counters, zero-copy loans and views.

import assert from "node:assert/strict";
import { Channel, ChannelFullError, EncodeError, MessageTooLargeError } from "../mod.ts";
import { checkPayload, delay, patternPayload, Scope, segmentsOf } from "./helpers.ts";

Deno.test("capacity by glob and by RegExp is fixed at creation and seen by every process", async () => {
  await using s = new Scope();
  const patterns = { "http.request": 200, "ws.*": 3, [String(/^jobs\.\d+$/)]: 2 };
  const ws = s.open("ws.chat", { mode: "async", channelCapacity: patterns, capacity: 50 });
  const jobs = s.open("jobs.42", { mode: "async", channelCapacity: new Map([[/^jobs\./, 2]]) });
  const other = s.open("other", { mode: "async", channelCapacity: patterns, capacity: 5 });
  assert.deepEqual([ws.capacity, jobs.capacity, other.capacity], [3, 2, 5]);

  // A process that knows nothing of the patterns fills each channel exactly to its capacity.
  for (const [name, capacity] of [["ws.chat", 3], ["jobs.42", 2], ["other", 5]] as const) {
    const sender = await s.spawn("peer.ts", name, { mode: "async" });
    const reply = await sender.ask("trySend", { n: capacity + 1 });
    assert.equal(reply.sent, capacity, name);
    assert.equal(reply.error, "ChannelFullError", name);
  }
});

Deno.test("stats count exactly what happened: sends, receives, releases, expiries, rejections", async () => {
  await using s = new Scope();
  const ch = s.open("stats", { mode: "async", capacity: 4 });
  for (const v of ["a", "b", "c"]) ch.trySend(v);
  ch.trySend("d", { expiry: 0.03 });
  assert.throws(() => ch.trySend("e"), ChannelFullError);
  const receiver = await s.spawn("peer.ts", "stats", { mode: "async" });
  assert.equal((await receiver.ask("recv", { timeout: 5000 })).data, "a");
  assert.equal((await receiver.ask("recv", { timeout: 5000 })).data, "b");
  await delay(80); // d's deadline passing is the behaviour under test
  assert.equal((await receiver.ask("recv", { timeout: 5000 })).data, "c");
  assert.equal((await receiver.ask("recv", { timeout: 100 })).error, "TimeoutError"); // d expired, dropped

  const { counters, depth, inFlight, participants, bytes, resident } = ch.stat();
  assert.deepEqual(counters, { sent: 4, received: 3, released: 3, expired: 1, full: 1, redelivered: 0 });
  assert.deepEqual({ depth, inFlight }, { depth: 0, inFlight: 0 });
  assert.deepEqual(
    participants.map(({ pid, alive, inFlight, role }) => ({ pid, alive, inFlight, role })).sort((a, b) =>
      a.pid - b.pid
    ),
    [
      { pid: Deno.pid, alive: true, inFlight: 0, role: "sender" },
      { pid: receiver.pid, alive: true, inFlight: 0, role: "receiver" },
    ].sort((a, b) => a.pid - b.pid),
  );
  assert.ok(resident > 0 && resident <= bytes, `resident ${resident} of ${bytes}`);

  // Slots in flight per sender: two sent and unreceived are this sender's.
  ch.trySend("f");
  ch.trySend("g");
  assert.equal(ch.stat().participants.find((p) => p.pid === Deno.pid)?.inFlight, 2);
});

Deno.test("zero-copy: a loaned slot is written in place, received as a view, and the view dies at release", async () => {
  await using s = new Scope();
  const ch = s.open("zc", { mode: "async", codec: "raw", maxMessageSize: 256 * 1024, capacity: 8 });
  const receiver = await s.spawn("zerocopy_receiver.ts", "zc", 3);

  const big = ch.loan(200_000);
  big.set(patternPayload(1, 200_000));
  ch.commit(big);
  assert.equal(big.length, 0, "a committed loan is detached from the sender");

  // Lent for 200 bytes, committed as 48: moved to where small payloads live.
  const small = ch.loan(200);
  small.set(patternPayload(2, 48));
  ch.commit(small, { length: 48 });

  const dropped = ch.loan(64);
  ch.unloan(dropped);
  ch.trySend(patternPayload(3, 1024)); // the copying path into a zero-copy receiver

  for (const [seq, size] of [[1, 200_000], [2, 48], [3, 1024]]) {
    const report = JSON.parse(await receiver.line());
    assert.deepEqual(report, { seq, size, keptLength: 0, copyOk: true, afterRelease: "Released" });
  }
  assert.deepEqual({ depth: ch.stat().depth, inFlight: ch.stat().inFlight }, { depth: 0, inFlight: 0 });
  assert.throws(() => ch.commit(big), { code: "NotLoaned" });
});

Deno.test("zero-copy views need a zero-copy channel, and a copying channel's bytes stay valid", async () => {
  await using s = new Scope();
  const tx = s.open("plain", { mode: "async", codec: "raw" });
  const rx = s.open("plain", { mode: "async", codec: "raw" });
  tx.trySend(patternPayload(7, 64));
  const msg = rx.tryRecv()!;
  assert.throws(() => msg.view, { code: "NotZeroCopy" });
  assert.equal(checkPayload(msg.bytes), 7);
  assert.throws(() => s.open("json", { codec: "msgpack", zeroCopy: true }), { code: "InvalidOption" });
});

Deno.test("batches: sendMany and recvMany move many messages per call, in order, across processes", async () => {
  await using s = new Scope();
  const out = s.open("batch", { mode: "async", capacity: 64 });
  const back = s.open("batch.back", { mode: "async" });
  const echo = await s.spawn("batch_echo.ts", "batch", 1000);
  const values = Array.from({ length: 1000 }, (_, i) => i);
  await out.sendMany(values);
  const msg = await back.recv({ timeout: 20_000 });
  assert.deepEqual(msg.data, values);
  assert.equal((await echo.status).code, 0);
});

Deno.test("batches: two sendMany on one handle that both wait for room each send their own values, in order", async () => {
  await using s = new Scope();
  const tx = s.open("two-waits", { mode: "async", capacity: 4, slots: 4 });
  const rx = s.open("two-waits", { mode: "async" });
  const first = Array.from({ length: 10 }, (_, i) => i);
  const second = Array.from({ length: 10 }, (_, i) => 100 + i);
  // Both stage into the handle's buffer and find it full after 4: each must keep its own rest.
  const sends = [tx.sendMany(first, { timeout: 20_000 }), tx.sendMany(second, { timeout: 20_000 })];
  const got: number[] = [];
  while (got.length < 20) {
    got.push(...(await rx.recvMany(3, { timeout: 20_000 })).map((m) => m.data as number));
  }
  await Promise.all(sends);
  assert.deepEqual(got.filter((v) => v < 100), first);
  assert.deepEqual(got.filter((v) => v >= 100), second);
});

Deno.test("batches: trySendMany stops at a full channel, and a bad value in a batch sends nothing", async () => {
  await using s = new Scope();
  const ch = s.open("partial", { mode: "async", capacity: 5, slots: 32, maxMessageSize: 64 });
  assert.equal(ch.trySendMany([1, 2, 3, 4, 5, 6, 7]), 5);
  assert.equal(ch.stat().counters.full, 1);
  const rx = s.open("partial", { mode: "async" });
  assert.deepEqual(rx.tryRecvMany(10).map((m) => m.data), [1, 2, 3, 4, 5]);
  assert.throws(() => ch.trySendMany([1, "x".repeat(100), 3]), MessageTooLargeError);
  assert.throws(() => ch.trySendMany([1, () => 2, 3] as unknown[]), EncodeError);
  assert.deepEqual(rx.tryRecvMany(10), []);
  assert.equal(ch.stat().counters.sent, 5);
});

Deno.test("create: false opens only an existing channel, and Channel.recover undoes a dead receiver's hold", async () => {
  await using s = new Scope();
  assert.throws(() => s.open("absent", { create: false }), { code: "ChannelNotFound" });
  assert.deepEqual(segmentsOf(s.prefix), []);

  const ch = s.open("held", { mode: "async" });
  ch.trySend("kept");
  const doomed = await s.spawn("peer.ts", "held", { mode: "async", autoRelease: false });
  assert.equal((await doomed.ask("recv", { timeout: 5000 })).data, "kept");
  await doomed.kill();
  ch.close(); // no live handle is left to notice the death
  assert.equal(Channel.recover("held", { prefix: s.prefix }), 1);
  const again = s.open("held", { mode: "async", create: false });
  const msg = again.tryRecv()!;
  assert.deepEqual([msg.data, msg.redelivered], ["kept", true]);
});

Deno.test("batches: sendManySync waits for room that a receiver in another process makes, recvManySync blocks", async () => {
  await using s = new Scope();
  const ch = s.open("sync-batch", { mode: "async", capacity: 8, slots: 8 });
  const back = s.open("sync-batch.back", { mode: "async" });
  const echo = await s.spawn("batch_echo.ts", "sync-batch", 100);
  ch.sendManySync(Array.from({ length: 100 }, (_, i) => i)); // 100 through 8 slots: it must wait
  assert.deepEqual(back.recvManySync(1, { timeout: 20_000 }).map((m) => m.data), [
    Array.from({ length: 100 }, (_, i) => i),
  ]);
  assert.equal((await echo.status).code, 0);
  assert.throws(() => back.recvManySync(4, { timeout: 30 }), { code: "Timeout" });
});
