// Channel groups between real processes: fan-out to members in other processes, memberships that end
// (discarded, expired, their process closed or killed) or outlive their process, full members skipped
// or waited for, missing members reported and never created, member handles closed once unused, ack
// fan-outs that wait for every release, and processes killed while adding, after which the group
// table must be consistent. Steps between processes are coordinated by lines; the only waits are for
// deadlines (expiry, memberIdle) to pass.

import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { core } from "../ffi/lib.ts";
import { LIFETIME_EXPIRY, LIFETIME_PROCESS, NO_TIMEOUT, OPEN_REPORT_LEN } from "../ffi/status.ts";
import { AddStop, testingCore } from "../ffi/testing.ts";
import {
  Channel,
  ChannelNotFoundError,
  type FerryError,
  GroupTableFullError,
  InvalidNameError,
  InvalidOptionError,
  listChannels,
  Namespace,
  type NamespaceOptions,
  PeerDiedError,
} from "../mod.ts";
import { type Child, delay, follow, Scope, segmentsOf, within } from "./helpers.ts";

const encoder = new TextEncoder();

/**
 * A core built with `--features fault-injection,testing` (`deno task test` builds it): the tests that
 * stop a writer at a chosen point run only when it is given.
 */
const FAULT_LIB = Deno.env.get("FERRY_FAULT_LIB");

/** Table memory for exactly `entries` memberships (a 256-byte header, 256 bytes an entry). */
function memoryFor(entries: number): number {
  return 256 + 256 * entries;
}

/**
 * Connects a Namespace under the scope's prefix; disposing it closes it and unlinks the group table
 * (the Scope unlinks the channels). Declare it after the Scope so that it is disposed first.
 */
function connect(s: Scope, options: NamespaceOptions = {}): Namespace & Disposable {
  const namespace = Namespace.connect({ ...options, prefix: s.prefix });
  return Object.assign(namespace, {
    [Symbol.dispose]() {
      namespace.close();
      Namespace.unlinkGroups({ prefix: s.prefix });
    },
  });
}

/** What ferry_group_check writes, in its order (see group::Check). */
const CHECK_FIELDS = [
  "entries",
  "free",
  "writingAlive",
  "writingAbandoned",
  "live",
  "expired",
  "duplicates",
  "corrupt",
  "held",
  "heldAbandoned",
] as const;
type TableCheck = Record<typeof CHECK_FIELDS[number], number>;

/** The core's read-only account of a namespace's group table (see group::Check). */
function checkTable(prefix: string): TableCheck {
  const lib = core();
  const p = encoder.encode(prefix);
  const err = new Int32Array(OPEN_REPORT_LEN);
  const table = lib.ferry_group_open(p, p.length, 1 << 20, 0o600, NO_TIMEOUT, new Uint32Array(0), 0, err);
  assert.ok(table !== null, `cannot open the group table of ${prefix}: ${err}`);
  const out = new Uint32Array(CHECK_FIELDS.length);
  try {
    lib.ferry_group_check(table, out);
  } finally {
    lib.ferry_group_free(table);
  }
  return Object.fromEntries(CHECK_FIELDS.map((field, i) => [field, out[i]])) as TableCheck;
}

/** Whether this process has a handle open on channel `name` (it holds one of the 64 seats). */
function seated(s: Scope, name: string): boolean {
  return Channel.stat(name, { prefix: s.prefix }).participants.some((p) => p.pid === Deno.pid);
}

/** A member process: receives on `channel` and manages its own memberships (workers/group_peer.ts). */
function member(s: Scope, channel: string, options: Record<string, unknown> = {}): Promise<Child> {
  return s.spawn("group_peer.ts", channel, options);
}

