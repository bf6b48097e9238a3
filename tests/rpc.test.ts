// Request/response and streamed replies between real processes: servers in child processes, the
// client here (or in a child, to be killed). Servers report what they hold on the "events" channel,
// so every step waits for what happened, never for time.

import assert from "node:assert/strict";
import { type Channel, type Client, connect, PeerDiedError, RemoteError, TimeoutError } from "../mod.ts";
import { follow, Scope, segmentsOf, within } from "./helpers.ts";

const SERVICE = "math";

/** The next event a server reported (see tests/workers/rpc_server.ts). */
async function nextEvent(events: Channel, what: string, ms?: number): Promise<Record<string, number>> {
  return (await within(events.recv({ timeout: Infinity }), what, ms)).data as Record<string, number>;
}

Deno.test("a call returns the handler's value; a thrown error is a RemoteError with its code; headers travel", async () => {
  await using s = new Scope();
  await s.spawn("rpc_server.ts", SERVICE);
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });

  assert.equal(await math.call("add", { a: 1, b: 2 }), 3);
  const echoed = await math.call("echo", [1, "two"], { headers: { traceparent: "00-abc-01" } });
  assert.deepEqual(echoed, { value: [1, "two"], headers: { traceparent: "00-abc-01" }, attempt: 0 });

  const failed = await math.call("fail", { code: "Overdrawn", message: "balance is 0" }).catch((e) => e);
  assert.ok(failed instanceof RemoteError);
  assert.equal(failed.code, "Remote");
  assert.equal(failed.remoteCode, "Overdrawn");
  assert.match(failed.message, /balance is 0/);

  const unknown = await math.call("mul", {}).catch((e) => e);
  assert.ok(unknown instanceof RemoteError);
  assert.equal(unknown.remoteCode, "UnknownMethod");
  const streaming = await math.call("count", { n: 2 }).catch((e) => e as RemoteError);
  assert.equal((streaming as RemoteError).remoteCode, "StreamingMethod");
});

Deno.test("two servers share the load: a busy server leaves the next call to the free one", async () => {
  await using s = new Scope();
  using events = s.open("events", { mode: "async" });
  const a = await s.spawn("rpc_server.ts", SERVICE);
  const b = await s.spawn("rpc_server.ts", SERVICE);
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });

  const first = follow(math.call("hold"));
  const holder = (await nextEvent(events, "a server holding the first call")).holding;
  const other = await within(math.call("whoami"), "the second call");
  assert.notEqual(other, holder);
  assert.deepEqual(new Set([holder, other]), new Set([a.pid, b.pid]));
  await a.tell("go");
  await b.tell("go");
  assert.equal(await within(first.promise, "the held call"), holder);
});

Deno.test("a server killed holding a call: the caller gets PeerDiedError", async () => {
  await using s = new Scope();
  using events = s.open("events", { mode: "async" });
  const server = await s.spawn("rpc_server.ts", SERVICE);
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });

  const call = follow(math.call("hold"));
  assert.equal((await nextEvent(events, "the server holding the call")).holding, server.pid);
  await server.kill();
  await within(assert.rejects(call.promise, PeerDiedError), "the call after its server died");

  // The service works again with a new server.
  await s.spawn("rpc_server.ts", SERVICE);
  assert.equal(await within(math.call("add", { a: 2, b: 2 }), "a call to the new server"), 4);
});

Deno.test("an idempotent call whose server dies is sent again and answered by another server", async () => {
  await using s = new Scope();
  using events = s.open("events", { mode: "async" });
  const doomed = await s.spawn("rpc_server.ts", SERVICE);
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });

  const call = follow(math.call("hold", undefined, { idempotent: true }));
  assert.equal((await nextEvent(events, "the first server holding the call")).holding, doomed.pid);
  const rescuer = await s.spawn("rpc_server.ts", SERVICE);
  await doomed.kill();
  assert.deepEqual(await nextEvent(events, "the second server holding the retry"), {
    holding: rescuer.pid,
    attempt: 1,
  });
  await rescuer.tell("go");
  assert.equal(await within(call.promise, "the retried call"), rescuer.pid);
});

