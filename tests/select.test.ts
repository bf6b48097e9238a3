// Select between real processes: senders in child processes, select and merge here. Nothing is lost
// or delivered twice, whichever wait wins.

import assert from "node:assert/strict";
import { ChannelClosedError, merge, select, TimeoutError } from "../mod.ts";
import { Scope, within } from "./helpers.ts";

Deno.test("select resolves with the first message and its channel, taking channels in turn", async () => {
  await using s = new Scope();
  const a = s.open("a", { mode: "async" }), b = s.open("b", { mode: "async" });
  const sender = await s.spawn("peer.ts", "b", { mode: "async" });
  const waiting = select([a, b]);
  await sender.ask("send", { values: ["from b"] });
  const got = await within(waiting, "select while b's sender sends");
  assert.equal(got.channel, b);
  assert.equal(got.message.data, "from b");

  // Both have messages: the channels answer in turn. (Fresh channels: the first select's losing
  // wait on `a` may still be parked, and a channel with a receive waiting is left to it.)
  const c = s.open("c", { mode: "async" }), d = s.open("d", { mode: "async" });
  for (const v of [1, 2]) c.trySend(v), d.trySend(v);
  const names = [];
  for (let i = 0; i < 4; i++) names.push((await select([c, d])).channel.name);
  assert.deepEqual(names.filter((n) => n === "c").length, 2);
  assert.notDeepEqual(
    names.slice(0, 2),
    [names[0], names[0]],
    "one channel answered twice while the other had messages",
  );
});

Deno.test("merge yields every message of every channel once, each channel in order, until all are closed", async () => {
  await using s = new Scope();
  const names = ["x", "y", "z"];
  const channels = names.map((n) => s.open(n, { mode: "async" }));
  const senders = await Promise.all(names.map((n) => s.spawn("peer.ts", n, { mode: "async" })));
  const per = 200;
  const sending = senders.map((p, k) =>
    p.ask("send", { values: Array.from({ length: per }, (_, i) => ({ k, i })) })
  );
  const seen = names.map(() => [] as number[]);
  let total = 0;
  for await (const { channel, message } of merge(channels)) {
    const { k, i } = message.data as { k: number; i: number };
    assert.equal(channel.name, names[k]);
    seen[k].push(i);
    if (++total === 3 * per) break;
  }
  await within(Promise.all(sending), "the senders");
  for (const list of seen) assert.deepEqual(list, Array.from({ length: per }, (_, i) => i));
  for (const c of channels) assert.equal(c.tryRecv(), undefined);

  // Closed channels end merge.
  for (const c of channels) c.close();
  for await (const _ of merge(channels)) assert.fail("a closed channel yielded");
});

Deno.test("select gives up at its timeout, on abort, and when every channel is closed", async () => {
  await using s = new Scope();
  const a = s.open("a", { mode: "async" }), b = s.open("b", { mode: "async" });
  // The deadline is the behaviour under test.
  await assert.rejects(select([a, b], { timeout: 30 }), TimeoutError);
  const controller = new AbortController();
  const aborted = select([a, b], { signal: controller.signal });
  controller.abort();
  await assert.rejects(aborted, { name: "AbortError" });
  a.trySend("kept");
  assert.equal((await select([a, b])).message.data, "kept");
  a.close();
  b.close();
  await assert.rejects(select([a, b]), ChannelClosedError);
});