Deno.test("a group of 3 channels in 3 processes: one sendGroup reaches each once", async () => {
  await using s = new Scope();
  using ns = connect(s, { mode: "async" });
  const names = ["member-0", "member-1", "member-2"];
  const members = await Promise.all(names.map((name) => member(s, name, { join: "fanout", mode: "async" })));
  assert.deepEqual(ns.groupMembers("fanout"), names);

  const result = await ns.sendGroup("fanout", { hello: "all" });
  assert.deepEqual(result, { group: "fanout", sent: names, skipped: [], failed: [] });

  for (const child of members) {
    assert.deepEqual((await child.ask("recv", { timeout: 10_000 })).data, { hello: "all" });
    assert.equal((await child.ask("recv", { timeout: 50 })).error, "TimeoutError", "delivered twice");
  }
  const { counters, live } = ns.groupStat();
  assert.equal(live, 3);
  assert.deepEqual({ added: counters.added, fanouts: counters.fanouts }, { added: 3, fanouts: 1 });
  // The group table is no channel: listing the namespace does not show it.
  assert.deepEqual(listChannels(s.prefix).map((c) => c.name), names);
});

Deno.test("a discarded member and an expired membership no longer receive", async () => {
  await using s = new Scope();
  using ns = connect(s, { mode: "async" });
  const keep = await member(s, "keep", { join: "news", mode: "async" });
  const gone = await member(s, "gone", { join: "news", mode: "async" });
  const brief = await member(s, "brief", { mode: "async" });

  assert.deepEqual(await gone.ask("leave", { group: "news" }), { removed: true });
  assert.deepEqual(await gone.ask("leave", { group: "news" }), { removed: false });
  const expirySeconds = 1;
  assert.deepEqual(await brief.ask("join", { group: "news", expiry: expirySeconds }), { added: true });
  assert.deepEqual(ns.groupMembers("news"), ["brief", "keep"]);

  await delay(expirySeconds * 1000 + 300); // the membership's deadline is the behaviour under test
  assert.deepEqual(ns.groupMembers("news"), ["keep"]);
  const result = await ns.sendGroup("news", { edition: 2 });
  assert.deepEqual(result.sent, ["keep"]);

  assert.deepEqual((await keep.ask("recv", { timeout: 10_000 })).data, { edition: 2 });
  for (const child of [gone, brief]) {
    assert.equal((await child.ask("recv", { timeout: 100 })).error, "TimeoutError");
  }
  for (const name of ["gone", "brief"]) assert.equal(Channel.stat(name, { prefix: s.prefix }).depth, 0);
  assert.equal(ns.groupStat().counters.expired, 1);
  assert.equal(ns.groupStat().counters.discarded, 1);
  // A member that left can come back.
  assert.deepEqual(await gone.ask("join", { group: "news" }), { added: true });
  assert.deepEqual(ns.groupMembers("news"), ["gone", "keep"]);
});

Deno.test({
  name: "a process killed in the middle of writing a membership: the entry is reclaimed, never read",
  ignore: !FAULT_LIB,
}, async () => {
  await using s = new Scope();
  // One entry: the only way for the parent to add after the crash is to reclaim the dead writer's.
  const memory = memoryFor(1);
  using ns = connect(s, { groupMemory: memory });
  assert.equal(ns.groupCapacity, 1);

  const writer = await s.spawn("group_adder.ts", "g", "stall", memory);
  await writer.expectLine("claimed");
  const stalled = checkTable(s.prefix);
  assert.deepEqual([stalled.writingAlive, stalled.live, stalled.free], [1, 0, 0], JSON.stringify(stalled));
  assert.deepEqual(ns.groupMembers("g"), [], "a half-written membership was read");
  assert.throws(() => ns.groupAdd("g", "other"), GroupTableFullError, "a live writer's entry was taken");

  await writer.kill();
  assert.equal(checkTable(s.prefix).writingAbandoned, 1);
  assert.equal(ns.groupAdd("g", "other"), true);
  assert.deepEqual(ns.groupMembers("g"), ["other"]);
  assert.deepEqual(checkTable(s.prefix), {
    entries: 1,
    free: 0,
    writingAlive: 0,
    writingAbandoned: 0,
    live: 1,
    expired: 0,
    duplicates: 0,
    corrupt: 0,
    held: 0,
    heldAbandoned: 0,
  });
  assert.equal(ns.groupStat().counters.reclaimed, 1);
});