Deno.test("a client killed with a reply pending: its reply channel is reclaimed and the server keeps serving", async () => {
  await using s = new Scope();
  using events = s.open("events", { mode: "async" });
  const server = await s.spawn("rpc_server.ts", SERVICE);
  const client = await s.spawn("rpc_client.ts", SERVICE);
  const replyChannel = await client.line("the client's reply channel");
  assert.ok(segmentsOf(s.prefix).includes(replyChannel));

  await client.tell(JSON.stringify({ op: "start", method: "hold" }));
  await nextEvent(events, "the server holding the dead client's call");
  await client.kill();
  await server.tell("go"); // the reply goes to a channel nobody will read

  // The next client to connect removes reply channels whose owner is dead (no gc).
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });
  assert.ok(!segmentsOf(s.prefix).includes(replyChannel), "the dead client's reply channel is still there");
  assert.equal(await within(math.call("add", { a: 20, b: 22 }), "a call after the client died"), 42);
});

Deno.test("close() removes the client's reply channel", async () => {
  await using s = new Scope();
  const math = connect(SERVICE, { prefix: s.prefix });
  assert.ok(segmentsOf(s.prefix).includes(math.replyChannel));
  math.close();
  assert.ok(!segmentsOf(s.prefix).includes(math.replyChannel));
});

Deno.test("a call with no server times out; an aborted call rejects with the signal's reason", async () => {
  await using s = new Scope();
  using events = s.open("events", { mode: "async" });
  using math = connect(SERVICE, { prefix: s.prefix });
  // The deadline is what is under test here: nobody serves the service.
  await assert.rejects(math.call("add", { a: 1, b: 1 }, { timeout: 50 }), TimeoutError);

  await s.spawn("rpc_server.ts", SERVICE);
  const controller = new AbortController();
  const call = follow(math.call("hold", undefined, { signal: controller.signal, timeout: 20_000 }));
  await nextEvent(events, "the server holding the call");
  controller.abort();
  await assert.rejects(call.promise, { name: "AbortError" });
});

Deno.test("a streamed method yields every item, then ends cleanly; a generator that throws ends the loop with RemoteError", async () => {
  await using s = new Scope();
  await s.spawn("rpc_server.ts", SERVICE);
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });

  const got: number[] = [];
  for await (const i of math.stream<number>("count", { n: 100 }, { window: 8 })) got.push(i);
  assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));

  const before: number[] = [];
  const error = await (async () => {
    for await (const i of math.stream<number>("failStream", { after: 2 })) before.push(i);
  })().catch((e) => e);
  assert.deepEqual(before, [0, 1]);
  assert.ok(error instanceof RemoteError);
  assert.equal(error.remoteCode, "Dry");
  // A plain method streams as one item.
  const one: unknown[] = [];
  for await (const x of math.stream("add", { a: 1, b: 1 })) one.push(x);
  assert.deepEqual(one, [2]);
});

/**
 * Streams `n` items of "produce" with `window`, making a call after each item, and checks that the
 * server never produced more than `window` items ahead of the loop (it reports each on `events`).
 */
async function consumeSlowly(math: Client, events: Channel, n: number, window: number): Promise<void> {
  let produced = 0, consumed = 0;
  for await (const _ of math.stream("produce", { n }, { window })) {
    consumed++;
    // A round trip to the server gives the producer time to run ahead if it could.
    await math.call("whoami");
    while (events.tryRecv() !== undefined) produced++;
    assert.ok(
      produced <= consumed + window,
      `produced ${produced} with ${consumed} consumed, window ${window}`,
    );
  }
  assert.equal(consumed, n);
}

Deno.test("a slow stream consumer holds the producer to the window", async () => {
  await using s = new Scope();
  using events = s.open("events", { mode: "async" });
  await s.spawn("rpc_server.ts", SERVICE, { concurrency: 2 }); // the stream, and a call beside it
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });
  await consumeSlowly(math, events, 60, 4);
});

Deno.test("breaking out of a stream, or aborting it, cancels the generator on the server", async () => {
  await using s = new Scope();
  using events = s.open("events", { mode: "async" });
  const server = await s.spawn("rpc_server.ts", SERVICE);
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });

  let n = 0;
  for await (const _ of math.stream("ticks")) if (++n === 3) break;
  assert.equal((await nextEvent(events, "the generator cancelled after break")).cancelled, server.pid);

  const controller = new AbortController();
  const error = await (async () => {
    for await (const i of math.stream<number>("ticks", undefined, { signal: controller.signal })) {
      if (i === 5) controller.abort();
    }
  })().catch((e) => e);
  assert.equal(error.name, "AbortError");
  assert.equal((await nextEvent(events, "the generator cancelled after abort")).cancelled, server.pid);
  // The server is free again (concurrency 1): both streams ended on its side.
  assert.equal(await within(math.call("add", { a: 1, b: 2 }), "a call after the cancels"), 3);
});

