// One and two process behaviour: delivery, codecs, ack and async modes, capacity, expiry, bad input,
// concurrent creation. Every step between processes is coordinated by lines, never by sleeping.

import assert from "node:assert/strict";
import {
  Channel,
  ChannelClosedError,
  ChannelFullError,
  EncodeError,
  ExpiredError,
  FerryError,
  IncompatibleChannelError,
  InvalidNameError,
  InvalidOptionError,
  MessageTooLargeError,
  TimeoutError,
} from "../mod.ts";
import { delay, follow, Scope, segmentPath, segmentsOf, within } from "./helpers.ts";

Deno.test("a message sent by one process is received once by another, with its sender and seq", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async" });
  const receiver = await s.spawn("peer.ts", "jobs", { mode: "async" });

  for (const n of [1, 2, 3]) await ch.send({ job: "resize", n });

  const got = [];
  for (let i = 0; i < 3; i++) got.push(await receiver.ask("recv", { timeout: 10_000 }));
  assert.deepEqual(got.map((m) => m.data), [1, 2, 3].map((n) => ({ job: "resize", n })));
  assert.ok(got.every((m) => m.sender === Deno.pid && m.redelivered === false));
  assert.ok(got[0].seq! < got[1].seq! && got[1].seq! < got[2].seq!, `seqs ${got.map((m) => m.seq)}`);

  const nothing = await receiver.ask("recv", { timeout: 50 });
  assert.equal(nothing.error, "TimeoutError");
  assert.equal(ch.tryRecv(), undefined);
  await assert.rejects(ch.recv({ timeout: 50 }), TimeoutError);

  const { counters, depth, inFlight } = ch.stat();
  assert.deepEqual({ depth, inFlight }, { depth: 0, inFlight: 0 });
  assert.equal(counters.sent, 3);
  assert.equal(counters.received, 3);
});

Deno.test("codecs round-trip: msgpack types, raw bytes, a custom codec", async () => {
  await using s = new Scope();

  const packed = s.open("packed", { mode: "async" });
  const value = {
    text: "héllo",
    n: -1.5,
    list: [1, "two", null, true],
    when: new Date(1_700_000_000_000),
    big: 2n ** 63n - 1n,
    map: new Map<unknown, unknown>([[1, "a"], ["k", [2]]]),
  };
  const bytes = new Uint8Array([0, 1, 2, 254, 255]);
  packed.sendSync({ ...value, bytes });
  const { bytes: gotBytes, ...gotRest } = packed.recvSync({ timeout: 5_000 }).data as typeof value & {
    bytes: Uint8Array;
  };
  assert.deepStrictEqual(gotRest, value);
  assert.ok(gotBytes instanceof Uint8Array);
  assert.deepEqual([...gotBytes], [...bytes]);

  const raw = s.open("raw", { mode: "async", codec: "raw" });
  const payload = crypto.getRandomValues(new Uint8Array(4096));
  raw.sendSync(payload);
  const rawMessage = raw.recvSync({ timeout: 5_000 });
  assert.deepEqual([...rawMessage.bytes], [...payload]);
  assert.deepEqual([...(rawMessage.data as Uint8Array)], [...payload]);

  const json = {
    encode: (v: unknown) => new TextEncoder().encode(JSON.stringify(v)),
    decode: (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)),
  };
  const custom = s.open("custom", { mode: "async", codec: json });
  custom.sendSync({ hello: ["world"] });
  const customMessage = custom.recvSync({ timeout: 5_000 });
  assert.deepEqual(customMessage.data, { hello: ["world"] });
  assert.equal(new TextDecoder().decode(customMessage.bytes), '{"hello":["world"]}');
});