Deno.test("processes killed at arbitrary points of adds and discards leave the group table consistent", async () => {
  await using s = new Scope();
  const memory = memoryFor(16);
  using ns = connect(s, { groupMemory: memory });
  const channels = new Set(Array.from({ length: 8 }, (_, i) => `c${i}`));

  for (let round = 0; round < 12; round++) {
    const adder = await s.spawn("group_adder.ts", "g", "loop", memory);
    for (let lines = 0; lines <= round % 4; lines++) await adder.expectLine("progress");
    await adder.kill();

    const after = checkTable(s.prefix);
    const label = `round ${round}: ${JSON.stringify(after)}`;
    assert.deepEqual([after.writingAlive, after.corrupt, after.duplicates], [0, 0, 0], label);
    const members = ns.groupMembers("g"); // a scan: reclaims whatever the dead adder was writing
    assert.ok(members.every((m) => channels.has(m)), `${label}: members ${members}`);
    const scanned = checkTable(s.prefix);
    assert.equal(scanned.writingAbandoned, 0, `round ${round}: not reclaimed`);
    assert.equal(scanned.live, members.length, `round ${round}: ${JSON.stringify(scanned)}`);
    assert.equal(scanned.free + scanned.live, scanned.entries, `round ${round}: ${JSON.stringify(scanned)}`);
  }

  // Still fully usable: every pair can be added once and discarded.
  for (const c of channels) ns.groupAdd("g", c);
  assert.deepEqual(ns.groupMembers("g"), [...channels].sort());
  for (const c of channels) assert.equal(ns.groupDiscard("g", c), true);
  assert.deepEqual(checkTable(s.prefix).live, 0);
});

Deno.test({
  name:
    "a process aborted at each kill point of an add (of each kind), a merge, a reclaim or a close leaves the table consistent",
  ignore: !FAULT_LIB,
  async fn() {
    await using s = new Scope();
    const memory = memoryFor(16);
    using ns = connect(s, { groupMemory: memory });
    // The hooks act on tables opened through the same library.
    const lib = testingCore(FAULT_LIB!);
    const raw = () => {
      const p = encoder.encode(s.prefix);
      return lib.ferry_group_open(
        p,
        p.length,
        memory,
        0o600,
        NO_TIMEOUT,
        new Uint32Array(0),
        0,
        new Int32Array(OPEN_REPORT_LEN),
      )!;
    };
    const [g, keep, torn, gone] = ["g", "keep", "torn", "gone"].map((t) => encoder.encode(t));
    const [EXPIRING, PROCESS] = [LIFETIME_EXPIRY, LIFETIME_PROCESS];
    const { CLAIMED, PUBLISHED_UNMERGED, HELD_FORGOTTEN } = AddStop;
    // Each point, with what must be in the table for the dying call to reach it.
    const points: [string, "add" | "add-process" | "members" | "close", () => void][] = [
      ["group.claimed", "add", () => {}],
      ["group.written", "add", () => {}],
      ["group.published", "add", () => {}],
      ["group.claimed", "add-process", () => {}],
      ["group.written", "add-process", () => {}],
      ["group.published", "add-process", () => {}],
      ["group.freeing-dead", "members", () => {
        // A process membership whose holder is gone (freeing a handle that forgot its membership
        // drops the lock and leaves the word HELD: a holder killed).
        const t = raw();
        lib.ferry_group_debug_add(t, g, g.length, gone, gone.length, 0n, PROCESS, HELD_FORGOTTEN);
        lib.ferry_group_free(t);
      }],
      // Dies having ended the first of its two process memberships: the other is left to a scan.
      ["group.closing", "close", () => {}],
      ["group.merging", "members", () => {
        // A duplicate of g/keep, as left by an adder that died before merging: the scan merges it.
        const t = raw();
        lib.ferry_group_debug_add(t, g, g.length, keep, keep.length, 0n, EXPIRING, PUBLISHED_UNMERGED);
        lib.ferry_group_free(t);
      }],
      ["group.reclaiming", "members", () => {
        // A half-written entry whose writer is gone (freeing its handle dropped its entry lock).
        const t = raw();
        lib.ferry_group_debug_add(t, g, g.length, torn, torn.length, 0n, EXPIRING, CLAIMED);
        lib.ferry_group_free(t);
      }],
    ];
    for (const [point, call, setUp] of points) {
      ns.groupAdd("g", "keep");
      setUp();
      const child = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          fileURLToPath(new URL("./workers/group_fault.ts", import.meta.url)),
          s.prefix,
          `${memory}`,
          call,
        ],
        env: { FERRY_LIB: FAULT_LIB!, FERRY_FAULT: point },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const label = `${point} (${call})`;
      assert.equal(child.signal, "SIGABRT", `${label}: the child did not die there`);

      const dead = checkTable(s.prefix);
      assert.deepEqual([dead.writingAlive, dead.corrupt], [0, 0], `${label}: ${JSON.stringify(dead)}`);
      // Where the dying process held (or was freeing) a process membership, it is left without a
      // holder: exactly the state a scan must clean up.
      const leftHeld = ["group.freeing-dead", "group.closing"].includes(point) ||
        (point === "group.published" && call === "add-process");
      assert.equal(dead.heldAbandoned, leftHeld ? 1 : 0, `${label}: ${JSON.stringify(dead)}`);
      const members = ns.groupMembers("g"); // a scan: reclaims, merges and ends what the death left
      assert.ok(members.includes("keep"), `${label}: lost a membership: ${members}`);
      // A dead process's process memberships are never reported; an expiring one it published is.
      const allowed = call === "add" ? ["keep", "added"] : ["keep"];
      assert.ok(members.every((m) => allowed.includes(m)), `${label}: ${members}`);
      const after = checkTable(s.prefix);
      assert.deepEqual(
        [
          after.writingAbandoned,
          after.heldAbandoned,
          after.duplicates,
          after.corrupt,
          after.free + after.live,
        ],
        [0, 0, 0, 0, after.entries],
        `${label}: ${JSON.stringify(after)}`,
      );
      for (const m of members) ns.groupDiscard("g", m);
    }
  },
});

