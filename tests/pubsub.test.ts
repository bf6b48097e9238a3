// Publish/subscribe between real processes: subscribers in child processes (one killed), the
// publisher here. Every wait is for a message or a process, never for time.

import assert from "node:assert/strict";
import { Namespace, publisher, subscribe } from "../mod.ts";
import { delay, follow, Scope, segmentsOf, within } from "./helpers.ts";

/** Removes the scope's group table (topics live there) when the test ends; Scope removes channels only. */
function groupTableOf(prefix: string): Disposable {
  return { [Symbol.dispose]: () => void Namespace.unlinkGroups({ prefix }) };
}

const TOPIC = "prices";

Deno.test("every subscriber gets every message published after it subscribed, with its headers", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  const a = await s.spawn("pubsub_sub.ts", TOPIC);
  const b = await s.spawn("pubsub_sub.ts", TOPIC);
  using local = subscribe(TOPIC, { prefix: s.prefix });
  using pub = publisher({ prefix: s.prefix });
  for (let i = 0; i < 3; i++) {
    const result = await pub.publish(TOPIC, { i }, { headers: { trace: `t${i}` } });
    assert.deepEqual(result, { delivered: 3, dropped: 0, reclaimed: 0 });
  }
  assert.deepEqual(await pub.publishMany(TOPIC, [{ i: 3 }, { i: 4 }]), {
    delivered: 6,
    dropped: 0,
    reclaimed: 0,
  });
  assert.deepEqual((await pub.publish("other", 1)).delivered, 0);
  for (const child of [a, b]) {
    await child.line("inbox name");
    await child.tell("read 5");
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(JSON.parse(await child.line(`message ${i}`)), {
        topic: TOPIC,
        data: { i },
        headers: { trace: `t${i}` },
      });
    }
  }
  const got = [];
  for await (const m of local) {
    got.push(m.data);
    assert.equal(m.topic, TOPIC);
    if (got.length === 5) break;
  }
  assert.deepEqual(got, [0, 1, 2, 3, 4].map((i) => ({ i })));
  assert.equal(local.tryRecv(), undefined);
});

Deno.test('a full "drop" inbox drops and counts; a full "wait" inbox makes the publisher wait for room', async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  const dropper = await s.spawn("pubsub_sub.ts", TOPIC, { capacity: 4 });
  const waiter = await s.spawn("pubsub_sub.ts", TOPIC, { capacity: 4, whenFull: "wait" });
  await dropper.line("inbox name");
  await waiter.line("inbox name");
  using pub = publisher({ prefix: s.prefix, timeout: 20_000 });
  for (let i = 0; i < 4; i++) assert.equal((await pub.publish(TOPIC, i)).delivered, 2);

  const fifth = follow(pub.publish(TOPIC, 4));
  await waiter.tell("read 1"); // room for the waiting copy
  assert.equal(JSON.parse(await waiter.line("the first message")).data, 0);
  assert.deepEqual(await within(fifth.promise, "the publish waiting for room"), {
    delivered: 1,
    dropped: 1,
    reclaimed: 0,
  });
  await dropper.tell("read 4");
  for (let i = 0; i < 4; i++) assert.equal(JSON.parse(await dropper.line(`message ${i}`)).data, i);
  await waiter.tell("read 4");
  for (let i = 1; i < 5; i++) assert.equal(JSON.parse(await waiter.line(`message ${i}`)).data, i);
});

Deno.test("a subscriber killed leaves its topic with its process; its inbox goes with the next publish or subscribe", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  const doomed = await s.spawn("pubsub_sub.ts", TOPIC, { capacity: 2 });
  const inbox = await doomed.line("inbox name");
  using pub = publisher({ prefix: s.prefix });
  assert.deepEqual(await pub.publish(TOPIC, 1), { delivered: 1, dropped: 0, reclaimed: 0 });
  await doomed.kill();
  // Not a member any more; the publisher wrote to it, so it removes the dead inbox.
  assert.deepEqual(await pub.publish(TOPIC, 2), { delivered: 0, dropped: 0, reclaimed: 1 });
  assert.ok(!segmentsOf(s.prefix).includes(inbox));
  assert.deepEqual(await pub.publish(TOPIC, 3), { delivered: 0, dropped: 0, reclaimed: 0 });

  // Killed before any publish: nobody holds its inbox; the next subscribe removes it.
  const quiet = await s.spawn("pubsub_sub.ts", TOPIC);
  const quietInbox = await quiet.line("inbox name");
  await quiet.kill();
  using next = subscribe(TOPIC, { prefix: s.prefix });
  assert.ok(!segmentsOf(s.prefix).includes(quietInbox));
  assert.deepEqual(await pub.publish(TOPIC, 5), { delivered: 1, dropped: 0, reclaimed: 0 });
  assert.equal((await next.recv()).data, 5);
});

