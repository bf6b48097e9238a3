// The msgpack codec's shared shapes (src/structures.ts, core/src/structs): the namespace's store,
// between real processes. A receiver that never saw a shape being added reads it from the store;
// concurrent adders lose nothing; an adder dying (or stopping) at any step of an append leaves a
// store others keep using; a damaged or foreign store gives a typed error or standalone messages,
// never a wrong value.

import assert from "node:assert/strict";
import { Packr } from "npm:msgpackr@1.11.5/pack";
import { InvalidNameError, Namespace } from "../mod.ts";
import { Child, delay, Scope, STEP_TIMEOUT_MS, within } from "./helpers.ts";

const FAULT_LIB = Deno.env.get("FERRY_FAULT_LIB");
/** core/src/structs: the data area's offset and where the count lives. */
const COUNT_AT = 128;
const DATA_AT = 256 + 8 * 1024;
/** What an object of msgpackr's standalone encoding (ferry's "msgpack-plain") takes. */
const standalone = new Packr({ moreTypes: true });

function storePath(prefix: string): string {
  return `/dev/shm/${prefix}~structures`;
}

/** Shapes published in the namespace's store, read from the file as any process would map it. */
function shapesIn(prefix: string): number {
  const bytes = Deno.readFileSync(storePath(prefix));
  return new DataView(bytes.buffer).getUint32(COUNT_AT, true);
}

/** `count` objects, each of its own shape, keys marked with `tag`. */
function shaped(tag: string, count: number): Record<string, number>[] {
  return Array.from({ length: count }, (_, i) => ({ [`${tag}${i}`]: i, common: i }));
}

/** A peer.ts process on `name`, with `env` added (the fault library and its kill point). */
async function peer(s: Scope, name: string, options: object, env?: Record<string, string>): Promise<Child> {
  const child = new Child("peer.ts", [s.prefix, name, JSON.stringify(options)], env);
  await child.expectLine("ready");
  return child;
}

Deno.test("a receiver started after the shapes were added decodes every message, each naming its shape by id", async () => {
  await using s = new Scope();
  const ch = s.open("late", { mode: "async" });
  const values = [
    { id: 1, user: "alice", tags: ["a"] },
    { id: 2, user: "bob", tags: [] },
    { nested: { deep: { n: 3 } }, list: [{ x: 1 }, { x: 2 }] },
  ];
  for (const v of values) ch.sendSync(v);
  assert.ok(shapesIn(s.prefix) >= 5, "the sender put its shapes in the store");
  await using late = await s.spawn("peer.ts", "late");
  for (const v of values) {
    const got = await late.ask("recv", { timeout: 5_000 });
    assert.deepEqual(got.data, v);
    assert.ok(got.size! < standalone.pack(v).length, "the message names its shapes instead of carrying them");
  }
});

Deno.test("two senders adding shapes at once: every message decodes in a third process, no shape lost or doubled", async () => {
  await using s = new Scope();
  const ch = s.open("race", { mode: "async", capacity: 200, maxMessageSize: 1024 });
  // 31 messages each: within a sender's 32 slots, so neither waits for the reader.
  await using a = await s.spawn("peer.ts", "race", { mode: "async", slots: 32 });
  await using b = await s.spawn("peer.ts", "race", { mode: "async", slots: 32 });
  const fromA = shaped("a", 30), fromB = shaped("b", 30);
  // Both start appending at the same moment; "common" alone is one more shape both may add.
  const both = [{ common: 1 }, ...fromA], other = [{ common: 2 }, ...fromB];
  const [ra, rb] = await within(
    Promise.all([a.ask("send", { values: both }), b.ask("send", { values: other })]),
    "both senders finish",
  );
  assert.deepEqual([ra.sent, rb.sent], [both.length, other.length]);
  await using reader = await s.spawn("peer.ts", "race");
  const got = [];
  for (let i = 0; i < both.length + other.length; i++) {
    got.push((await reader.ask("recv", { timeout: 5_000 })).data);
  }
  const key = (v: unknown) => JSON.stringify(v);
  assert.deepEqual(got.map(key).sort(), [...both, ...other].map(key).sort());
  assert.equal(shapesIn(s.prefix), 1 + fromA.length + fromB.length, "each shape once");
  ch.close();
});