Deno.test("a full member is skipped, at once or after waiting for room, reported and counted, in async and in ack mode", async () => {
  await using s = new Scope();
  using ns = connect(s, { mode: "async" });
  const tight = s.open("tight", { capacity: 1, mode: "async" });
  tight.trySend("already here"); // its only slot: tight is full
  const roomy = await member(s, "roomy", { join: "all", mode: "async" });
  ns.groupAdd("all", "tight");

  const first = await ns.sendGroup("all", { n: 1 });
  assert.deepEqual(first, { group: "all", sent: ["roomy"], skipped: ["tight"], failed: [] });
  assert.deepEqual((await roomy.ask("recv", { timeout: 10_000 })).data, { n: 1 });

  // Ack mode waits up to its timeout for room, then skips the member that stayed full; roomy's copy
  // is released meanwhile.
  const second = follow(ns.sendGroup("all", { n: 2 }, { mode: "ack", timeout: 2000 }));
  assert.deepEqual((await roomy.ask("recv", { timeout: 10_000 })).data, { n: 2 });
  assert.deepEqual(await within(second.promise, "ack fan-out"), {
    group: "all",
    sent: ["roomy"],
    skipped: ["tight"],
    failed: [],
  });

  // Async with a timeout waits for room, then skips; onFull "skip" skips at once whatever the timeout.
  const waited = await ns.sendGroup("all", { n: 3 }, { timeout: 200 });
  assert.deepEqual([waited.sent, waited.skipped], [["roomy"], ["tight"]]);
  const eager = await within(
    ns.sendGroup("all", { n: 4 }, { timeout: 600_000, onFull: "skip" }),
    "onFull skip",
  );
  assert.deepEqual([eager.sent, eager.skipped], [["roomy"], ["tight"]]);
  for (const n of [3, 4]) assert.deepEqual((await roomy.ask("recv", { timeout: 10_000 })).data, { n });
  await assert.rejects(ns.sendGroup("all", 5, { onFull: "block" as "wait" }), InvalidOptionError);

  const { counters } = ns.groupStat();
  assert.deepEqual({ fanouts: counters.fanouts, skipped: counters.skipped }, { fanouts: 4, skipped: 4 });
  assert.ok(Channel.stat("tight", { prefix: s.prefix }).counters.full >= 2, "the channel did not count it");
  assert.deepEqual(tight.tryRecv()?.data, "already here");
  assert.equal(tight.tryRecv(), undefined, "a skipped member got a copy");
});