Deno.test("a SIGKILLed subscriber's membership is gone at the next publish, before anyone looks at its process", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  using ns = Namespace.connect({ prefix: s.prefix });
  const doomed = await s.spawn("pubsub_sub.ts", TOPIC);
  const inbox = await doomed.line("inbox name");
  assert.deepEqual(ns.groupMembers(`${TOPIC}!drop`), [inbox]);
  await doomed.kill();

  // A publisher that never wrote to it holds no handle and checks no pid: the group table alone
  // ends the membership (the kernel dropped the dead process's lock on it).
  using pub = publisher({ prefix: s.prefix });
  assert.deepEqual(await pub.publish(TOPIC, 1), { delivered: 0, dropped: 0, reclaimed: 0 });
  assert.deepEqual(ns.groupMembers(`${TOPIC}!drop`), []);
  assert.equal(ns.groupStat().counters.died, 1);
  assert.ok(segmentsOf(s.prefix).includes(inbox)); // nothing looked at its owner yet
});

Deno.test('a "wait" publish keeps waiting past its membership checks, and copies to one inbox keep their order', async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  const slow = await s.spawn("pubsub_sub.ts", TOPIC, { capacity: 1, whenFull: "wait" });
  await slow.line("inbox name");
  using pub = publisher({ prefix: s.prefix, timeout: 20_000 });
  assert.equal((await pub.publish(TOPIC, 0)).delivered, 1);
  const waiting = [1, 2, 3].map((i) => follow(pub.publish(TOPIC, i))); // not awaited in between
  await delay(1500); // longer than one membership-check slice: the behaviour under test
  assert.ok(waiting.every((w) => !w.settled));
  await slow.tell("read 4");
  for (let i = 0; i < 4; i++) assert.equal(JSON.parse(await slow.line(`message ${i}`)).data, i);
  for (const w of waiting) assert.equal((await within(w.promise, "a waiting publish")).delivered, 1);
});

Deno.test('a "wait" subscriber killed while a publish waits for it: the publish ends, reporting it reclaimed', async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  const doomed = await s.spawn("pubsub_sub.ts", TOPIC, { capacity: 1, whenFull: "wait" });
  const inbox = await doomed.line("inbox name");
  using pub = publisher({ prefix: s.prefix, timeout: 20_000 });
  assert.equal((await pub.publish(TOPIC, 1)).delivered, 1);
  const blocked = follow(pub.publish(TOPIC, 2));
  await doomed.kill();
  assert.deepEqual(await within(blocked.promise, "the publish to a dead waiter"), {
    delivered: 0,
    dropped: 0,
    reclaimed: 1,
  });
  assert.ok(!segmentsOf(s.prefix).includes(inbox));
});

Deno.test("a publisher that keeps its topic's subscribers sees one that joins, and one killed, at the next publish", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  const doomed = await s.spawn("pubsub_sub.ts", TOPIC);
  const doomedInbox = await doomed.line("inbox name");
  using pub = publisher({ prefix: s.prefix });
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(await pub.publish(TOPIC, i), { delivered: 1, dropped: 0, reclaimed: 0 });
  }
  const late = await s.spawn("pubsub_sub.ts", TOPIC, { whenFull: "wait" });
  await late.line("inbox name");
  assert.deepEqual(
    await pub.publish(TOPIC, 2),
    { delivered: 2, dropped: 0, reclaimed: 0 },
    "the join was missed",
  );

  await doomed.kill();
  // Nothing in the group table changed: only the dead process's lock on its membership is gone.
  assert.deepEqual(
    await pub.publish(TOPIC, 3),
    { delivered: 1, dropped: 0, reclaimed: 1 },
    "written to a dead inbox",
  );
  assert.ok(!segmentsOf(s.prefix).includes(doomedInbox));
  assert.deepEqual(await pub.publishMany(TOPIC, [4, 5]), { delivered: 2, dropped: 0, reclaimed: 0 });
  await late.tell("read 4");
  for (const i of [2, 3, 4, 5]) assert.equal(JSON.parse(await late.line(`message ${i}`)).data, i);
});

Deno.test("a killed subscriber another process noticed first is still reclaimed by the publisher that wrote to it", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  const doomed = await s.spawn("pubsub_sub.ts", TOPIC);
  const inbox = await doomed.line("inbox name");
  using pub = publisher({ prefix: s.prefix });
  assert.deepEqual(await pub.publish(TOPIC, 1), { delivered: 1, dropped: 0, reclaimed: 0 });
  await doomed.kill();
  {
    using other = Namespace.connect({ prefix: s.prefix }); // its own table handle: "another process"
    assert.deepEqual(other.groupMembers(`${TOPIC}!drop`), []); // its scan ends the membership
  }
  assert.deepEqual(await pub.publish(TOPIC, 2), { delivered: 0, dropped: 0, reclaimed: 1 });
  assert.ok(!segmentsOf(s.prefix).includes(inbox));
});

Deno.test("close() ends the membership and removes the inbox", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  const sub = subscribe(TOPIC, { prefix: s.prefix });
  assert.ok(segmentsOf(s.prefix).includes(sub.inbox));
  sub.close();
  assert.ok(!segmentsOf(s.prefix).includes(sub.inbox));
  using pub = publisher({ prefix: s.prefix });
  assert.deepEqual(await pub.publish(TOPIC, 1), { delivered: 0, dropped: 0, reclaimed: 0 });
});
