// Demultiplexed streams between real processes: a sender child interleaves keys, the receiver here
// routes them; a receiver killed holding buffered messages has them redelivered.

import assert from "node:assert/strict";
import { demux, type KeyedMessage } from "../mod.ts";
import { Scope, within } from "./helpers.ts";

const items = (key: string, n: number) => Array.from({ length: n }, (_, i) => [key, i]);

function interleave(...lists: unknown[][][]): unknown[][] {
  const out: unknown[][] = [];
  for (let i = 0; lists.some((l) => i < l.length); i++) {
    for (const l of lists) if (i < l.length) out.push(l[i]);
  }
  return out;
}

Deno.test("each key's messages reach its consumer in order; unclaimed keys go to the default handler", async () => {
  await using s = new Scope();
  await using d = demux<number>("mux", { prefix: s.prefix });
  const sender = await s.spawn("demux_peer.ts", "mux");

  const users: number[] = [];
  const others: [string, number][] = [];
  let usersDone!: () => void, othersDone!: () => void;
  const allUsers = new Promise<void>((r) => usersDone = r),
    allOthers = new Promise<void>((r) => othersDone = r);
  const orders: number[] = [];
  const it = d.stream("orders")[Symbol.asyncIterator]();
  const first = it.next(); // claims "orders" before the reader meets its messages
  d.on("users", (m) => {
    users.push(m.data);
    if (users.length === 50) usersDone();
  });
  d.otherwise((m) => {
    others.push([m.key, m.data]);
    if (others.length === 20) othersDone();
  });
  await sender.tell(
    JSON.stringify({
      op: "send",
      items: interleave(items("orders", 50), items("users", 50), items("misc", 20)),
    }),
  );
  for (let r = await first; !r.done; r = await it.next()) {
    orders.push(r.value.data);
    if (orders.length === 50) break;
  }
  await within(Promise.all([allUsers, allOthers]), "the users and misc messages");
  const upTo = (n: number) => Array.from({ length: n }, (_, i) => i);
  assert.deepEqual(orders, upTo(50));
  assert.deepEqual(users, upTo(50));
  assert.deepEqual(others, upTo(20).map((i) => ["misc", i]));
  assert.equal(d.unrouted, 0);
});

Deno.test("a slow key holds the others back once its buffer is full, and loses nothing", async () => {
  await using s = new Scope();
  await using d = demux<number>("mux", { prefix: s.prefix, buffer: 4 });
  const sender = await s.spawn("demux_peer.ts", "mux");
  const fast: number[] = [];
  let fastDone!: () => void;
  const allFast = new Promise<void>((r) => fastDone = r);
  const it = d.stream("slow")[Symbol.asyncIterator]();
  const first = it.next();
  d.on("fast", (m) => {
    fast.push(m.data);
    if (fast.length === 3) fastDone();
  });
  await sender.tell(JSON.stringify({ op: "send", items: [...items("slow", 10), ...items("fast", 3)] }));
  const slow: number[] = [];
  for (let r = await first; !r.done; r = await it.next()) {
    slow.push(r.value.data);
    // "fast" comes after slow 9: the reader cannot reach it while slow's 4 places are taken.
    if (slow.length <= 5) assert.equal(fast.length, 0, `fast ran with ${slow.length} slow consumed`);
    if (slow.length === 10) break;
  }
  await within(allFast, "the fast key after the slow one drained");
  assert.deepEqual(slow, Array.from({ length: 10 }, (_, i) => i));
  assert.deepEqual(fast, [0, 1, 2]);
});

Deno.test("a receiver killed holding buffered messages: they are all delivered again, marked redelivered", async () => {
  await using s = new Scope();
  const sender = await s.spawn("demux_peer.ts", "mux");
  await sender.tell(JSON.stringify({ op: "send", items: items("jobs", 6) }));
  await sender.expectLine("sent"); // async sends: written, and they outlive any receiver
  const doomed = await s.spawn("demux_peer.ts", "mux");
  await doomed.tell(JSON.stringify({ op: "hold", key: "jobs" }));
  assert.equal(await doomed.line("the held message"), "0");
  await doomed.kill();

  await using d = demux<number>("mux", { prefix: s.prefix });
  const got: KeyedMessage<number>[] = [];
  for await (const m of d.stream("jobs")) {
    got.push(m);
    if (got.length === 6) break;
  }
  assert.deepEqual(got.map((m) => m.data).sort(), [0, 1, 2, 3, 4, 5]);
  assert.ok(got.every((m) => m.redelivered));
});