Deno.test("ack-mode sendGroup resolves only after every member released its copy, and reports one that died", async () => {
  await using s = new Scope();
  using ns = connect(s, { mode: "ack" });
  const names = ["a", "b", "c"];
  const members = await Promise.all(
    names.map((name) => member(s, name, { join: "acks", mode: "ack", autoRelease: false })),
  );
  const sent = follow(ns.sendGroup("acks", { job: 1 }, { timeout: 20_000 }));
  for (const child of members) {
    assert.deepEqual((await child.ask("recv", { timeout: 10_000 })).data, { job: 1 });
  }

  for (const child of members.slice(0, 2)) {
    assert.deepEqual(await child.ask("release"), { released: 1 });
    // A round trip with the last holder: its copy is still unreleased.
    await members[2].ask("ping");
    assert.equal(sent.settled, false, "resolved before every member released its copy");
  }
  assert.deepEqual(await members[2].ask("release"), { released: 1 });
  assert.deepEqual(await within(sent.promise, "the ack fan-out after the last release"), {
    group: "acks",
    sent: names,
    skipped: [],
    failed: [],
  });

  // Again, and the last holder dies instead of releasing.
  const second = follow(ns.sendGroup("acks", { job: 2 }, { timeout: 20_000 }));
  for (const child of members) {
    assert.deepEqual((await child.ask("recv", { timeout: 10_000 })).data, { job: 2 });
  }
  for (const child of members.slice(0, 2)) await child.ask("release");
  await members[2].ask("ping");
  assert.equal(second.settled, false);
  await members[2].kill();
  const result = await within(second.promise, "the ack fan-out after a member died", 25_000);
  assert.deepEqual(result.sent, ["a", "b"]);
  assert.deepEqual(result.skipped, []);
  assert.deepEqual(result.failed.map((f) => f.channel), ["c"]);
  assert.ok(result.failed[0].error instanceof PeerDiedError, String(result.failed[0].error));
});

Deno.test("a membership outlives the process that added it", async () => {
  await using s = new Scope();
  using ns = connect(s, { mode: "async" });
  const adder = await member(s, "inbox", { join: "mail", mode: "async" });
  assert.deepEqual(await adder.ask("exit"), {});
  assert.equal((await adder.status).code, 0);

  assert.deepEqual(ns.groupMembers("mail"), ["inbox"]);
  assert.deepEqual((await ns.sendGroup("mail", "for the inbox")).sent, ["inbox"]);
  const inbox = s.open("inbox", { mode: "async" });
  assert.equal((await inbox.recv({ timeout: 10_000 })).data, "for the inbox");

  // Another connect, as a restarted process would do, sees it too.
  using again = connect(s);
  assert.deepEqual(again.groupMembers("mail"), ["inbox"]);
});

Deno.test("names follow the channel rules; the table's size is the creator's; unlinkGroups removes it", async () => {
  await using s = new Scope();
  using ns = connect(s, { groupMemory: memoryFor(2) });
  for (const bad of ["", "a b", "a/b", "a~b", "x".repeat(101)]) {
    assert.throws(() => ns.groupAdd(bad, "ok"), InvalidNameError);
    assert.throws(() => ns.groupAdd("ok", bad), InvalidNameError);
    assert.throws(() => ns.groupMembers(bad), InvalidNameError);
    assert.throws(() => ns.groupDiscard("ok", bad), InvalidNameError);
  }
  assert.equal(ns.groupAdd("g", "x".repeat(100)), true);
  assert.equal(ns.groupAdd("g", "x".repeat(100)), false, "re-adding is a refresh");
  assert.equal(ns.groupAdd("g", "y"), true);
  assert.throws(() => ns.groupAdd("g", "z"), GroupTableFullError);

  const later = Namespace.connect({ prefix: s.prefix, groupMemory: 1 << 20 });
  assert.equal(later.groupCapacity, 2, "a later connect's groupMemory must be ignored");
  later.close();

  assert.equal(Namespace.unlinkGroups({ prefix: s.prefix }), true);
  assert.equal(Namespace.unlinkGroups({ prefix: s.prefix }), false);
  using fresh = connect(s, { groupMemory: memoryFor(4) });
  assert.deepEqual(fresh.groupMembers("g"), [], "memberships survived unlinkGroups");
  assert.equal(fresh.groupCapacity, 4);
});

