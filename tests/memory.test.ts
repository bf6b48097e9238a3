// A channel costs what it holds: its fixed part (header, participants, slot lines) at creation,
// then the pages its slots need for messages over 96 bytes, up to the `memory` bound. Measured on
// the file itself (`blocks`: what tmpfs allocated), between real processes. Before the allocator,
// every channel allocated capacity x maxMessageSize at creation: 100 MiB for a default one.

import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { Channel, InvalidOptionError } from "../mod.ts";
import { type Child, Scope, segmentPath, STEP_TIMEOUT_MS } from "./helpers.ts";

const MiB = 1 << 20;
const KiB = 1 << 10;
/** What a default channel may allocate while idle (issue 10). */
const IDLE_LIMIT = MiB;
/** The allocator's low-water mark (core/src/channel/alloc.rs, LOW_WATER). */
const LOW_WATER = MiB;

/** Bytes tmpfs allocated for the segment: what it costs in memory, whatever its size says. */
function allocated(s: Scope, name: string): number {
  return Deno.statSync(segmentPath(s.prefix, name)).blocks! * 512;
}

/** A memory_peer.ts reply (see that file). */
interface PeerReply {
  sent?: number;
  error?: string | null;
  message?: string;
  received?: number;
  sizes?: number[];
  bad?: number;
}

function ask(child: Child, op: string, args: Record<string, unknown>): Promise<PeerReply> {
  return child.ask(op, args) as Promise<PeerReply>;
}

async function peer(s: Scope, name: string, options: object = {}): Promise<Child> {
  return await s.spawn("memory_peer.ts", name, { mode: "async", ...options });
}

Deno.test("an idle default channel allocates at most 1 MiB, and says so", async () => {
  await using s = new Scope();
  const ch = s.open("idle");
  const sender = await peer(s, "idle");
  await ask(sender, "send", { sizes: [8, 64, 96] }); // inline messages cost nothing more
  const used = allocated(s, "idle");
  assert.ok(used <= IDLE_LIMIT, `an idle default channel allocated ${used} bytes`);
  const stat = ch.stat();
  assert.ok(stat.bytes <= IDLE_LIMIT && stat.bytes >= used, `stat says ${stat.bytes}, the file ${used}`);
  assert.equal(stat.memory, 100 * MiB, "the default bound: capacity x maxMessageSize");
  console.log(`idle default channel: ${used} bytes allocated, stat.bytes ${stat.bytes}`);
});

Deno.test("five default channels allocate at most 5 MiB together", async () => {
  await using s = new Scope();
  const names = ["a", "b", "c", "d", "e"];
  const df = () =>
    Number(
      new TextDecoder().decode(
        new Deno.Command("df", { args: ["-B1", "--output=used", "/dev/shm"] }).outputSync().stdout,
      ).trim().split("\n")[1],
    );
  const before = df();
  for (const name of names) s.open(name);
  const after = df();
  const total = names.reduce((sum, name) => sum + allocated(s, name), 0);
  assert.ok(total <= 5 * MiB, `five default channels allocated ${total} bytes`);
  // /dev/shm is shared with other work on this machine: its usage is printed, not asserted.
  console.log(`five default channels: ${total} bytes allocated; /dev/shm used moved by ${after - before}`);
});

/** A raw async channel (capacity 64) that took a burst of 16 x 512 KiB, all received: its slots keep the pages. */
async function afterBurst(s: Scope, name: string) {
  const ch = s.open(name, { mode: "async", codec: "raw", capacity: 64 });
  const fixed = ch.stat().bytes;
  const sender = await peer(s, name);
  const receiver = await peer(s, name);
  assert.deepEqual(await ask(sender, "send", { sizes: Array(16).fill(BIG) }), { sent: 16, error: null });
  const grown = ch.stat().bytes;
  assert.equal(grown, fixed + 16 * BIG, "16 queued 512 KiB messages reserve 16 x 512 KiB");
  assert.ok(allocated(s, name) >= 16 * BIG && allocated(s, name) <= grown);
  const got = await ask(receiver, "recv", { n: 16 });
  assert.deepEqual([got.received, got.bad], [16, 0]);
  // Released slots keep their pages for the next large message: no churn for a steady stream.
  assert.equal(ch.stat().bytes, grown);
  return { ch, fixed, grown, sender, receiver };
}