for (const point of ["structs.locked", "structs.written", "structs.published"]) {
  Deno.test({
    name: `a sender killed at ${point} leaves a store the others keep using`,
    ignore: !FAULT_LIB,
    async fn() {
      await using s = new Scope();
      const ch = s.open("kill", { mode: "async" });
      ch.sendSync({ before: 1 });
      const shapesBefore = shapesIn(s.prefix);
      {
        await using doomed = await peer(s, "kill", { mode: "async" }, {
          FERRY_LIB: FAULT_LIB!,
          FERRY_FAULT: point,
        });
        await doomed.tell(JSON.stringify({ op: "send", values: [{ dying: 1 }] }));
        const status = await within(doomed.status, "the sender dies at the kill point");
        assert.equal(status.success, false);
      }
      // Published before it died, or not at all: never half an entry.
      assert.equal(shapesIn(s.prefix), point === "structs.published" ? shapesBefore + 1 : shapesBefore);
      const after = shapesIn(s.prefix);
      ch.sendSync({ after: 2, more: [{ x: 1 }] });
      assert.ok(
        shapesIn(s.prefix) > after,
        "the next sender adds its shapes (the lock died with its holder)",
      );
      await using reader = await s.spawn("peer.ts", "kill");
      // The dying sender's message was never written: it is sent only once its shapes are stored.
      assert.deepEqual((await reader.ask("recv", { timeout: 5_000 })).data, { before: 1 });
      assert.deepEqual((await reader.ask("recv", { timeout: 5_000 })).data, { after: 2, more: [{ x: 1 }] });
      assert.equal(ch.stat().depth, 0);
    },
  });
}

Deno.test({
  name:
    "a sender stopped holding the append lock: others send new shapes whole meanwhile, and share again once it died",
  ignore: !FAULT_LIB,
  async fn() {
    await using s = new Scope();
    const ch = s.open("stop", { mode: "async" });
    await using stopped = await peer(s, "stop", { mode: "async" }, {
      FERRY_LIB: FAULT_LIB!,
      FERRY_FAULT: "structs.locked",
      FERRY_FAULT_ACTION: "stop",
    });
    await stopped.tell(JSON.stringify({ op: "send", values: [{ frozen: 1 }] }));
    // It stops itself holding the lock: wait until the kernel reports it stopped.
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while (!Deno.readTextFileSync(`/proc/${stopped.pid}/stat`).split(") ")[1].startsWith("T")) {
      if (Date.now() > deadline) throw new Error("the peer never stopped at structs.locked");
      await delay(10); // polling the kernel's view of the peer, not standing in for it
    }
    const shapes = shapesIn(s.prefix);
    const whole = { meanwhile: "sent whole" };
    ch.sendSync(whole);
    assert.equal(shapesIn(s.prefix), shapes, "nothing added while the lock is held");
    await using reader = await s.spawn("peer.ts", "stop");
    const got = await reader.ask("recv", { timeout: 5_000 });
    assert.deepEqual(got.data, whole);
    await stopped.kill();
    // The pause after a busy lock (1 s) passes; then new shapes are shared again.
    await delay(1_100);
    ch.sendSync({ later: 1 });
    assert.equal(shapesIn(s.prefix), shapes + 1);
    assert.deepEqual((await reader.ask("recv", { timeout: 5_000 })).data, { later: 1 });
  },
});

Deno.test("a full store: new shapes travel whole, every message still decodes in another process", async () => {
  await using s = new Scope();
  const ch = s.open("full", { mode: "async", capacity: 2000, maxMessageSize: 256 });
  const values = shaped("k", 1100);
  // This process receives all but the last 10 (it knows every shape); a fresh one reads the first
  // 1024 from the store and finds the rest inside their messages.
  const mine = s.open("full");
  for (let at = 0; at < values.length; at += 10) {
    ch.sendManySync(values.slice(at, at + 10));
    if (at + 10 < values.length) mine.recvManySync(10, { timeout: 5_000 });
  }
  assert.equal(shapesIn(s.prefix), 1024, "the store holds as many shapes as it can, no more");
  await using reader = await s.spawn("peer.ts", "full");
  for (let i = 1090; i < 1100; i++) {
    assert.deepEqual((await reader.ask("recv", { timeout: 5_000 })).data, values[i]);
  }
});