Deno.test("a process membership ends when its process is killed, and when it closes its Namespace", async () => {
  await using s = new Scope();
  using ns = connect(s, { mode: "ack" });
  const killed = await member(s, "killed", { join: "news", joinLifetime: "process", mode: "ack" });
  const closing = await member(s, "closing", { join: "news", joinLifetime: "process", mode: "ack" });
  const timed = await member(s, "timed", { join: "news", mode: "ack" });
  assert.deepEqual(ns.groupMembers("news"), ["closing", "killed", "timed"]);
  assert.deepEqual(ns.groupStat().live, 3);

  await killed.kill();
  assert.deepEqual(ns.groupMembers("news"), ["closing", "timed"], "a killed process's membership was listed");
  assert.equal(ns.groupStat().counters.died, 1);
  // An ack fan-out does not wait on the dead member: it is not one any more.
  const sent = follow(ns.sendGroup("news", "after the kill", { timeout: 20_000 }));
  for (const child of [closing, timed]) {
    assert.deepEqual((await child.ask("recv", { timeout: 10_000 })).data, "after the kill");
  }
  assert.deepEqual(await within(sent.promise, "the ack fan-out"), {
    group: "news",
    sent: ["closing", "timed"],
    skipped: [],
    failed: [],
  });

  assert.deepEqual(await closing.ask("exit"), {}); // closes its Namespace, then exits
  assert.equal((await closing.status).code, 0);
  assert.deepEqual(ns.groupMembers("news"), ["timed"], "a closed Namespace's membership was listed");
  assert.equal(ns.groupStat().counters.closed, 1);
  assert.deepEqual((await ns.sendGroup("news", "last", { mode: "async" })).sent, ["timed"]);
  assert.equal(Channel.stat("killed", { prefix: s.prefix }).depth, 0, "sent to the killed member");

  // Adding an expiring membership for a pair a process holds: the pair stays after the holder goes.
  const both = await member(s, "both", { join: "news", joinLifetime: "process" });
  assert.deepEqual(await both.ask("join", { group: "news" }), { added: false });
  await both.kill();
  assert.deepEqual(ns.groupMembers("news"), ["both", "timed"]);
  assert.throws(() => ns.groupAdd("news", "x", { lifetime: "process", expiry: 5 }), InvalidOptionError);
});

Deno.test("sendGroup never creates a member channel: a missing one fails with ChannelNotFoundError and is counted", async () => {
  await using s = new Scope();
  using ns = connect(s, { mode: "async" });
  const present = await member(s, "present", { join: "g", mode: "async" });
  ns.groupAdd("g", "absent");

  const first = await ns.sendGroup("g", "one");
  assert.deepEqual(first.sent, ["present"]);
  assert.deepEqual(first.failed.map((f) => [f.channel, (f.error as FerryError).code]), [[
    "absent",
    "ChannelNotFound",
  ]]);
  assert.ok(first.failed[0].error instanceof ChannelNotFoundError);
  assert.deepEqual(segmentsOf(s.prefix), ["present"], "sendGroup created a member channel");
  assert.deepEqual((await present.ask("recv", { timeout: 10_000 })).data, "one");

  // The member's channel is removed while its process still has it open: sendGroup must not send
  // through the handle it kept on the removed segment (nobody could ever open it again).
  assert.equal(Channel.unlink("present", { prefix: s.prefix }), true);
  const second = await ns.sendGroup("g", "two", { mode: "ack", timeout: 200 });
  assert.deepEqual(second.sent, []);
  assert.deepEqual(second.failed.map((f) => f.channel), ["absent", "present"]);
  assert.ok(
    second.failed.every((f) => f.error instanceof ChannelNotFoundError),
    String(second.failed[1]?.error),
  );
  assert.deepEqual(segmentsOf(s.prefix), [], "sendGroup created a member channel");
  assert.equal(ns.groupStat().counters.missing, 3);

  // Created again: the new channel gets the next value.
  const again = s.open("present", { mode: "async" });
  assert.deepEqual((await ns.sendGroup("g", "three")).sent, ["present"]);
  assert.equal(again.tryRecv()?.data, "three");
  assert.equal(
    (await present.ask("recv", { timeout: 100 })).error,
    "TimeoutError",
    "sent to the removed channel",
  );
});

