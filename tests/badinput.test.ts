// The bad input corpus: names, sizes at and around every limit, values that cannot be encoded,
// codecs that throw, damaged segments (truncated, overwritten with random bytes, single fields
// changed), a channel larger than /dev/shm, and a process of another user opening a 0600 channel.
// Each must end in a clear FerryError (or, for damage a channel can survive, in a working
// channel): never a crash, a hang, or a half-written message. Damaged segments are opened in a
// child process, so a crash or a hang there fails one case instead of the test run.

import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import {
  Channel,
  DecodeError,
  EncodeError,
  gc,
  InvalidNameError,
  InvalidOptionError,
  listChannels,
  MessageTooLargeError,
  SystemError,
  TooManyParticipantsError,
} from "../mod.ts";
import { Child, otherUserCommand, Scope, segmentPath, segmentsOf, within } from "./helpers.ts";
import { rng } from "./workers/chaos_common.ts";

/** Bad inputs tried, by kind: printed at the end for the README's figures. */
const tried: Record<string, number> = {};
function count(kind: string, n = 1) {
  tried[kind] = (tried[kind] ?? 0) + n;
}

function assertNothingQueued(ch: Channel) {
  const { depth, inFlight, counters } = ch.stat();
  assert.deepEqual({ depth, inFlight, sent: counters.sent }, { depth: 0, inFlight: 0, sent: 0 });
}

Deno.test("invalid names and prefixes are refused with InvalidNameError and create nothing", async () => {
  await using s = new Scope();
  const bad: unknown[] = [
    "",
    " ",
    "a b",
    "a/b",
    "/a",
    "../x",
    "a\0b",
    "a\nb",
    "é",
    "日本",
    "a*",
    "a?",
    "a:b",
    "a\\b",
    "a%2F",
    "a".repeat(101),
    "x".repeat(4096),
    123,
    null,
    {},
  ];
  for (const name of bad) {
    assert.throws(() => s.open(name as string), InvalidNameError, `name ${JSON.stringify(name)}`);
    if (name !== null) { // a null prefix means the default one
      assert.throws(
        () => Channel.open("ok", { prefix: name as string }),
        InvalidNameError,
        `prefix ${JSON.stringify(name)}`,
      );
    }
    assert.throws(() => Channel.stat(name as string, { prefix: s.prefix }), InvalidNameError);
    assert.throws(() => Channel.unlink(name as string, { prefix: s.prefix }), InvalidNameError);
    count("names", 4);
  }
  assert.deepEqual(segmentsOf(s.prefix), []);

  // A "." in a prefix would let two namespaces name one segment: prefix "adv" with channel
  // "x.jobs" and prefix "adv.x" with channel "jobs" are both /dev/shm/adv.x.jobs.
  for (const prefix of ["adv.x", ".", "a.", ".a"]) {
    assert.throws(() => Channel.open("jobs", { prefix }), InvalidNameError, `prefix ${prefix}`);
    assert.throws(() => Channel.stat("jobs", { prefix }), InvalidNameError, `prefix ${prefix}`);
    assert.throws(() => listChannels(prefix), InvalidNameError, `prefix ${prefix}`);
    assert.throws(() => gc(prefix), InvalidNameError, `prefix ${prefix}`);
    count("names", 4);
  }

  // The edges of the rule work: 100 characters, and names made only of the punctuation allowed.
  for (const name of ["a".repeat(100), ".", "..", "!", "-", "_"]) {
    s.open(name, { mode: "async" }).trySend("x");
    assert.equal(Channel.stat(name, { prefix: s.prefix }).depth, 1, `name ${name}`);
    count("names");
  }
});