Deno.test("a stream given up before any server took it is cancelled when one does, and leaves the client free", async () => {
  await using s = new Scope();
  using events = s.open("events", { mode: "async" });
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });

  // No server yet: the request waits in the request channel when the loop is aborted.
  const controller = new AbortController();
  const loop = (async () => {
    for await (const _ of math.stream("ticks", undefined, { signal: controller.signal })) { /* none come */ }
  })().catch((e) => e);
  controller.abort();
  assert.equal((await loop).name, "AbortError");

  // The server that takes it is told at its first frame; else its items would fill the client's
  // reply channel and it would wait for room there (replyTimeout) with its one place taken.
  const server = await s.spawn("rpc_server.ts", SERVICE, { replyTimeout: 60_000 });
  assert.equal((await nextEvent(events, "the abandoned stream cancelled", 5000)).cancelled, server.pid);
  assert.equal(await within(math.call("add", { a: 1, b: 2 }), "a call after the abandoned stream", 5000), 3);
});

/**
 * Streams "holdStream" (3 items, then it signals and holds) from a server started with `options`,
 * kills the server once it holds, expects the loop to end with PeerDiedError, and returns the items.
 */
async function killedMidStream(options: Record<string, unknown>): Promise<number[]> {
  await using s = new Scope();
  using events = s.open("events", { mode: "async" });
  const server = await s.spawn("rpc_server.ts", SERVICE, options);
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });
  const got: number[] = [];
  const loop = follow((async () => {
    for await (const i of math.stream<number>("holdStream", { n: 3 })) got.push(i);
  })());
  assert.equal((await nextEvent(events, "the server mid-stream")).holding, server.pid);
  await server.kill();
  await within(assert.rejects(loop.promise, PeerDiedError), "the stream after its server died");
  return got;
}

Deno.test("a server killed mid-stream ends the loop with PeerDiedError after the items it sent", async () => {
  assert.deepEqual(await killedMidStream({}), [0, 1, 2]);
});

Deno.test("a batching server (streamBatch) sends every item in order, within the window, and its errors after its items", async () => {
  await using s = new Scope();
  using events = s.open("events", { mode: "async" });
  await s.spawn("rpc_server.ts", SERVICE, { concurrency: 2, streamBatch: 64 });
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });
  const got: number[] = [];
  for await (const i of math.stream<number>("count", { n: 1000 }, { window: 256 })) got.push(i);
  assert.deepEqual(got, Array.from({ length: 1000 }, (_, i) => i));
  {
    // A batch larger than the client's reply messages goes item by item.
    using small = connect(SERVICE, { prefix: s.prefix, timeout: 20_000, replyMaxMessageSize: 1024 });
    const items: string[] = [];
    for await (const x of small.stream<string>("padded", { n: 50, size: 300 })) items.push(x);
    assert.deepEqual(items, Array.from({ length: 50 }, (_, i) => `${i}`.padEnd(300, ".")));
  }

  const before: number[] = [];
  const error = await (async () => {
    for await (const i of math.stream<number>("failStream", { after: 5 })) before.push(i);
  })().catch((e) => e);
  assert.deepEqual(before, [0, 1, 2, 3, 4], "the items batched before the throw");
  assert.ok(error instanceof RemoteError && error.remoteCode === "Dry");

  await consumeSlowly(math, events, 40, 4);
});

Deno.test("a batching server killed mid-stream still ends the loop with PeerDiedError, never a clean end", async () => {
  const got = await killedMidStream({ streamBatch: 64 });
  // What the generator yielded just before it signalled may have been in the unsent batch.
  assert.deepEqual(got, [0, 1, 2].slice(0, got.length));
});

Deno.test("a server closed gracefully finishes its running call first", async () => {
  await using s = new Scope();
  using events = s.open("events", { mode: "async" });
  const server = await s.spawn("rpc_server.ts", SERVICE);
  using math = connect(SERVICE, { prefix: s.prefix, timeout: 20_000 });
  const call = follow(math.call("hold"));
  await nextEvent(events, "the server holding the call");
  await server.tell("close");
  await server.tell("go");
  await server.expectLine("closed");
  assert.equal(await within(call.promise, "the call running while the server closed"), server.pid);
  assert.ok(!segmentsOf(s.prefix).some((name) => name.startsWith(`${SERVICE}!ctl.`)), "control channel left");
});