Deno.test("ack mode: send stays pending until the receiver releases the message", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "ack" });
  const receiver = await s.spawn("peer.ts", "jobs", { mode: "ack", autoRelease: false });

  const sent = follow(ch.send({ job: "resize", id: 7 }, { timeout: 20_000 }));
  const got = await receiver.ask("recv", { timeout: 10_000 });
  assert.deepEqual(got.data, { job: "resize", id: 7 });

  await receiver.ask("ping"); // a full round trip with the receiver while it holds the message
  assert.equal(sent.settled, false, "ack send settled before the receiver released the message");
  const holding = ch.stat();
  assert.equal(holding.inFlight, 1);
  assert.equal(holding.counters.released, 0);

  assert.deepEqual(await receiver.ask("release"), { released: 1 });
  await within(sent.promise, "ack send after release");

  const after = ch.stat();
  assert.deepEqual({ depth: after.depth, inFlight: after.inFlight }, { depth: 0, inFlight: 0 });
  assert.deepEqual(
    [after.counters.sent, after.counters.received, after.counters.released],
    [1, 1, 1],
  );
});

Deno.test("for await hands messages over in order and releases each after the loop body", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "ack" });
  const sender = await s.spawn("peer.ts", "jobs", { mode: "ack" });

  // Ack sends resolve only once released, so the sender finishing proves every message was released.
  const sending = follow(sender.ask("send", { values: [0, 1, 2], opts: { timeout: 20_000 } }));
  const got = await within(
    (async () => {
      const seen: unknown[] = [];
      for await (const msg of ch) {
        seen.push(msg.data);
        if (seen.length === 3) break;
      }
      return seen;
    })(),
    "three messages through for await",
  );
  assert.deepEqual(got, [0, 1, 2]);
  assert.deepEqual(await within(sending.promise, "the ack sender"), { sent: 3 });
});

Deno.test("a for await loop that breaks takes no more: the rest of the queue goes to another receiver", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async" });
  const sender = await s.spawn("peer.ts", "jobs", { mode: "async" });
  const other = await s.spawn("peer.ts", "jobs", { mode: "async" });
  assert.deepEqual(await sender.ask("send", { values: [0, 1, 2, 3, 4, 5] }), { sent: 6 });

  const seen: unknown[] = [];
  for await (const msg of ch) {
    seen.push(msg.data);
    if (seen.length === 2) break;
  }
  assert.deepEqual(seen, [0, 1]);
  // Nothing more was taken off the queue, nor is anything held: the other receiver gets the rest
  // at once, in order, none of them redelivered.
  const rest = [];
  for (let i = 0; i < 4; i++) rest.push(await other.ask("recv", { timeout: 10_000 }));
  assert.deepEqual(rest.map((m) => [m.data, m.redelivered]), [[2, false], [3, false], [4, false], [
    5,
    false,
  ]]);
  const stat = ch.stat();
  assert.deepEqual([stat.inFlight, stat.depth], [0, 0]);
});

Deno.test("next() called again while the loop waits is answered in turn, as a generator's would be", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async" });
  const sender = await s.spawn("peer.ts", "jobs", { mode: "async" });
  const loop = ch[Symbol.asyncIterator]();
  const first = follow(loop.next());
  const second = follow(loop.next());
  const third = follow(loop.return());
  await sender.ask("send", { values: ["a", "b", "c"] });
  assert.equal((await within(first.promise, "the first next()")).value?.data, "a");
  assert.equal((await within(second.promise, "the second next()")).value?.data, "b");
  assert.deepEqual(await within(third.promise, "return()"), { value: undefined, done: true });
  assert.equal((await loop.next()).done, true, "a returned loop stays done");
  // Both handed-out messages were released (the second by return()); the third is still queued.
  const stat = ch.stat();
  assert.deepEqual([stat.inFlight, stat.depth], [0, 1]);
  assert.equal(ch.tryRecv()?.data, "c");
});

Deno.test("async mode: 16 unreleased messages per sender, the 17th waits for a receiver", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async", slots: 16 });

  for (let i = 0; i < 16; i++) ch.trySend(i);
  assert.throws(() => ch.trySend(16), ChannelFullError);
  assert.equal(ch.stat().depth, 16, "a refused trySend queued nothing");

  const receiver = await s.spawn("peer.ts", "jobs", { mode: "async" });
  const seventeenth = follow(ch.send(16, { timeout: 20_000 }));
  await receiver.ask("ping");
  assert.equal(seventeenth.settled, false, "the 17th send did not wait for a free slot");
  assert.equal(ch.stat().depth, 16);

  const taken = await receiver.ask("recv", { timeout: 10_000 });
  assert.equal(taken.data, 0);
  await within(seventeenth.promise, "the 17th send once a receiver took one");
  assert.equal(ch.stat().depth, 16);
});