Deno.test("options at and around every limit: the limit works, one past it is InvalidOptionError", async () => {
  await using s = new Scope();
  const cases: [string, object, boolean][] = [
    ["capacity", { capacity: 0 }, false],
    ["capacity", { capacity: 1 }, true],
    ["capacity", { capacity: 65536, maxMessageSize: 0 }, true],
    ["capacity", { capacity: 65537 }, false],
    ["capacity", { capacity: -1 }, false],
    ["capacity", { capacity: 1.5 }, false],
    ["capacity", { capacity: NaN }, false],
    ["capacity", { capacity: Infinity }, false],
    ["maxMessageSize", { maxMessageSize: -1 }, false],
    ["maxMessageSize", { maxMessageSize: 0 }, true],
    ["maxMessageSize", { maxMessageSize: 2 ** 30 + 1 }, false],
    ["maxMessageSize", { maxMessageSize: 0.5 }, false],
    ["slots", { slots: 0 }, false],
    ["slots", { slots: 1 }, true],
    ["slots", { slots: 32 }, true],
    ["slots", { slots: 33 }, false],
    ["timeout", { timeout: -1 }, false],
    ["timeout", { timeout: NaN }, false],
    ["timeout", { timeout: 0 }, true],
    ["timeout", { timeout: Infinity }, true],
    ["expiry", { expiry: -1 }, false],
    ["expiry", { expiry: NaN }, false],
    ["expiry", { expiry: 0 }, true],
    ["expiry", { expiry: Infinity }, true],
    ["permissions", { permissions: -1 }, false],
    ["permissions", { permissions: 0o1000 }, false],
    ["mode", { mode: "sync" }, false],
    ["autoRelease", { autoRelease: "no" }, false],
    ["zeroCopy", { zeroCopy: 1 }, false],
    ["create", { create: "false" }, false],
    ["codec", { codec: "json" }, false],
    ["codec", { codec: { encode: () => new Uint8Array() } }, false],
  ];
  for (const [i, [what, options, ok]] of cases.entries()) {
    const name = `limit${i}`;
    if (ok) {
      s.open(name, options).close();
    } else {
      assert.throws(() => s.open(name, options), InvalidOptionError, `${what} ${JSON.stringify(options)}`);
      assert.ok(!segmentsOf(s.prefix).includes(name), `a refused ${what} left a segment`);
    }
    count("options");
  }

  // Per-call options are checked the same way, and a refused call sends nothing.
  const ch = s.open("percall", { mode: "async" });
  for (const mode of ["sync", "ACK", "", null, 1]) {
    const options = { mode } as unknown as { mode: "ack" };
    await assert.rejects(() => ch.send("x", options), InvalidOptionError, `send mode ${mode}`);
    assert.throws(() => ch.trySend("x", options), InvalidOptionError, `trySend mode ${mode}`);
    count("options", 2);
  }
  // An async send that finds room takes the fast path, and still checks every option first.
  for (const options of [{ timeout: -1 }, { timeout: "5" }, { spin: "fast" }, { spin: -1 }, { expiry: -1 }]) {
    await assert.rejects(
      () => ch.send("x", options as never),
      InvalidOptionError,
      `send ${JSON.stringify(options)}`,
    );
    count("options");
  }
  assertNothingQueued(ch);
});

Deno.test("message sizes at and around maxMessageSize and the 96-byte inline limit round-trip or are refused whole", async () => {
  await using s = new Scope();
  for (const max of [0, 1, 95, 96, 97, 4096]) {
    const ch = s.open(`size${max}`, { mode: "async", codec: "raw", maxMessageSize: max });
    for (const len of [0, 1, 95, 96, 97, max - 1, max, max + 1, max * 2 + 1]) {
      if (len < 0) continue;
      const payload = new Uint8Array(len).map((_, i) => (i * 7 + len) & 0xff);
      count("sizes");
      if (len > max) {
        assert.throws(() => ch.trySend(payload), MessageTooLargeError, `len ${len} > max ${max}`);
        assert.throws(() => ch.sendSync(payload), MessageTooLargeError);
        await assert.rejects(ch.send(payload), MessageTooLargeError);
        assert.equal(ch.stat().depth, 0);
        continue;
      }
      ch.trySend(payload);
      const got = ch.tryRecv();
      assert.deepEqual(got?.bytes, payload, `len ${len}, max ${max}`);
    }
  }
  // The largest channel message size the layout allows: one slot of 1 GiB.
  const huge = s.open("size1g", { mode: "async", codec: "raw", capacity: 1, maxMessageSize: 2 ** 30 });
  assert.equal(huge.maxMessageSize, 2 ** 30);
  count("sizes");
});

