// A receiver that will not process a message says so: msg.reject() ends its ack-mode sender's send
// with RejectedError (or the outcome a forwarder relays) at once, between real processes.

import assert from "node:assert/strict";
import { ExpiredError, InvalidOptionError, PeerDiedError, RejectedError } from "../mod.ts";
import { follow, Scope, within } from "./helpers.ts";

Deno.test("a receiver's reject fails its ack sender's send with the error it names, and frees the slot", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "ack" });
  const receiver = await s.spawn("peer.ts", "jobs", { mode: "ack", autoRelease: false });

  // The long timeout makes each error prove the reject reached the sender, not the wait running out.
  for (
    const [outcome, error] of [
      [undefined, RejectedError],
      ["PeerDied", PeerDiedError],
      ["Expired", ExpiredError],
    ] as const
  ) {
    const sent = follow(ch.send({ job: outcome ?? "plain" }, { timeout: 20_000 }));
    assert.deepEqual((await receiver.ask("recv", { timeout: 10_000 })).data, { job: outcome ?? "plain" });
    assert.deepEqual(await receiver.ask("reject", { outcome }), { rejected: 1 });
    await within(
      assert.rejects(sent.promise, error),
      `the ack send its receiver rejected (${outcome})`,
      25_000,
    );
  }
  // Nothing is delivered again: the rejected messages are gone, and the sender's one slot is back.
  assert.equal(ch.tryRecv(), undefined);
  const sent = follow(ch.send({ job: "after" }, { timeout: 20_000 }));
  assert.deepEqual((await receiver.ask("recv", { timeout: 10_000 })).data, { job: "after" });
  assert.deepEqual(await receiver.ask("release"), { released: 1 });
  await within(sent.promise, "an ack send after the rejects");
  assert.equal(ch.stat().counters.redelivered, 0);
});

Deno.test("a reject with an unknown outcome is an InvalidOptionError and leaves the message held", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "ack" });
  const receiver = await s.spawn("peer.ts", "jobs", { mode: "ack", autoRelease: false });
  const sent = follow(ch.send({ job: 1 }, { timeout: 20_000 }));
  await receiver.ask("recv", { timeout: 10_000 });
  const bad = await receiver.ask("reject", { outcome: "Timeout" });
  assert.equal(bad.error, InvalidOptionError.name);
  assert.equal(sent.settled, false, "a refused reject settled the send");
  assert.deepEqual(await receiver.ask("release"), { released: 1 });
  await within(sent.promise, "the ack send released after a refused reject");
});

Deno.test("rejecting an async message releases it: its sender's slot comes back", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async", slots: 1 });
  const receiver = await s.spawn("peer.ts", "jobs", { mode: "async", autoRelease: false });
  ch.trySend({ n: 1 });
  assert.deepEqual((await receiver.ask("recv", { timeout: 10_000 })).data, { n: 1 });
  assert.throws(() => ch.trySend({ n: 2 }), { code: "ChannelFull" });
  assert.deepEqual(await receiver.ask("reject", {}), { rejected: 1 });
  ch.trySend({ n: 2 });
  assert.deepEqual((await receiver.ask("recv", { timeout: 10_000 })).data, { n: 2 });
});
