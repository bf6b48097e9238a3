// Trust on the open path: a segment in /dev/shm (world-writable) is used only when it is the
// caller's (or root's, or a listed owner's) regular file granting no more than the caller's
// permissions, and a refused file is left exactly as it was; every open honours its timeout, and
// ls/stat/gc never block on a channel another process is building; segments a dead builder left
// are listed and removed; a damaged segment with live participants is never rebuilt under them.
// Calls that could hang run in child processes (tests/workers/trust_probe.ts), so a regression
// fails one test through its hang guard instead of hanging the run.

import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { Channel, ChannelNotFoundError, gc, Namespace, PermissionDeniedError, scanChannels } from "../mod.ts";
import { buildFaultLibrary } from "./chaos.ts";
import { Child, cli, otherUserCommand, Scope, segmentPath, segmentsOf, within } from "./helpers.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const SMALL = { capacity: 4, maxMessageSize: 1024 };
const NOBODY = 65534;
/** A uid with no account: a non-root user who is neither the squatter nor root. */
const VICTIM = 4242;
const asRoot = { ignore: otherUserCommand() === undefined };

interface ProbeResult {
  ok?: boolean;
  error?: string;
  code?: string;
  message?: string;
  [key: string]: unknown;
}

/** A DENO_DIR any user can write, so that a child run as another user can start Deno. */
async function sharedDenoDir(s: Scope): Promise<string> {
  const dir = await s.tempDir();
  await Deno.chmod(dir, 0o777);
  return dir;
}

