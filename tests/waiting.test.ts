// How waits cost what they should: a process parked on many channels holds one waiting thread and
// next to no CPU, close() settles every waiter, a dead peer is still found while the sender waits
// among many, and the `spin` option is checked like any other.

import assert from "node:assert/strict";
import { ChannelClosedError, InvalidOptionError, PeerDiedError, TimeoutError } from "../mod.ts";
import { delay, follow, Scope, within } from "./helpers.ts";

Deno.test("a process parked on 50 channels holds one waiting thread and little CPU, and every loop still gets its message", async () => {
  await using s = new Scope();
  const count = 50;
  const child = await s.spawn("many_waits.ts", "many", count);
  await child.tell("wait");
  const report = JSON.parse(await child.line("its report"));
  // Each parked promise wait held a blocking-pool thread of its own before: 50 channels, 36 threads.
  assert.ok(
    report.after - report.before <= 3,
    `waiting on ${count} channels added threads: ${JSON.stringify(report)}`,
  );
  // A generous bound: parked waits re-check once a slice (20 ms), they do not spin.
  assert.ok(report.cpuMs < report.wallMs / 4, `idle waits used CPU: ${JSON.stringify(report)}`);
  for (let i = 0; i < count; i++) s.open(`many.${i}`, { mode: "async" }).trySend({ i });
  assert.deepEqual(JSON.parse(await child.line("the loops' end")), { received: count });
  assert.equal((await child.status).code, 0);
});

Deno.test("close() settles every waiter: receives reject, for-await ends, an ack send rejects", async () => {
  await using s = new Scope();
  const rx = s.open("quiet", { timeout: 60_000 });
  const tx = s.open("unheard", { mode: "ack", timeout: 60_000 });
  const recvs = [rx.recv(), rx.recv(), rx.recv()].map(follow);
  const loop = follow((async () => {
    for await (const _ of rx) return "message";
    return "ended";
  })());
  const sent = follow(tx.send("nobody releases this"));
  await delay(100); // every wait has parked
  rx.close();
  tx.close();
  for (const r of recvs) {
    await within(assert.rejects(r.promise, ChannelClosedError), "a parked recv after close");
  }
  assert.equal(await within(loop.promise, "a parked for-await after close"), "ended");
  await within(assert.rejects(sent.promise, ChannelClosedError), "a parked ack send after close");
});

Deno.test("a receiver killed holding an ack message: PeerDiedError reaches a sender parked among many waits", async () => {
  await using s = new Scope();
  // Other parked waits in the same process share the one waiting thread with the ack wait.
  const others = Array.from({ length: 10 }, (_, i) => s.open(`idle.${i}`, { timeout: 60_000 }));
  const idle = others.map((ch) => follow(ch.recv()));
  const ch = s.open("jobs", { mode: "ack" });
  const receiver = await s.spawn("peer.ts", "jobs", { mode: "ack", autoRelease: false });
  const sent = follow(ch.send({ job: 1 }, { timeout: 20_000 }));
  assert.deepEqual((await receiver.ask("recv", { timeout: 10_000 })).data, { job: 1 });
  await receiver.kill();
  await within(assert.rejects(sent.promise, PeerDiedError), "the ack send after its receiver died", 25_000);
  for (const other of others) other.close();
  for (const r of idle) {
    await within(assert.rejects(r.promise, ChannelClosedError), "an idle recv after close");
  }
});

Deno.test("the spin option: bad values are InvalidOptionError, at open and per call", async () => {
  await using s = new Scope();
  for (const spin of ["fast", "Busy", -1, 1.5, 1_000_001, NaN, null]) {
    assert.throws(() => s.open("spin", { spin: spin as never }), InvalidOptionError, `spin ${spin}`);
  }
  const ch = s.open("spin", { mode: "async" });
  await assert.rejects(ch.recv({ spin: "fast" as never }), InvalidOptionError);
  await assert.rejects(ch.send(1, { spin: -1 }), InvalidOptionError);
  assert.throws(() => ch.recvSync({ spin: 2_000_000 }), InvalidOptionError);
  assert.throws(() => ch.sendSync(1, { spin: "x" as never }), InvalidOptionError);
});

Deno.test("the spin option: busy and timed waits deliver, and keep their timeouts", async () => {
  await using s = new Scope();
  for (const spin of ["busy", 0, 200, "polite"] as const) {
    const rx = s.open(`spin-${spin}`, { spin, timeout: 10_000 });
    const tx = s.open(`spin-${spin}`, { mode: "async" });
    assert.throws(() => rx.recvSync({ timeout: 30 }), TimeoutError, `${spin} sync`);
    await assert.rejects(rx.recv({ timeout: 30 }), TimeoutError, `${spin} promise`);
    const got = follow(rx.recv());
    await delay(5);
    tx.trySend({ spin });
    assert.deepEqual((await within(got.promise, `a ${spin} recv`)).data, { spin });
    tx.trySend(2);
    assert.equal(rx.recvSync({ spin: "busy" }).data, 2, "a per-call spin");
  }
});

Deno.test("a relay's receive, waiting while its handle releases the message before, gets every next message once and in order, and still times out", async () => {
  await using s = new Scope();
  // The bridge's shape: take a message, start waiting for the next, then release the first (which
  // resolves its sender's send, so the sender sends again while the receive waits). A release
  // that finds the receive parked cuts the park short and spins (core.ts releaseHeld).
  const relay = s.open("relay", { mode: "ack", autoRelease: false, timeout: 20_000 });
  const sender = await s.spawn("peer.ts", "relay", { mode: "ack", timeout: 20_000 });
  const count = 200;
  const sent = follow(sender.ask("send", { values: Array.from({ length: count }, (_, i) => i) }));
  let held = await relay.recv();
  assert.equal(held.data, 0);
  for (let i = 1; i < count; i++) {
    const next = relay.recv();
    // Every other release comes after a timer's turn of the event loop, the receive waiting by then.
    if (i % 2 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
    held.release();
    held = await within(next, `message ${i}`);
    assert.equal(held.data, i);
  }
  held.release();
  assert.deepEqual(await within(sent.promise, "the sender's last send"), { sent: count });
  // Nothing more comes: a receive started after a release still ends at its deadline.
  const last = relay.recv({ timeout: 200 });
  await within(assert.rejects(last, TimeoutError), "a receive with nothing to come");
  assert.equal(relay.tryRecv(), undefined);
});
