// Wildcard topics between real processes: pattern subscribers in child processes, the publisher
// here. Every wait is for a message or a process, never for time.

import assert from "node:assert/strict";
import { InvalidNameError, Namespace, publisher, subscribe } from "../mod.ts";
import { Scope, segmentsOf } from "./helpers.ts";

/** Removes the scope's group table (topics live there) when the test ends; Scope removes channels only. */
function groupTableOf(prefix: string): Disposable {
  return { [Symbol.dispose]: () => void Namespace.unlinkGroups({ prefix }) };
}

Deno.test('"prices.*" gets prices.eur but not prices.eur.spot; "prices.>" gets both; m.topic is the topic published to', async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  const star = await s.spawn("pubsub_sub.ts", "prices.*");
  const rest = await s.spawn("pubsub_sub.ts", "prices.>");
  const plain = await s.spawn("pubsub_sub.ts", "prices.eur");
  for (const child of [star, rest, plain]) await child.line("inbox name");
  using pub = publisher({ prefix: s.prefix });
  const delivered = async (topic: string) => (await pub.publish(topic, topic)).delivered;
  assert.equal(await delivered("prices.eur"), 3); // once per subscription that matches
  assert.equal(await delivered("prices.eur.spot"), 1);
  assert.equal(await delivered("prices"), 0); // ">" stands for one token or more
  assert.equal(await delivered("rates.eur"), 0);
  assert.equal(await delivered("prices.usd"), 2);

  const read = async (child: typeof star, n: number) => {
    await child.tell(`read ${n}`);
    const topics = [];
    for (let i = 0; i < n; i++) {
      const m = JSON.parse(await child.line(`message ${i}`));
      assert.equal(m.data, m.topic);
      topics.push(m.topic);
    }
    return topics;
  };
  assert.deepEqual(await read(star, 2), ["prices.eur", "prices.usd"]);
  assert.deepEqual(await read(rest, 3), ["prices.eur", "prices.eur.spot", "prices.usd"]);
  assert.deepEqual(await read(plain, 1), ["prices.eur"]);
});

Deno.test("a wildcard subscriber that joins between two publishes gets the next; one killed is dropped and its inbox removed", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  using pub = publisher({ prefix: s.prefix });
  assert.deepEqual(await pub.publish("prices.eur", 0), { delivered: 0, dropped: 0, reclaimed: 0 });
  const doomed = await s.spawn("pubsub_sub.ts", "*.eur");
  const inbox = await doomed.line("inbox name");
  assert.deepEqual(
    await pub.publish("prices.eur", 1),
    { delivered: 1, dropped: 0, reclaimed: 0 },
    "the join was missed",
  );
  const late = await s.spawn("pubsub_sub.ts", "prices.>", { whenFull: "wait" });
  await late.line("inbox name");
  assert.deepEqual(await pub.publish("prices.eur", 2), { delivered: 2, dropped: 0, reclaimed: 0 });

  await doomed.kill();
  assert.deepEqual(
    await pub.publish("prices.eur", 3),
    { delivered: 1, dropped: 0, reclaimed: 1 },
    "written to a dead inbox",
  );
  assert.ok(!segmentsOf(s.prefix).includes(inbox));
  await late.tell("read 2");
  for (const i of [2, 3]) assert.equal(JSON.parse(await late.line(`message ${i}`)).data, i);
});

Deno.test("a closed wildcard subscription leaves: the next publish does not reach it", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  using pub = publisher({ prefix: s.prefix });
  const sub = subscribe("prices.*", { prefix: s.prefix });
  assert.equal((await pub.publish("prices.eur", 1)).delivered, 1);
  sub.close();
  assert.ok(!segmentsOf(s.prefix).includes(sub.inbox));
  assert.deepEqual(await pub.publish("prices.eur", 2), { delivered: 0, dropped: 0, reclaimed: 0 });
});

Deno.test("a bad pattern is InvalidNameError and leaves nothing behind; a good one subscribes", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  using ns = Namespace.connect({ prefix: s.prefix });
  for (const bad of ["prices.>.eur", "prices..*", "*.pri$ce", "prices.*x", ">.", "*." + "a".repeat(64)]) {
    assert.throws(() => subscribe(bad, { prefix: s.prefix }), InvalidNameError, bad);
  }
  using pub = publisher({ prefix: s.prefix });
  await assert.rejects(pub.publish("prices.*", 1), InvalidNameError); // publish to a topic, not a pattern
  assert.deepEqual(segmentsOf(s.prefix), []);
  assert.deepEqual(ns.groupMembers("!wildcards!drop"), []);

  using good = subscribe("*.*.>", { prefix: s.prefix });
  assert.deepEqual(ns.groupMembers("!wildcards!drop"), [good.inbox]);
  assert.equal((await pub.publish("a.b.c", 1)).delivered, 1);
  assert.equal((await pub.publish("a.b", 1)).delivered, 0);
  assert.equal((await good.recv()).topic, "a.b.c");
});