Deno.test("a member handle sendGroup opened is closed once its channel leaves the group, freeing its seat", async () => {
  await using s = new Scope();
  using ns = connect(s, { mode: "async", memberIdle: Infinity });
  const leaver = await member(s, "leaver", { join: "g", mode: "async" });
  await member(s, "stayer", { join: "g", mode: "async" });
  assert.deepEqual((await ns.sendGroup("g", 1)).sent, ["leaver", "stayer"]);
  assert.ok(seated(s, "leaver") && seated(s, "stayer"), "sendGroup holds no handle on its members");

  assert.deepEqual(await leaver.ask("leave", { group: "g" }), { removed: true });
  assert.deepEqual((await ns.sendGroup("g", 2)).sent, ["stayer"]);
  assert.equal(seated(s, "leaver"), false, "the handle on a former member still holds a seat");
  assert.equal(seated(s, "stayer"), true, "a member's handle was closed");
});

Deno.test("member handles unused for memberIdle seconds are closed (0: after each sendGroup)", async () => {
  await using s = new Scope();
  using ns = connect(s, { mode: "async", memberIdle: 0.2 });
  await member(s, "m", { join: "g", mode: "async" });
  {
    using eager = Namespace.connect({ prefix: s.prefix, mode: "async", memberIdle: 0 });
    assert.deepEqual((await eager.sendGroup("g", 1)).sent, ["m"]);
    assert.equal(seated(s, "m"), false, "memberIdle 0 kept the handle");
  }
  assert.deepEqual((await ns.sendGroup("g", 2)).sent, ["m"]);
  assert.equal(seated(s, "m"), true);
  await delay(300 + 500); // memberIdle is the behaviour under test: closed within 1.5 x 200 ms
  assert.equal(seated(s, "m"), false, "an idle member handle was kept");
  assert.deepEqual((await ns.sendGroup("g", 3)).sent, ["m"], "a closed handle is opened again when needed");
});

Deno.test("async sendGroup that waits for room: 3 subscribers each receive all N values, none skipped", async () => {
  await using s = new Scope();
  using ns = connect(s, { mode: "async" }); // 16 slots per member handle
  const names = ["sub-0", "sub-1", "sub-2"];
  const subscribers = await Promise.all(
    names.map((name) => member(s, name, { join: "feed", mode: "async" })),
  );
  const N = 200;

  // The whole burst is issued (each call's first attempt made) before the subscribers are told to
  // receive: without waiting, everything past each member's 16 slots would be skipped.
  const sending = Promise.all(
    Array.from({ length: N }, (_, i) => ns.sendGroup("feed", i, { timeout: 20_000 })),
  );
  const taken = subscribers.map((child) => follow(child.ask("take", { count: N, timeout: 20_000 }, 60_000)));
  const outcomes = await within(sending, "the fan-out", 60_000);
  assert.deepEqual(outcomes.flatMap((r) => r.skipped), [], "members were skipped");
  assert.deepEqual(outcomes.flatMap((r) => r.failed), []);
  const expected = Array.from({ length: N }, (_, i) => i);
  for (const [i, reply] of (await Promise.all(taken.map((t) => t.promise))).entries()) {
    const got = (reply.data as number[]).toSorted((a, b) => a - b);
    assert.deepEqual(got, expected, `${names[i]} did not receive every value exactly once`);
  }
  assert.equal(ns.groupStat().counters.skipped, 0);
});