/** Runs one library call in tests/workers/trust_probe.ts, as `uid` if given, and returns its answer. */
async function probe(
  s: Scope,
  op: string,
  name: string,
  options: Record<string, unknown> = {},
  uid?: number,
): Promise<ProbeResult> {
  const worker = fileURLToPath(new URL("./workers/trust_probe.ts", import.meta.url));
  const deno = [Deno.execPath(), "run", "-A", worker, s.prefix, op, name, JSON.stringify(options)];
  const [cmd, ...args] = uid === undefined ? deno : [...otherUserCommand(uid)!, ...deno];
  const denoDir = uid === undefined ? undefined : await sharedDenoDir(s);
  const out = await within(
    new Deno.Command(cmd, {
      args,
      cwd: REPO_ROOT,
      env: denoDir ? { DENO_DIR: denoDir, HOME: denoDir } : undefined,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output(),
    `trust_probe ${op} ${name}`,
  );
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!text.startsWith("{")) {
    throw new Error(
      `trust_probe ${op} ${name} printed no answer (${out.code}): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return JSON.parse(text);
}

/** Runs a shell command as `uid`. */
async function shellAs(uid: number, script: string): Promise<void> {
  const [cmd, ...args] = [...otherUserCommand(uid)!, "/bin/sh", "-c", script];
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  assert.ok(out.success, `${script} as ${uid}: ${new TextDecoder().decode(out.stderr)}`);
}

/** Everything about a file a refused open must leave as it was. */
async function snapshot(path: string) {
  const st = Deno.lstatSync(path);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", Deno.readFileSync(path)));
  return {
    uid: st.uid,
    gid: st.gid,
    mode: (st.mode! & 0o7777).toString(8),
    size: st.size,
    contents: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
  };
}

function isForeign(pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof PermissionDeniedError, `not a PermissionDeniedError: ${e}`);
    assert.equal((e as PermissionDeniedError).code, "ForeignSegment", `${e}`);
    if (pattern) assert.match((e as Error).message, pattern);
    return true;
  };
}

/** An empty file of another user (nobody), mode 0666, put at `path` first; and its state then. */
async function emptyFileOfNobody(path: string) {
  await shellAs(NOBODY, `: > ${path} && chmod 666 ${path}`);
  return { path, before: await snapshot(path) };
}

function groupsPath(prefix: string): string {
  return `/dev/shm/${prefix}~groups`;
}

// ------------------------------------------------------------------ whose segment it is

Deno.test({
  name:
    "a channel segment another user put in /dev/shm first (empty, 0666) is refused with ForeignSegmentError and left as it was",
  ...asRoot,
  fn: async () => {
    await using s = new Scope();
    const { path, before } = await emptyFileOfNobody(segmentPath(s.prefix, "jobs"));
    assert.equal(before.uid, NOBODY);

    assert.throws(
      () => Channel.open("jobs", { prefix: s.prefix, ...SMALL }),
      isForeign(/65534.*0?666|0?666.*65534/),
    );
    assert.throws(() => Channel.open("jobs", { prefix: s.prefix, create: false }), isForeign());
    assert.throws(() => Channel.stat("jobs", { prefix: s.prefix }), isForeign());
    assert.deepEqual(await snapshot(path), before, "the refused file was changed");
    assert.deepEqual(scanChannels(s.prefix).skipped.map((k) => [k.name, k.code]), [[
      "jobs",
      "ForeignSegment",
    ]]);
    assert.deepEqual(gc(s.prefix), []);
    assert.deepEqual(await snapshot(path), before, "ls or gc changed the refused file");
  },
});

Deno.test({
  name:
    "a working channel another user built is refused, untouched, unless its owner is in trustedOwners and the mode within permissions",
  ...asRoot,
  fn: async () => {
    await using s = new Scope();
    const path = segmentPath(s.prefix, "jobs");
    const built = await probe(
      s,
      "open",
      "jobs",
      { ...SMALL, permissions: 0o666, send: "from nobody" },
      NOBODY,
    );
    assert.deepEqual(built, { ok: true });
    const before = await snapshot(path);
    assert.deepEqual([before.uid, before.mode], [NOBODY, "666"]);

    assert.throws(
      () => Channel.open("jobs", { prefix: s.prefix, mode: "async" }),
      isForeign(/trustedOwners/),
    );
    assert.throws(
      () => Channel.open("jobs", { prefix: s.prefix, mode: "async", permissions: 0o666 }),
      isForeign(/belongs to uid 65534/),
    );
    // Trusting the owner is not enough: the segment also grants more than the default 0600.
    assert.throws(
      () => Channel.open("jobs", { prefix: s.prefix, mode: "async", trustedOwners: [NOBODY] }),
      isForeign(/permissions/),
    );
    assert.deepEqual(await snapshot(path), before, "a refused open changed the file");

    const shared = s.open("jobs", { mode: "async", permissions: 0o666, trustedOwners: [NOBODY] });
    assert.equal(shared.tryRecv()?.data, "from nobody");
  },
});

Deno.test({
  name:
    "a group table another user put there first (empty, or built) is refused by Namespace.connect and left as it was; trustedOwners accepts it",
  ...asRoot,
  fn: async () => {
    await using s = new Scope();
    const path = groupsPath(s.prefix);
    try {
      const { before: empty } = await emptyFileOfNobody(path);
      assert.throws(() => Namespace.connect({ prefix: s.prefix }), isForeign(/65534/));
      assert.deepEqual(await snapshot(path), empty, "the refused empty table was changed");
      await Deno.remove(path);

      assert.deepEqual(await probe(s, "connect", "c", { permissions: 0o666 }, NOBODY), { ok: true });
      const built = await snapshot(path);
      assert.equal(built.uid, NOBODY);
      assert.throws(() => Namespace.connect({ prefix: s.prefix }), isForeign());
      assert.throws(
        () => Namespace.connect({ prefix: s.prefix, permissions: 0o666 }),
        isForeign(/belongs to uid 65534/),
      );
      assert.deepEqual(await snapshot(path), built, "a refused connect changed the table");

      using ns = Namespace.connect({ prefix: s.prefix, permissions: 0o666, trustedOwners: [NOBODY] });
      assert.deepEqual(ns.groupMembers("g"), ["c"]);
    } finally {
      await Deno.remove(path).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "a non-root user who finds another user's file at the channel's name gets ForeignSegmentError and the file keeps its size",
  ...asRoot,
  fn: async () => {
    await using s = new Scope();
    const { path, before } = await emptyFileOfNobody(segmentPath(s.prefix, "jobs"));
    const opened = await probe(s, "open", "jobs", SMALL, VICTIM);
    assert.equal(opened.code, "ForeignSegment", JSON.stringify(opened));
    assert.deepEqual(await snapshot(path), before, "the victim's open resized or changed the file");
  },
});

Deno.test("the caller's own segment with more access than its permissions is refused; permissions: 0o666 accepts a 0666 one", async () => {
  await using s = new Scope();
  const wide = s.open("wide", { mode: "async", permissions: 0o666, ...SMALL });
  wide.trySend("hello");
  const path = segmentPath(s.prefix, "wide");
  const before = await snapshot(path);
  assert.throws(
    () => Channel.open("wide", { prefix: s.prefix }),
    isForeign(/0?666.*permissions|permissions.*0?666/),
  );
  assert.throws(() => Channel.stat("wide", { prefix: s.prefix }), isForeign());
  assert.deepEqual(await snapshot(path), before);
  assert.equal(Channel.stat("wide", { prefix: s.prefix, permissions: 0o666 }).depth, 1);
  const reader = s.open("wide", { mode: "async", permissions: 0o666 });
  assert.equal(reader.tryRecv()?.data, "hello");
  // The command line: skipped by default, listed with --permissions 666.
  const narrow = JSON.parse((await cli(["ls", "--prefix", s.prefix, "--json"])).stdout);
  assert.deepEqual(narrow.skipped.map((k: { code: string }) => k.code), ["ForeignSegment"]);
  const wider = JSON.parse(
    (await cli(["ls", "--prefix", s.prefix, "--json", "--permissions", "666"])).stdout,
  );
  assert.deepEqual(wider.channels.map((c: { name: string }) => c.name), ["wide"]);

  // Bits outside 0o777 (setgid here) are refused whatever the permissions.
  const odd = s.open("odd", { mode: "async", ...SMALL });
  odd.close();
  Deno.chmodSync(segmentPath(s.prefix, "odd"), 0o2600);
  assert.throws(() => Channel.open("odd", { prefix: s.prefix, permissions: 0o777 }), isForeign(/2600/));
});

Deno.test("a symbolic link, a FIFO or a directory at a channel's name is refused and what it points to is left alone", async () => {
  await using s = new Scope();
  const dir = await s.tempDir();
  const target = `${dir}/target`;
  Deno.writeTextFileSync(target, "not a channel");
  Deno.symlinkSync(target, segmentPath(s.prefix, "link"));
  assert.throws(() => Channel.open("link", { prefix: s.prefix, ...SMALL }), isForeign(/symbolic link/));
  assert.throws(() => Channel.stat("link", { prefix: s.prefix }), isForeign());
  assert.equal(Deno.readTextFileSync(target), "not a channel");
  assert.equal(Deno.statSync(target).size, "not a channel".length);

  const fifo = await new Deno.Command("mkfifo", { args: [segmentPath(s.prefix, "fifo")] }).output();
  assert.ok(fifo.success);
  assert.throws(() => Channel.open("fifo", { prefix: s.prefix, ...SMALL }), isForeign(/is a FIFO/));
  Deno.mkdirSync(segmentPath(s.prefix, "dir"));
  assert.throws(() => Channel.open("dir", { prefix: s.prefix, ...SMALL }), isForeign(/not a regular file/));
  Deno.removeSync(segmentPath(s.prefix, "dir"));
});

// ------------------------------------------------------------------ a builder stopped or killed

/** The library with kill points (core/src/fault.rs): from `deno task test`, or built now. */
async function faultLibrary(): Promise<string> {
  return Deno.env.get("FERRY_FAULT_LIB") ?? await buildFaultLibrary();
}

/** Resolves once process `pid` is stopped (state T in /proc): the kernel's word, polled. */
async function stopped(pid: number): Promise<void> {
  while (true) {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("a creator stopped mid-build: open with timeout 1000 is TimeoutError; stat, ls, gc and rm answer at once and leave it alone", async () => {
  await using s = new Scope();
  const lib = await faultLibrary();
  await using builder = new Child(
    "peer.ts",
    [s.prefix, "jobs", JSON.stringify({ mode: "async", ...SMALL })],
    {
      FERRY_LIB: lib,
      FERRY_FAULT: "open.building",
      FERRY_FAULT_ACTION: "stop",
    },
  );
  await within(stopped(builder.pid), "the builder stopping at open.building");

  const opened = await probe(s, "open", "jobs", { timeout: 1000 });
  assert.equal(opened.code, "Timeout", JSON.stringify(opened));
  assert.match(opened.message!, new RegExp(`being built.*pid ${builder.pid}.*stopped`));

  const building = await probe(s, "stat", "jobs");
  assert.deepEqual([building.ok, building.state], [true, "building"], JSON.stringify(building));
  assert.deepEqual(await probe(s, "scan", ""), {
    ok: true,
    channels: [{ name: "jobs", state: "building" }],
    skipped: [],
  });
  const stat = await cli(["stat", "jobs", "--prefix", s.prefix, "--json"]);
  assert.equal(stat.code, 0, stat.stderr);
  assert.equal(JSON.parse(stat.stdout).state, "building");
  const ls = await cli(["ls", "--prefix", s.prefix]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /jobs\s.*building/);
  assert.match(ls.stdout, new RegExp(`${builder.pid}`));

  // Its builder lives: neither gc nor rm (without --force) removes it.
  assert.deepEqual(await probe(s, "gc", ""), { ok: true, removed: [] });
  const rm = await cli(["rm", "jobs", "--prefix", s.prefix]);
  assert.equal(rm.code, 1, rm.stdout);
  assert.match(rm.stderr, /being built/);
  assert.deepEqual(segmentsOf(s.prefix), ["jobs"]);

  // Resumed, the builder finishes and the channel is an ordinary one.
  Deno.kill(builder.pid, "SIGCONT");
  await builder.expectLine("ready");
  assert.equal(Channel.stat("jobs", { prefix: s.prefix }).state, "ready");
});

Deno.test("a creator killed mid-build leaves a segment that ls and stat show as incomplete and gc and rm remove", async () => {
  await using s = new Scope();
  const lib = await faultLibrary();
  const killBuilder = async (name: string) => {
    await using builder = new Child(
      "peer.ts",
      [s.prefix, name, JSON.stringify({ mode: "async", ...SMALL })],
      {
        FERRY_LIB: lib,
        FERRY_FAULT: "open.building",
      },
    );
    assert.equal((await builder.status).signal, "SIGABRT");
  };
  await killBuilder("jobs");
  await killBuilder("other");
  assert.deepEqual(segmentsOf(s.prefix), ["jobs", "other"]);

  const rows = scanChannels(s.prefix).channels.map((c) => [c.name, c.state, c.participants.length]);
  assert.deepEqual(rows, [["jobs", "incomplete", 0], ["other", "incomplete", 0]]);
  const stat = Channel.stat("jobs", { prefix: s.prefix });
  assert.equal(stat.state, "incomplete");
  assert.ok(stat.bytes > 0, "the abandoned segment's size is reported");
  assert.throws(() => Channel.open("jobs", { prefix: s.prefix, create: false }), ChannelNotFoundError);
  const ls = await cli(["ls", "--prefix", s.prefix, "--json"]);
  assert.deepEqual(JSON.parse(ls.stdout).channels.map((c: { state: string }) => c.state), [
    "incomplete",
    "incomplete",
  ]);

  const rm = await cli(["rm", "other", "--prefix", s.prefix]);
  assert.equal(rm.code, 0, rm.stderr);
  assert.deepEqual(gc(s.prefix, { dryRun: true }), ["jobs"]);
  assert.deepEqual(gc(s.prefix), ["jobs"]);
  assert.deepEqual(segmentsOf(s.prefix), []);
});

// ------------------------------------------------------------------ damage under live participants

Deno.test("a segment whose ready flag was zeroed while a participant lives is IncompatibleChannelError, never rebuilt under it", async () => {
  await using s = new Scope();
  const peer = await s.spawn("peer.ts", "jobs", { mode: "async", ...SMALL });
  assert.deepEqual(await peer.ask("trySend", { n: 1 }), { sent: 1, error: null });
  const path = segmentPath(s.prefix, "jobs");
  const file = Deno.openSync(path, { read: true, write: true });
  file.seekSync(12, Deno.SeekMode.Start);
  file.writeSync(new Uint8Array(4)); // init_state (layout.rs `Fixed`): READY -> 0
  file.close();
  const before = Deno.statSync(path).size;

  const opened = await probe(s, "open", "jobs", SMALL);
  assert.equal(opened.code, "IncompatibleChannel", JSON.stringify(opened));
  assert.match(opened.message!, /damaged while in use/);
  const stat = await probe(s, "stat", "jobs");
  assert.equal(stat.code, "IncompatibleChannel", JSON.stringify(stat));
  assert.deepEqual(gc(s.prefix), []);
  assert.equal(Deno.statSync(path).size, before);

  // The live participant's queued message is still there, intact.
  const got = await peer.ask("recv", { timeout: 1000 });
  assert.deepEqual(got.data, { from: peer.pid, i: 0 });
  assert.equal(got.redelivered, false);

  // Once nobody uses it, it is an incomplete segment like any other: rebuilt by the next opener.
  await peer.kill();
  const fresh = s.open("jobs", { mode: "async", ...SMALL });
  assert.equal(fresh.stat().state, "ready");
  assert.equal(fresh.stat().depth, 0);
});