Deno.test("a damaged shape entry is a DecodeError in a process that reads it, never an object with wrong keys", async () => {
  await using s = new Scope();
  const ch = s.open("damaged", { mode: "async" });
  ch.sendSync({ account: 1, amount: 100 });
  const store = await Deno.open(storePath(s.prefix), { read: true, write: true });
  // The entry is msgpack ["account", "amount"]: change a letter of a key.
  const entry = new Uint8Array(16);
  await store.seek(DATA_AT, Deno.SeekMode.Start);
  await store.read(entry);
  const at = entry.indexOf("m".charCodeAt(0));
  await store.seek(DATA_AT + at, Deno.SeekMode.Start);
  await store.write(new Uint8Array(["M".charCodeAt(0)]));
  store.close();
  await using reader = await s.spawn("peer.ts", "damaged");
  const got = await reader.ask("recv", { timeout: 5_000 });
  assert.equal(got.error, "DecodeError", JSON.stringify(got));
});

Deno.test("a foreign file where the store belongs: messages travel whole and decode everywhere", async () => {
  await using s = new Scope();
  Deno.writeFileSync(
    storePath(s.prefix),
    new TextEncoder().encode("not a ferry structure store".repeat(10)),
    {
      mode: 0o600,
    },
  );
  const ch = s.open("foreign", { mode: "async" });
  const value = { id: 7, when: new Date(0).toISOString() };
  ch.sendSync(value);
  await using reader = await s.spawn("peer.ts", "foreign");
  const got = await reader.ask("recv", { timeout: 5_000 });
  assert.deepEqual(got.data, value);
  assert.equal(got.size, standalone.pack(value).length, "standalone: no shape ids to resolve");
  assert.equal(
    new TextDecoder().decode(Deno.readFileSync(storePath(s.prefix))).slice(0, 12),
    "not a ferry ",
    "left untouched",
  );
});

Deno.test("bytes moved raw into another namespace are a DecodeError there, not another object", async () => {
  await using a = new Scope();
  await using b = new Scope();
  const from = a.open("src", { mode: "async" });
  const into = b.open("dst", { mode: "async", codec: "raw" });
  b.open("dst", { mode: "async" }).sendSync({ other: "shape", first: 1 }); // b's store: another id 0
  from.sendSync({ mine: 1 });
  const raw = a.open("src", { codec: "raw" }).recvSync({ timeout: 5_000 }).data as Uint8Array;
  into.sendSync(raw.slice());
  await using reader = await b.spawn("peer.ts", "dst");
  // Two handles are two senders: their messages may come in either order.
  const got = [await reader.ask("recv", { timeout: 5_000 }), await reader.ask("recv", { timeout: 5_000 })];
  const decoded = got.find((r) => r.error === undefined);
  assert.deepEqual(decoded?.data, { other: "shape", first: 1 });
  assert.equal(got.find((r) => r !== decoded)?.error, "DecodeError");
});

Deno.test("Namespace.unlinkShapes removes the namespace's store once its processes are gone", async () => {
  await using s = new Scope();
  const tx = s.open("unlinked", { mode: "async", capacity: 8 });
  tx.trySend({ price: 1, qty: 2 });
  assert.deepEqual(tx.tryRecv()?.data, { price: 1, qty: 2 });
  tx.close();
  assert.ok(Deno.statSync(storePath(s.prefix)).isFile, "the first msgpack send made the store");
  assert.equal(Namespace.unlinkShapes({ prefix: s.prefix }), true);
  assert.throws(() => Deno.statSync(storePath(s.prefix)), Deno.errors.NotFound);
  assert.equal(Namespace.unlinkShapes({ prefix: s.prefix }), false, "nothing left to remove");
  assert.throws(() => Namespace.unlinkShapes({ prefix: "no/slash" }), InvalidNameError);
});