const BIG = 512 * KiB;

Deno.test("memory grows as large messages queue, and small messages between large ones leave their pages", async () => {
  await using s = new Scope();
  const { ch, grown, sender, receiver } = await afterBurst(s, "grow");
  // Sizes mixing in one stream: a 200 B message lands in a slot holding 512 KiB and leaves the
  // pages there for the next 512 KiB one, instead of punching them (which made every large message
  // fault its pages in again).
  for (let round = 0; round < 4; round++) {
    const mixed = Array.from({ length: 8 }, () => [BIG, 200]).flat();
    assert.deepEqual(await ask(sender, "send", { sizes: mixed }), { sent: 16, error: null });
    const got = await ask(receiver, "recv", { n: 16 });
    assert.deepEqual([got.received, got.bad, got.sizes], [16, 0, mixed]);
  }
  assert.equal(ch.stat().bytes, grown, "no slot gave its pages back while large messages kept coming");
  assert.ok(allocated(s, "grow") >= 16 * BIG, "the file still holds them");
});

Deno.test("an idle channel goes back to the low-water mark by itself about a second after its last large message", async () => {
  await using s = new Scope();
  const { ch, fixed, sender, receiver } = await afterBurst(s, "idle-trim");
  // Nobody sends from here; the receiver waits for a message, as an idle receiver does. Its wait's
  // periodic sweep gives the pages back once no send needed them for a second (alloc.rs KEEP_MS).
  assert.deepEqual(await ask(receiver, "park", {}), { parked: true });
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (allocated(s, "idle-trim") > fixed + LOW_WATER && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50)); // polls the file; the wait is the receiver's
  }
  const after = allocated(s, "idle-trim");
  assert.ok(after <= fixed + LOW_WATER, `an idle channel still holds ${after} bytes (fixed part ${fixed})`);
  assert.ok(ch.stat().bytes <= fixed + LOW_WATER, "the channel counts the pages as given back");

  // The channel works as before: the parked receiver gets the next message, large or small.
  assert.equal((await ask(sender, "send", { sizes: [BIG] })).sent, 1);
  assert.deepEqual(await ask(receiver, "parked", {}), { received: 1, sizes: [BIG], bad: 0 });
  console.log(`idle trim: fixed ${fixed}, burst ${fixed + 16 * BIG}, idle ${after}`);
});

Deno.test("a channel at its memory bound refuses a send with ChannelFullError, nothing written, then takes it", async () => {
  await using s = new Scope();
  const memory = 2 * MiB;
  const ch = s.open("bound", { mode: "async", codec: "raw", memory });
  assert.equal(ch.memory, memory);
  const sender = await peer(s, "bound");
  const receiver = await peer(s, "bound");
  const big = 700 * KiB; // 700 KiB in pages: two fit in 2 MiB, three do not
  const full = await ask(sender, "send", { sizes: [big, big, big] });
  assert.equal(full.sent, 2);
  assert.equal(full.error, "ChannelFullError");
  assert.match(full.message as string, /memory: 2097152 bytes/);
  const stat = ch.stat();
  assert.equal(stat.depth, 2, "the refused message was not written");
  assert.ok(stat.bytes - (await fixedPart(s)) <= memory, `reserved ${stat.bytes} over the bound`);
  // Inline messages need no pages: still taken at the bound.
  assert.equal((await ask(sender, "send", { sizes: [64] })).sent, 1);

  assert.equal((await ask(receiver, "recv", { n: 1 })).received, 1);
  // The released slot's pages are trimmed to make room.
  assert.deepEqual(await ask(sender, "send", { sizes: [big] }), { sent: 1, error: null });
  const drained = await ask(receiver, "recv", { n: 10 });
  assert.deepEqual([drained.received, drained.bad], [3, 0]);
  assert.deepEqual(drained.sizes, [big, 64, big]);
});