Deno.test("capacity is shared by every sender, read back by later openers, and a different one is refused", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async", capacity: 10 });
  const first = await s.spawn("peer.ts", "jobs", { mode: "async" }); // no capacity: reads back 10
  const second = await s.spawn("peer.ts", "jobs", { mode: "async", maxMessageSize: 1 << 20 }); // the same as the channel's
  // Asking for other creation settings than the channel has is refused, naming both values.
  assert.throws(
    () => Channel.open("jobs", { prefix: s.prefix, mode: "async", capacity: 500 }),
    (e) => e instanceof InvalidOptionError && /capacity 10, not the 500/.test(e.message),
  );
  assert.throws(
    () => Channel.open("jobs", { prefix: s.prefix, maxMessageSize: 64 }),
    (e) => e instanceof InvalidOptionError && /maxMessageSize 1048576, not the 64/.test(e.message),
  );
  assert.deepEqual(
    Channel.stat("jobs", { prefix: s.prefix }).participants.length,
    3,
    "a refused open left a seat",
  );

  assert.deepEqual(await first.ask("trySend", { n: 6 }), { sent: 6, error: null });
  assert.deepEqual(await second.ask("trySend", { n: 100 }), { sent: 4, error: "ChannelFullError" });
  assert.throws(
    () => ch.trySend("one more"),
    (error) =>
      error instanceof ChannelFullError && error instanceof FerryError && error.code === "ChannelFull",
  );
  assert.equal(ch.stat().depth, 10);
  assert.equal(Channel.stat("jobs", { prefix: s.prefix }).capacity, 10);

  assert.ok(ch.tryRecv() !== undefined);
  assert.deepEqual(await second.ask("trySend", { n: 1 }), { sent: 1, error: null });
  assert.deepEqual(await first.ask("trySend", { n: 1 }), { sent: 0, error: "ChannelFullError" });
});

Deno.test("an async message past its expiry is never delivered, and is counted", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async" });

  await ch.send("stale", { expiry: 0.05 });
  await delay(200); // the deadline passing is the behaviour under test
  await ch.send("fresh");

  assert.equal(ch.tryRecv()?.data, "fresh");
  assert.equal(ch.tryRecv(), undefined);
  const { counters, depth } = ch.stat();
  assert.equal(counters.expired, 1);
  assert.equal(depth, 0);
});

Deno.test("an ack sender whose message expires unreceived gets ExpiredError", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "ack" });

  await within(
    assert.rejects(ch.send("nobody reads this", { expiry: 0.05, timeout: 10_000 }), ExpiredError),
    "ack send with expiry 0.05 s",
  );
  assert.equal(ch.tryRecv(), undefined);
  assert.equal(ch.stat().counters.expired, 1);
});

Deno.test("an ack send that no receiver releases rejects with TimeoutError", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "ack" });

  await within(
    assert.rejects(ch.send("anyone?", { timeout: 100 }), TimeoutError),
    "ack send with timeout 100 ms",
  );
});

Deno.test("invalid names are rejected and create nothing", async () => {
  await using s = new Scope();
  for (const name of ["", "a/b", "x y", "a".repeat(101)]) {
    assert.throws(() => s.open(name), InvalidNameError, `name ${JSON.stringify(name)}`);
  }
  assert.deepEqual(segmentsOf(s.prefix), []);

  const longest = "a".repeat(100);
  s.open(longest);
  s.open("Job.queue_2-x!");
  assert.deepEqual(segmentsOf(s.prefix), ["Job.queue_2-x!", longest].sort());
});