Deno.test("the 65th handle on a channel is TooManyParticipantsError, and a freed place can be taken again", async () => {
  await using s = new Scope();
  const handles = Array.from({ length: 64 }, () => s.open("crowd", { mode: "async" }));
  assert.throws(
    () => s.open("crowd"),
    (e) => e instanceof TooManyParticipantsError && /close\(\)/.test(e.message) && /using/.test(e.message),
    "the error says that handles keep their seat until closed",
  );
  handles[17].close();
  s.open("crowd", { mode: "async" }).trySend("in");
  assert.equal(handles[0].tryRecv()?.data, "in");
  count("participants", 2);
});

Deno.test("running out of file descriptors is a SystemError that names EMFILE, and closing handles recovers", async () => {
  await using s = new Scope();
  const worker = fileURLToPath(new URL("./workers/fd_exhaust.ts", import.meta.url));
  const out = await new Deno.Command("sh", {
    args: ["-c", `ulimit -n 64 && exec "$0" run -A "$1" "$2"`, Deno.execPath(), worker, s.prefix],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const got = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(got.error, SystemError.name);
  assert.equal(got.code, "Io");
  assert.equal(got.errno, 24);
  assert.equal(got.errnoName, "EMFILE");
  assert.match(got.message, /EMFILE.*too many open files.*ulimit -n/);
  assert.ok(got.opened > 0, "some handles opened before the limit");
  assert.equal(got.afterClose, "ok");
  count("system limits");
});

Deno.test("values msgpack cannot encode throw EncodeError and write nothing", async () => {
  await using s = new Scope();
  const ch = s.open("values", { mode: "async" });
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  let deep: unknown[] = [];
  const root = deep;
  for (let i = 0; i < 100_000; i++) {
    const next: unknown[] = [];
    deep.push(next);
    deep = next;
  }
  const values: [string, unknown][] = [
    ["function", () => 1],
    ["async function", async () => {}],
    ["class", class {}],
    ["symbol", Symbol("x")],
    ["object with a function", { a: 1, f() {} }],
    ["array with a symbol", [1, Symbol("y")]],
    ["map with a function", new Map([[1, () => 1]])],
    ["circular object", circular],
    ["100k-deep array", root],
    ["getter that throws", {
      get x() {
        throw new Error("getter");
      },
    }],
    [
      "proxy that throws",
      new Proxy({}, {
        ownKeys() {
          throw new Error("ownKeys");
        },
      }),
    ],
  ];
  for (const [what, value] of values) {
    assert.throws(() => ch.trySend(value), EncodeError, what);
    assert.throws(() => ch.sendSync(value), EncodeError, what);
    await assert.rejects(ch.send(value), EncodeError, what);
    count("values", 3);
  }
  assertNothingQueued(ch);

  const raw = s.open("raw", { mode: "async", codec: "raw" });
  for (
    const value of ["text", 1, null, undefined, new ArrayBuffer(4), [1, 2], new Uint16Array(2), { length: 1 }]
  ) {
    assert.throws(() => raw.trySend(value), EncodeError, `raw ${String(value)}`);
    count("values");
  }
  assertNothingQueued(raw);
  ch.trySend("still works");
  assert.equal(ch.tryRecv()?.data, "still works");
});

Deno.test("custom codecs that throw or return the wrong thing: EncodeError or DecodeError, and the channel goes on", async () => {
  await using s = new Scope();
  const boom = new Error("codec exploded");
  const encoders: [string, (v: unknown) => unknown][] = [
    ["throws", () => {
      throw boom;
    }],
    ["throws a string", () => {
      throw "not an Error";
    }],
    ["returns a string", () => "bytes?"],
    ["returns null", () => null],
    ["returns an ArrayBuffer", () => new ArrayBuffer(4)],
    ["returns a number[]", () => [1, 2, 3]],
  ];
  for (const [what, encode] of encoders) {
    const ch = s.open(`enc${what.replaceAll(/[^a-z]/g, "_")}`, {
      mode: "async",
      codec: { encode: encode as (v: unknown) => Uint8Array, decode: (b) => b },
    });
    assert.throws(() => ch.trySend({ x: 1 }), EncodeError, what);
    await assert.rejects(ch.send({ x: 1 }), EncodeError, what);
    assertNothingQueued(ch);
    count("codecs", 2);
  }
  const thrown = s.open("encthrown", {
    mode: "async",
    codec: {
      encode: () => {
        throw boom;
      },
      decode: (b) => b,
    },
  });
  assert.throws(() => thrown.trySend(1), (e) => e instanceof EncodeError && e.cause === boom);

  const tooBig = s.open("enclarge", {
    mode: "async",
    maxMessageSize: 16,
    codec: { encode: () => new Uint8Array(17), decode: (b) => b },
  });
  assert.throws(() => tooBig.trySend(1), MessageTooLargeError);
  count("codecs");

  // A decoder that throws: reading .data is a DecodeError, the message is consumed, the next one is fine.
  let fail = true;
  const picky = s.open("dec", {
    mode: "async",
    codec: {
      encode: (v: unknown) => new TextEncoder().encode(String(v)),
      decode: (b: Uint8Array) => {
        if (fail) throw boom;
        return new TextDecoder().decode(b);
      },
    },
  });
  picky.trySend("first");
  picky.trySend("second");
  const first = picky.tryRecv()!;
  assert.throws(() => first.data, (e) => e instanceof DecodeError && e.cause === boom);
  assert.deepEqual(new TextDecoder().decode(first.bytes), "first");
  fail = false;
  assert.equal(picky.tryRecv()?.data, "second");
  assert.equal(picky.tryRecv(), undefined);
  assert.equal(picky.stat().inFlight, 0);
  count("codecs");
});

// ------------------------------------------------------------------ damaged segments

/**
 * Where things are in a segment of capacity 8 and maxMessageSize 4096 (core/src/layout.rs). The region
 * offsets are read from the healthy segment's own header (Fixed: version at 8, participants_off at 40,
 * slots_off at 48, data_off at 56); the sizes of a participant (384 B) and a slot (128 B) and the fields
 * used inside them are those of the current layout.
 */
const L = {
  capacity: 8,
  max: 4096,
  participantBytes: 384,
  slotBytes: 128,
  /** OwnerLine.tail within a participant, Slot.len within a slot. */
  tailAt: 16,
  lenAt: 24,
};

function offsets(base: Uint8Array) {
  const v = new DataView(base.buffer, base.byteOffset, base.byteLength);
  return {
    version: v.getUint32(8, true),
    participantsOff: Number(v.getBigUint64(40, true)),
    slotsOff: Number(v.getBigUint64(48, true)),
    dataOff: Number(v.getBigUint64(56, true)),
  };
}

/** A channel with traffic in it (queued, held by a dead handle, released), as bytes. */
async function healthySegment(s: Scope, name: string): Promise<Uint8Array> {
  const ch = Channel.open(name, {
    prefix: s.prefix,
    capacity: L.capacity,
    maxMessageSize: L.max,
    mode: "async",
    codec: "raw",
    autoRelease: false,
  });
  for (let i = 0; i < 5; i++) ch.trySend(new Uint8Array(i * 60 + 1).fill(i));
  ch.tryRecv()!.release();
  ch.tryRecv(); // held when the handle closes: redelivered
  ch.close();
  const bytes = await Deno.readFile(segmentPath(s.prefix, name));
  Channel.unlink(name, { prefix: s.prefix });
  return bytes;
}

interface Damage {
  name: string;
  /** What a correct core does with it. */
  expect: "incompatible" | "works" | "either";
  bytes: Uint8Array;
}

function corpus(base: Uint8Array, seed: number): Damage[] {
  const random = rng(seed);
  const at = offsets(base);
  const out: Damage[] = [];
  const total = base.length;
  const copy = () => base.slice();
  const randomize = (b: Uint8Array, from: number, to: number) => {
    for (let i = from; i < Math.min(to, b.length); i++) b[i] = Math.floor(random() * 256);
    return b;
  };
  const set32 = (at: number, v: number) => {
    const b = copy();
    new DataView(b.buffer).setUint32(at, v >>> 0, true);
    return b;
  };
  const set64 = (at: number, v: bigint) => {
    const b = copy();
    new DataView(b.buffer).setBigUint64(at, v, true);
    return b;
  };
  // Truncated anywhere (0 bytes is an unbuilt segment: it is built again and works).
  out.push({ name: "truncated-0", expect: "works", bytes: new Uint8Array(0) });
  for (
    const cut of [1, 8, 12, 16, 64, 127, 128, 511, 512, 4095, 4096, at.slotsOff, total - 4096, total - 1]
  ) {
    out.push({ name: `truncated-${cut}`, expect: "incompatible", bytes: base.slice(0, cut) });
  }
  const longer = new Uint8Array(total + 4096);
  longer.set(base);
  out.push({ name: "extended-4096", expect: "incompatible", bytes: longer });
  // Random bytes: the whole file, the fixed header line.
  for (let i = 0; i < 6; i++) {
    out.push({ name: `random-all-${i}`, expect: "incompatible", bytes: randomize(copy(), 0, total) });
    out.push({ name: `random-header-${i}`, expect: "incompatible", bytes: randomize(copy(), 0, 128) });
  }
  out.push({ name: "zeroed-all", expect: "works", bytes: new Uint8Array(total) });
  // One field of the fixed header.
  out.push({ name: "magic", expect: "incompatible", bytes: set64(0, 0x1234n) });
  out.push({ name: "version-plus-1", expect: "incompatible", bytes: set32(8, at.version + 1) });
  out.push({ name: "version-max", expect: "incompatible", bytes: set32(8, 0xffff_ffff) });
  out.push({ name: "total_size", expect: "incompatible", bytes: set64(16, BigInt(total + 4096)) });
  out.push({ name: "capacity-0", expect: "incompatible", bytes: set32(24, 0) });
  out.push({ name: "capacity-huge", expect: "incompatible", bytes: set32(24, 0xffff_ffff) });
  out.push({ name: "capacity-plus-1", expect: "incompatible", bytes: set32(24, L.capacity + 1) });
  out.push({ name: "max_message-huge", expect: "incompatible", bytes: set32(28, 0xffff_ffff) });
  out.push({ name: "max_message-twice", expect: "incompatible", bytes: set32(28, L.max * 2) });
  for (
    const [field, off] of [["slot_stride", 32], ["participants_off", 40], ["slots_off", 48], [
      "data_off",
      56,
    ]] as const
  ) {
    out.push({ name: field, expect: "incompatible", bytes: set64(off, 1n << 40n) });
  }
  // init_state other than READY: treated as a segment some builder is still making (or died making),
  // which the opener waits for and then builds anew.
  for (const v of [0, 1, 3, 0xffff_ffff]) {
    out.push({ name: `init_state-${v}`, expect: "either", bytes: set32(12, v) });
  }
  // The header intact and the rest random: shared counters, wait lines, participants, slots, data.
  const regions: [string, number, number][] = [
    ["wait-lines", 128, 384],
    ["shared-line", 384, 512],
    ["participants", at.participantsOff, at.slotsOff],
    ["slots", at.slotsOff, at.slotsOff + L.capacity * L.slotBytes],
    ["data", at.dataOff, total],
    ["after-header", 128, total],
  ];
  for (const [what, from, to] of regions) {
    out.push({ name: `random-${what}`, expect: "either", bytes: randomize(copy(), from, to) });
  }
  return out;
}

/** A damaged segment's case that has not answered in this long is hung (a healthy one takes milliseconds). */
const HANG_MS = 3_000;

interface CaseResult {
  name: string;
  open: string;
  ops: string[];
}

/**
 * Runs damaged segments through tests/workers/chaos_corrupt.ts, one child for as long as it
 * survives: returns each case's result, or "crashed"/"hung" with the child's stderr.
 */
async function openDamaged(s: Scope, cases: Damage[]): Promise<Map<string, CaseResult | string>> {
  const results = new Map<string, CaseResult | string>();
  let next = 0;
  while (next < cases.length) {
    for (const c of cases) await Deno.writeFile(segmentPath(s.prefix, c.name), c.bytes, { mode: 0o600 });
    const child = new Child("chaos_corrupt.ts", [s.prefix]);
    try {
      await child.expectLine("ready");
      for (; next < cases.length; next++) {
        const c = cases[next];
        await child.tell(c.name);
        const started = await child.line(`case ${c.name}`, 20_000).catch(() => undefined);
        const line = started === `case ${c.name}`
          ? await child.line(`the result of ${c.name}`, HANG_MS).catch((e) => `${e}`)
          : `${started}`;
        if (line.startsWith("{")) {
          results.set(c.name, JSON.parse(line));
          continue;
        }
        await child.kill();
        const status = await child.status;
        results.set(
          c.name,
          status.signal === "SIGKILL" && line.includes("within")
            ? `hung: ${line}`
            : `crashed (${status.signal ?? status.code}): ${line}`,
        );
        next++;
        break;
      }
    } finally {
      await child[Symbol.asyncDispose]();
      for (const name of segmentsOf(s.prefix)) await Deno.remove(segmentPath(s.prefix, name)).catch(() => {});
    }
  }
  return results;
}

function judge(c: Damage, r: CaseResult | string | undefined): string | undefined {
  if (typeof r !== "object") return `${c.name}: ${r ?? "no result"}`;
  if (r.open === "IncompatibleChannel") {
    return c.expect === "works" ? `${c.name}: refused a segment it can rebuild` : undefined;
  }
  if (r.open !== "ok") return `${c.name}: open failed with ${r.open}`;
  if (c.expect === "incompatible") {
    return `${c.name}: opened a segment that should be IncompatibleChannel (${r.ops})`;
  }
  const unclear = r.ops.filter((op) => op.startsWith("js:"));
  if (unclear.length > 0) return `${c.name}: a step threw a non-ferry error: ${unclear[0]}`;
  if (c.expect === "works" && r.ops[2] !== "ok") {
    return `${c.name}: the rebuilt channel refused a message (${r.ops})`;
  }
  return undefined;
}

Deno.test("damaged segments (truncated, random bytes, bad header fields) are IncompatibleChannelError or work, in a child that must not crash or hang", async () => {
  await using s = new Scope();
  const base = await healthySegment(s, "healthy");
  const cases = corpus(base, 1).filter((c) =>
    !c.name.startsWith("random-") || c.name.startsWith("random-all") || c.name.startsWith("random-header")
  );
  const results = await within(openDamaged(s, cases), "the damaged segments", 120_000);
  count("segments", cases.length);
  const wrong = cases.map((c) => judge(c, results.get(c.name))).filter((w) => w !== undefined);
  assert.deepEqual(wrong, []);
});

Deno.test("segments whose header is intact and whose body is random bytes never crash or hang the process that opens them", async () => {
  await using s = new Scope();
  const base = await healthySegment(s, "healthy");
  const cases = corpus(base, 1).filter((c) =>
    c.name.startsWith("random-") && !/^random-(all|header)/.test(c.name)
  );
  const results = await within(openDamaged(s, cases), "the damaged segments", 120_000);
  count("segments", cases.length);
  const wrong = cases.map((c) => judge(c, results.get(c.name))).filter((w) => w !== undefined);
  assert.deepEqual(wrong, []);
});

// Two reproductions of the failures the test above finds, each one field of an otherwise healthy segment.

Deno.test("a lane tail overwritten with a large number: the receive that drains that lane answers, never hangs (it once did)", async () => {
  await using s = new Scope();
  const bytes = await healthySegment(s, "healthy");
  // Participant 0's OwnerLine.tail (offset 16 in the line): its lane now claims 2^40 messages.
  new DataView(bytes.buffer).setBigUint64(offsets(bytes).participantsOff + L.tailAt, 1n << 40n, true);
  const results = await openDamaged(s, [{ name: "lane-tail", expect: "either", bytes }]);
  count("segments");
  assert.equal(judge({ name: "lane-tail", expect: "either", bytes }, results.get("lane-tail")), undefined);
});

Deno.test("a queued message whose length field exceeds maxMessageSize: the receiver answers, never crashes (it once took SIGSEGV)", async () => {
  await using s = new Scope();
  const bytes = await healthySegment(s, "healthy");
  const view = new DataView(bytes.buffer);
  for (let k = 0; k < L.capacity; k++) {
    const at = offsets(bytes).slotsOff + k * L.slotBytes;
    if ((view.getUint32(at, true) & 0xf) === 2) view.setUint32(at + L.lenAt, 64 << 20, true); // READY: len = 64 MiB
  }
  const results = await openDamaged(s, [{ name: "slot-len", expect: "either", bytes }]);
  count("segments");
  assert.equal(judge({ name: "slot-len", expect: "either", bytes }, results.get("slot-len")), undefined);
});

// ------------------------------------------------------------------ the machine's limits

function shmSize(): { size: number; free: number } {
  const out = new Deno.Command("df", { args: ["-B1", "--output=size,avail", "/dev/shm"] }).outputSync();
  const [size, free] = new TextDecoder().decode(out.stdout).trim().split("\n")[1].trim().split(/\s+/).map(
    Number,
  );
  return { size, free };
}

Deno.test("a channel whose worst case is larger than /dev/shm opens at the cost of its fixed part", async () => {
  await using s = new Scope();
  const { size } = shmSize();
  // Before the payload allocator this was NoSpaceError at open: every slot's pages were allocated
  // up front. Now only the fixed part is, and a message's pages when it needs them (a full
  // /dev/shm is NoSpaceError at that send: tests/memory.test.ts).
  const capacity = 65536;
  const maxMessageSize = Math.min(2 ** 30, Math.ceil((size * 1.5) / capacity / 4096) * 4096);
  const ch = s.open("toobig", { capacity, maxMessageSize, mode: "async" });
  const fixed = ch.stat().bytes;
  assert.ok(fixed < 16 * 2 ** 20, `the fixed part of 65536 slots is ${fixed} bytes`);
  assert.ok(Deno.statSync(segmentPath(s.prefix, "toobig")).blocks! * 512 <= fixed);
  ch.trySend("small");
  assert.equal(ch.stat().bytes, fixed, "a small message costs no page");
  count("no-space", 2);
});

Deno.test({
  name:
    "a process of another user opening a 0600 channel gets PermissionDeniedError; 0666 opened with permissions 0o666 lets it in",
  ignore: otherUserCommand() === undefined,
  fn: async () => {
    await using s = new Scope();
    const closed = s.open("private", { mode: "async" });
    const open = s.open("shared", { mode: "async", permissions: 0o666 });
    closed.trySend("secret");
    const denoDir = await s.tempDir();
    await Deno.chmod(denoDir, 0o777);
    const script = `
      import { Channel } from "${new URL("../mod.ts", import.meta.url).href}";
      const out = {};
      for (const name of ["private", "shared"]) {
        try {
          // A root-owned segment is trusted; its 0666 mode must be asked for (see trust.test.ts).
          const ch = Channel.open(name, { prefix: "${s.prefix}", mode: "async", permissions: 0o666 });
          ch.trySend("from " + Deno.uid());
          out[name] = "opened";
          ch.close();
        } catch (e) {
          out[name] = e.code ?? e.name;
        }
      }
      try { Channel.stat("private", { prefix: "${s.prefix}" }); out.stat = "ok"; } catch (e) { out.stat = e.code ?? e.name; }
      console.log(JSON.stringify(out));
    `;
    const [cmd, ...args] = otherUserCommand()!;
    const child = new Deno.Command(cmd, {
      args: [...args, Deno.execPath(), "eval", script],
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      env: { DENO_DIR: denoDir, HOME: denoDir },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = await within(child.output(), "the other user's process");
    const text = new TextDecoder().decode(out.stdout).trim();
    assert.ok(out.success, `the other user's process failed: ${new TextDecoder().decode(out.stderr)}`);
    assert.deepEqual(JSON.parse(text), {
      private: "PermissionDenied",
      shared: "opened",
      stat: "PermissionDenied",
    });
    assert.equal(open.tryRecv()?.data, "from 65534");
    assert.equal(closed.stat().counters.sent, 1, "the denied process wrote into the 0600 channel");
    count("other-user", 3);
  },
});

Deno.test("bad inputs tried (figures for the README)", () => {
  const total = Object.values(tried).reduce((a, b) => a + b, 0);
  console.log(
    `bad inputs tried: ${total} (${Object.entries(tried).map(([k, v]) => `${k} ${v}`).join(", ")})`,
  );
  assert.ok(total > 0);
});