/** The fixed part of a channel like the ones above (capacity 100): what stat says with nothing held. */
async function fixedPart(s: Scope): Promise<number> {
  using probe = Channel.open("probe", { prefix: s.prefix });
  return await Promise.resolve(probe.stat().bytes);
}

Deno.test("memory is fixed at creation: an explicit different value is refused, too small one too", async () => {
  await using s = new Scope();
  s.open("fixed", { memory: 4 * MiB });
  assert.equal(s.open("fixed").memory, 4 * MiB);
  assert.throws(
    () => s.open("fixed", { memory: 8 * MiB }),
    (e) => e instanceof InvalidOptionError && /memory 4194304, not the 8388608/.test(e.message),
  );
  assert.throws(
    () => s.open("small", { maxMessageSize: 10_000, memory: 8192 }),
    (e) => e instanceof InvalidOptionError && /at least 12288/.test(e.message),
  );
  // Messages that all fit inline need no memory at all.
  assert.equal(s.open("inline", { maxMessageSize: 96, memory: 0 }).memory, 0);
});

Deno.test("zero-copy loans and views work at every size around the inline limit and page boundaries", async () => {
  await using s = new Scope();
  const sizes = [0, 1, 12, 95, 96, 97, 100, 4095, 4096, 4097, 8191, 8192, 8193, 65536, 65537];
  s.open("sizes", { mode: "async", codec: "raw", maxMessageSize: 65537, capacity: 8 });
  const sender = await peer(s, "sizes", { maxMessageSize: 65537 });
  const receiver = await peer(s, "sizes", { zeroCopy: true, autoRelease: false });
  for (const size of sizes) {
    assert.deepEqual(await ask(sender, "loan", { sizes: [size] }), { sent: 1, error: null }, `loan ${size}`);
    const got = await ask(receiver, "recv", { n: 1, view: true });
    assert.deepEqual([got.sizes, got.bad], [[size], 0], `view of ${size}`);
  }
  // Shrinking across the sizes again, copying this time, in the slots that held large ones.
  assert.equal((await ask(sender, "send", { sizes: [...sizes].reverse() })).sent, 8);
  const got = await ask(receiver, "recv", { n: 8 });
  assert.equal(got.bad, 0);
});

Deno.test({
  name: "a full /dev/shm is NoSpaceError at the send that needs the memory, never SIGBUS",
  // A private mount namespace with a 1 MiB tmpfs on /dev/shm: the machine's own stays untouched
  // (filling the shared one would fail other work, and it is larger than this machine's memory).
  ignore: Deno.uid() !== 0 || !canUnshare(),
  fn: async () => {
    const script = fileURLToPath(new URL("./workers/memory_nospace.ts", import.meta.url));
    const { code, signal, stdout, stderr } = await new Deno.Command("unshare", {
      args: [
        "-m",
        "sh",
        "-c",
        `mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "${Deno.execPath()}" run -A "${script}"`,
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
    }).output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, text(stderr).slice(-3000));
    const report = JSON.parse(text(stdout).trim().split("\n").pop()!);
    assert.equal(report.first, "sent");
    assert.equal(report.second, "NoSpaceError");
    assert.equal(report.depthAfterRefusal, 1, "the refused message was not written");
    assert.equal(report.received, "intact");
    assert.equal(report.small, "sent");
    assert.equal(report.third, "sent", "space freed by trimming is usable again");
  },
});

function canUnshare(): boolean {
  try {
    return new Deno.Command("unshare", { args: ["-m", "true"] }).outputSync().success;
  } catch {
    return false;
  }
}