Deno.test("a message over maxMessageSize is refused and nothing is queued", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async", codec: "raw", maxMessageSize: 1024 });

  assert.throws(() => ch.trySend(new Uint8Array(1025)), MessageTooLargeError);
  await assert.rejects(ch.send(new Uint8Array(1025)), MessageTooLargeError);
  assert.throws(() => ch.sendSync(new Uint8Array(4096)), MessageTooLargeError);
  assert.equal(ch.stat().depth, 0);
  assert.equal(ch.stat().counters.sent, 0);

  ch.trySend(new Uint8Array(1024).fill(7));
  assert.equal(ch.tryRecv()?.bytes.byteLength, 1024);
});

Deno.test("an unencodable value throws EncodeError and nothing is queued", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async" });

  assert.throws(() => ch.trySend(() => 1), EncodeError);
  assert.throws(() => ch.trySend(Symbol("x")), EncodeError);
  await assert.rejects(ch.send(() => 1), EncodeError);
  assert.equal(ch.stat().depth, 0);
  assert.equal(ch.tryRecv(), undefined);
});

Deno.test("a foreign file at the segment path gives IncompatibleChannelError and is left untouched", async () => {
  await using s = new Scope();
  const path = segmentPath(s.prefix, "jobs");
  const junk = crypto.getRandomValues(new Uint8Array(64 * 1024));
  await Deno.writeFile(path, junk, { mode: 0o600 });

  assert.throws(() => s.open("jobs"), IncompatibleChannelError);
  assert.deepEqual(await Deno.readFile(path), junk);
});

Deno.test("8 processes opening a brand-new channel at once share one segment", async () => {
  await using s = new Scope();
  const openers = await Promise.all(Array.from({ length: 8 }, () => s.spawn("opener.ts", "jobs")));
  assert.deepEqual(segmentsOf(s.prefix), [], "the channel must not exist before the race");

  await Promise.all(openers.map((opener) => opener.tell("go")));
  for (const opener of openers) await opener.expectLine("sent");
  assert.deepEqual(segmentsOf(s.prefix), ["jobs"]);

  const ch = s.open("jobs");
  assert.equal(ch.stat().capacity, 32);
  const senders = [];
  for (let i = 0; i < 8; i++) {
    const msg = await ch.recv({ timeout: 10_000 });
    assert.deepEqual(msg.data, { pid: msg.sender });
    senders.push(msg.sender);
  }
  assert.deepEqual(senders.sort(), openers.map((opener) => opener.pid).sort());
  assert.equal(ch.tryRecv(), undefined);
});

Deno.test("unlink removes the segment; Channel.stat reads a channel without a handle", async () => {
  await using s = new Scope();
  const ch = s.open("jobs", { mode: "async", capacity: 7, maxMessageSize: 4096 });
  ch.trySend("queued");

  const stat = Channel.stat("jobs", { prefix: s.prefix });
  assert.equal(stat.name, "jobs");
  assert.equal(stat.prefix, s.prefix);
  assert.equal(stat.capacity, 7);
  assert.equal(stat.maxMessageSize, 4096);
  assert.equal(stat.depth, 1);
  assert.ok(stat.participants.some((p) => p.pid === Deno.pid && p.alive));

  ch.close();
  assert.deepEqual(segmentsOf(s.prefix), ["jobs"], "close keeps the segment (a queue outlives its users)");
  Channel.unlink("jobs", { prefix: s.prefix });
  assert.deepEqual(segmentsOf(s.prefix), []);
});

Deno.test("a handle leaves with `using`, and a closed handle throws ChannelClosedError", async () => {
  await using s = new Scope();
  let escaped;
  {
    using ch = Channel.open("jobs", { prefix: s.prefix, mode: "async" });
    ch.trySend("kept");
    escaped = ch;
  }
  assert.throws(() => escaped.trySend("after close"), ChannelClosedError);
  assert.throws(() => escaped.tryRecv(), ChannelClosedError);

  const again = s.open("jobs", { mode: "async" });
  assert.equal(again.tryRecv()?.data, "kept", "messages outlive the handle that sent them");
});
