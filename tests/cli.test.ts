// The command line, run as real subprocesses (`deno run -A cli.ts ...`): each command's happy path,
// its output (tables and --json), and its errors (one `ferry: ` line on stderr, the documented exit
// code, no stack trace). Channels the CLI works on are made by other processes: this test process or
// tests/workers/peer.ts children.

import assert from "node:assert/strict";
import { Channel, gc, listChannels, Namespace } from "../mod.ts";
import {
  cli,
  cliCommand,
  type CliResult as Result,
  Scope,
  segmentPath,
  segmentsOf,
  STEP_TIMEOUT_MS,
  textLines,
  within,
} from "./helpers.ts";

/** Small channels: the default (100 x 1 MiB) would reserve 100 MiB of /dev/shm each. */
const SMALL = { capacity: 8, maxMessageSize: 4096 };
const EXIT = { ok: 0, runtime: 1, usage: 2, notFound: 3, interrupted: 130 };

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

function assertOk(r: Result, what: string): void {
  assert.equal(r.code, EXIT.ok, `${what} exited ${r.code}; stderr: ${r.stderr}`);
  assert.equal(r.stderr, "", `${what} wrote to stderr`);
}

/** A user error: the exit code, exactly one `ferry: ` line on stderr matching `pattern`, no stack trace. */
function assertUserError(r: Result, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /^ferry: [^\n]+\n$/, "exactly one 'ferry: ' line on stderr");
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\bat .+:\d+:\d+/, "a stack trace on stderr");
}

/** A long-running CLI process (tail, a waiting recv) whose stdout is read line by line. */
class CliProcess implements AsyncDisposable {
  readonly pid: number;
  readonly status: Promise<Deno.CommandStatus>;
  readonly #process: Deno.ChildProcess;
  readonly #lines: string[] = [];
  #wake: (() => void) | undefined;
  #stdoutDone = false;
  #stderr = "";
  readonly #pumps: Promise<void>[];

  constructor(args: string[]) {
    this.#process = cliCommand(args, "null").spawn();
    this.pid = this.#process.pid;
    this.status = this.#process.status;
    this.#pumps = [this.#pumpStdout(), this.#pumpStderr()];
  }

  /** The next stdout line; fails if the process ends first. */
  line(what: string): Promise<string> {
    return within(this.#next(what), what);
  }

  async #next(what: string): Promise<string> {
    while (this.#lines.length === 0) {
      if (this.#stdoutDone) {
        throw new Error(`the CLI exited before printing ${what}; stderr: ${this.#stderr}`);
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    return this.#lines.shift()!;
  }

  signal(signal: Deno.Signal): void {
    this.#process.kill(signal);
  }

  /** Waits for the exit; returns the status, the stdout lines not read yet and all of stderr. */
  async finish(): Promise<{ code: number; rest: string[]; stderr: string }> {
    const { code } = await within(this.status, "the CLI's exit");
    await Promise.all(this.#pumps);
    return { code, rest: this.#lines.splice(0), stderr: this.#stderr };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#process.kill("SIGKILL");
    } catch {
      // exited already
    }
    await this.status;
    await Promise.all(this.#pumps);
  }

  async #pumpStdout() {
    for await (const line of textLines(this.#process.stdout)) {
      this.#lines.push(line);
      this.#wake?.();
    }
    this.#stdoutDone = true;
    this.#wake?.();
  }

  async #pumpStderr() {
    for await (const chunk of this.#process.stderr.pipeThrough(new TextDecoderStream())) {
      this.#stderr += chunk;
    }
  }
}

Deno.test("--help: the overview and every command's help exit 0 and document the exit codes", async () => {
  const commands = ["send", "recv", "tail", "stat", "ls", "rm", "gc", "group"];
  const runs = [["--help"], ["-h"], ["help"], ["help", "recv"], ...commands.map((c) => [c, "--help"])];
  const results = await Promise.all(runs.map((args) => cli(args)));
  for (const [i, r] of results.entries()) {
    const what = `cli.ts ${runs[i].join(" ")}`;
    assertOk(r, what);
    assert.match(r.stdout, /^Usage: deno run -A cli\.ts /m, `${what}: usage line`);
    assert.match(
      r.stdout,
      /Exit codes:\n {2}0 .*\n {2}1 [^]* {2}2 .*\n(?: {7}.*\n)* {2}3 +channel not found/,
      `${what}: exit codes`,
    );
  }
  for (const command of [...commands, "group", "bench"]) {
    // Each command's usage, then its summary after two spaces or, when the usage is long, on the
    // next line: never run together ("...<json>group memberships").
    const entry = new RegExp(`^ {2}${command} [^\n]*?(?: {2,}|\n {4,})([a-z][^\n]*)$`, "m");
    const summary = entry.exec(results[0].stdout)?.[1];
    assert.ok(summary, `the overview lists ${command}`);
    assert.doesNotMatch(summary, /[<>|]/, `${command}'s summary is its summary`);
  }
  assert.doesNotMatch(results[0].stdout, /\S(?:group memberships)/);
  for (const [i, command] of commands.entries()) {
    const help = results[4 + i].stdout;
    for (
      const option of [
        "--prefix <prefix>",
        "--permissions <octal>",
        "--trust <uid,...>",
        "--json",
        "-h, --help",
      ]
    ) {
      assert.ok(help.includes(`  ${option} `), `${command} --help lists ${option}`);
    }
  }
  assert.match(results[4].stdout, /--mode ack\|async/);
  assert.match(results[5].stdout, /-n, --count <n>/);
});

Deno.test("bench: dispatched to the benchmark suite, whose --help exits 0 and names its options", async () => {
  for (const args of [["bench", "--help"], ["help", "bench"]]) {
    const r = await cli(args);
    assert.equal(r.code, EXIT.ok, `${args.join(" ")} exited ${r.code}; stderr: ${r.stderr}`);
    assert.match(r.stdout, /--quick/, `${args.join(" ")} shows bench's own help`);
  }
  // bench parses its own arguments; its mistakes are usage errors like every other command's.
  assertUserError(await cli(["bench", "--bogus"]), EXIT.usage, /--bogus/);
});

Deno.test("usage errors exit 2 with one line on stderr and no stack trace", async () => {
  const cases: [string[], RegExp][] = [
    [["stat", "jobs", "--bogus"], /^ferry: stat: unknown option --bogus \(see: cli\.ts stat --help\)$/m],
    [["send", "jobs", "1", "--mode", "sometimes"], /--mode must be "ack" or "async", not 'sometimes'/],
    [["recv", "jobs", "--count"], /recv: option --count needs a value/],
    [["recv", "jobs", "--count", "0"], /--count must be an integer >= 1, not '0'/],
    [["recv", "jobs", "--timeout", "soon"], /--timeout must be a number of milliseconds/],
    [["ls", "--json=yes"], /ls: option --json takes no value/],
    [["stat"], /stat: missing <channel>/],
    [["stat", "a", "b"], /stat: unexpected argument 'b'/],
    [["stat", "no spaces"], /channel name "no spaces" is not valid/],
    [["ls", "--prefix", "a/b"], /prefix "a\/b" is not valid/],
    [["send", "jobs", "1", "--capacity", "4"], /--capacity and --max-message-size only apply with --create/],
    [["frobnicate"], /unknown command 'frobnicate'/],
    [[], /no command given/],
  ];
  const results = await Promise.all(cases.map(([args]) => cli(args)));
  for (const [i, r] of results.entries()) {
    assert.equal(r.stdout, "", `cli.ts ${cases[i][0].join(" ")} printed to stdout`);
    assertUserError(r, EXIT.usage, cases[i][1]);
  }
});

Deno.test("a channel that does not exist: stat, recv, tail, send and rm exit 3; send --create makes it", async () => {
  await using s = new Scope();
  const p = ["--prefix", s.prefix];
  const results = await Promise.all([
    cli(["stat", "ghost", ...p]),
    cli(["recv", "ghost", ...p]),
    cli(["tail", "ghost", ...p]),
    cli(["send", "ghost", "1", ...p]),
    cli(["rm", "ghost", ...p]),
  ]);
  for (const r of results) {
    assertUserError(r, EXIT.notFound, new RegExp(`no channel 'ghost' in namespace '${s.prefix}'`));
  }
  assert.match(results[3].stderr, /send --create makes it/);
  assert.deepEqual(segmentsOf(s.prefix), [], "a command made the channel it was told to find");

  const created = await cli(["send", "fresh", "7", ...p, "--create", "--capacity", "4", "--mode", "async"]);
  assertOk(created, "send --create");
  const st = Channel.stat("fresh", { prefix: s.prefix });
  assert.deepEqual([st.capacity, st.depth], [4, 1]);
});

Deno.test("send then recv across two CLI processes, ack mode: send returns once recv printed the message", async () => {
  await using s = new Scope();
  s.open("jobs", { ...SMALL, mode: "async" }); // made by this process, which stays a participant
  const p = ["--prefix", s.prefix];

  const sending = cli(["send", "jobs", '{"id":1,"task":"resize"}', ...p, "--timeout", "15000"]);
  const received = await cli(["recv", "jobs", ...p, "--timeout", "15000"]);
  const sent = await sending;
  assertOk(received, "recv");
  assertOk(sent, "send");
  assert.deepEqual(lines(received.stdout).map((line) => JSON.parse(line)), [{ id: 1, task: "resize" }]);
  assert.equal(sent.stdout, `sent 1 message to 'jobs' (ack: each released by a receiver)\n`);

  const st = Channel.stat("jobs", { prefix: s.prefix });
  assert.deepEqual([st.depth, st.inFlight, st.counters.sent, st.counters.received, st.counters.released], [
    0,
    0,
    1,
    1,
    1,
  ]);
  assert.deepEqual(
    st.participants.map((x) => x.pid),
    [Deno.pid],
    "the CLI processes left the channel cleanly",
  );
});

Deno.test("send - sends each stdin line as one JSON value", async () => {
  await using s = new Scope();
  const ch = s.open("lines", { ...SMALL, mode: "async" });
  const stdin = '1\n"hello world"\n{"a":[1,2]}\n\n"quoted"\n-5\r\n"last line without newline"';
  const r = await cli(["send", "lines", "-", "--prefix", s.prefix, "--mode", "async", "--json"], stdin);
  assertOk(r, "send -");
  assert.deepEqual(JSON.parse(r.stdout), { channel: "lines", prefix: s.prefix, mode: "async", sent: 6 });
  const got = [];
  for (let m = ch.tryRecv(); m !== undefined; m = ch.tryRecv()) got.push(m.data);
  assert.deepEqual(got, [1, "hello world", { a: [1, 2] }, "quoted", -5, "last line without newline"]);

  // A value argument that looks like a negative number is one, not an option.
  assertOk(await cli(["send", "lines", "-2.5", "--prefix", s.prefix, "--mode", "async"]), "send -2.5");
  assert.equal(ch.tryRecv()?.data, -2.5);
});

Deno.test("send: text that is not JSON is a usage error naming the column; --string sends text as a string", async () => {
  await using s = new Scope();
  const ch = s.open("values", { ...SMALL, mode: "async" });
  const p = ["--prefix", s.prefix, "--mode", "async"];

  const [bare, unclosed, created] = await Promise.all([
    cli(["send", "values", "hello", ...p]),
    cli(["send", "values", '{"id": 1', ...p]),
    cli(["send", "new", "{id: 1}", ...p, "--create"]),
  ]);
  for (const r of [bare, unclosed, created]) assert.equal(r.stdout, "");
  assertUserError(
    bare,
    EXIT.usage,
    /^ferry: send: 'hello' is not JSON \(unexpected 'h' at column 1\); --string/,
  );
  assertUserError(
    unclosed,
    EXIT.usage,
    /^ferry: send: '\{"id": 1' is not JSON \(unexpected end at column 9\)/,
  );
  assertUserError(created, EXIT.usage, /property name, found 'i' at column 2/);
  assert.deepEqual(segmentsOf(s.prefix), ["values"], "a bad value created the channel it was for");
  assert.equal(ch.stat().counters.sent, 0);

  // stdin: the lines before a bad one are sent, and the error says so.
  const partly = await cli(["send", "values", "-", ...p], '1\n\n{"a":\n3\n');
  assertUserError(
    partly,
    EXIT.usage,
    /^ferry: send: line 3 of stdin, '\{"a":', is not JSON \(unexpected end at column 6\); .* 1 sent before it$/m,
  );
  assert.deepEqual([ch.tryRecv()?.data, ch.tryRecv()], [1, undefined]);

  // --string: the argument, or each stdin line, as it is.
  assertOk(await cli(["send", "values", "hello", "--string", ...p]), "send --string");
  assertOk(await cli(["send", "values", "42", "--string", ...p]), "send 42 --string");
  const lines = await cli(["send", "values", "-", "--string", ...p], 'hello world\n{"a":1}\r\n\nlast');
  assertOk(lines, "send - --string");
  assert.equal(lines.stdout, "sent 3 messages to 'values' (async: queued)\n");
  const got = [];
  for (let m = ch.tryRecv(); m !== undefined; m = ch.tryRecv()) got.push(m.data);
  assert.deepEqual(got, ["hello", "42", "hello world", '{"a":1}', "last"]);
});

Deno.test("the CLI's line reader: lines split across chunks, CRLF, UTF-8 split mid-character, a last line without newline", async () => {
  const e = new TextEncoder().encode("\u00e9"); // two bytes, delivered one chunk each
  const chunks = [
    new TextEncoder().encode("a\r"),
    new TextEncoder().encode("\nb"),
    e.subarray(0, 1),
    e.subarray(1),
    new TextEncoder().encode("\n\nlast"),
  ];
  const stream = ReadableStream.from(chunks);
  const got = [];
  for await (const line of textLines(stream)) got.push(line);
  assert.deepEqual(got, ["a", "b\u00e9", "", "last"]);
});

Deno.test("recv --count N prints N messages in order; too few within --timeout exits 1, keeping what it printed", async () => {
  await using s = new Scope();
  const ch = s.open("q", { ...SMALL, mode: "async" });
  for (const n of [1, 2, 3]) ch.trySend({ n });
  const p = ["--prefix", s.prefix];

  const two = await cli(["recv", "q", "--count", "2", ...p]);
  assertOk(two, "recv --count 2");
  assert.deepEqual(lines(two.stdout), ['{"n":1}', '{"n":2}']);
  assert.equal(ch.stat().depth, 1);

  const short = await cli(["recv", "q", "-n", "2", "--timeout", "100", "--json", ...p]);
  assertUserError(short, EXIT.runtime, /nothing arrived on 'q' within 100 ms \(received 1 of 2\)/);
  const [only, ...more] = lines(short.stdout).map((line) => JSON.parse(line));
  assert.deepEqual(more, []);
  assert.deepEqual(only, { seq: 2, sender: Deno.pid, redelivered: false, data: { n: 3 } });

  assertUserError(await cli(["recv", "q", "--timeout", "0", ...p]), EXIT.runtime, /nothing arrived on 'q'/);
  assert.deepEqual([ch.stat().depth, ch.stat().counters.received], [0, 3]);
});

Deno.test("stat and ls show the channel, its counters and participants (tables and --json)", async () => {
  await using s = new Scope();
  const ch = s.open("stats", { ...SMALL, mode: "async" });
  s.open("other", SMALL);
  for (const n of [1, 2, 3]) ch.trySend(n);
  ch.tryRecv();
  const holder = await s.spawn("peer.ts", "stats", { mode: "async", autoRelease: false });
  assert.equal((await holder.ask("recv", { timeout: 10_000 })).data, 2);
  // A file under the prefix that is not a ferry channel: listed as skipped, never fatal.
  // (Mode 0600, the caller's own: one granting more is refused before its contents are read.)
  await Deno.writeTextFile(segmentPath(s.prefix, "junk"), "not a channel, just some bytes", { mode: 0o600 });
  const p = ["--prefix", s.prefix];

  const [table, json, lsTable, lsJson] = await Promise.all([
    cli(["stat", "stats", ...p]),
    cli(["stat", "stats", ...p, "--json"]),
    cli(["ls", ...p]),
    cli(["ls", ...p, "--json"]),
  ]);
  for (const r of [table, json, lsTable, lsJson]) assertOk(r, "stat/ls");

  const st = JSON.parse(json.stdout);
  assert.equal(st.name, "stats");
  assert.deepEqual([st.capacity, st.maxMessageSize, st.depth, st.inFlight], [8, 4096, 1, 1]);
  assert.deepEqual(st.counters, { sent: 3, received: 2, released: 1, expired: 0, full: 0, redelivered: 0 });
  // Small messages live in their slot's line: the channel holds its fixed part only, and may take
  // up to its memory bound (default capacity x maxMessageSize) for larger ones.
  assert.ok(st.bytes > 0 && st.bytes < 1 << 20, `bytes ${st.bytes}`);
  assert.equal(st.memory, 8 * 4096);
  assert.ok(Math.abs(Date.parse(st.createdAt) - Date.now()) < 600_000, `createdAt ${st.createdAt}`);
  assert.deepEqual(
    st.participants.sort((a: { pid: number }, b: { pid: number }) => a.pid - b.pid),
    [
      // This process sent 3 (one queued, one held by the holder: 2 of its slots in flight) and
      // received one; the holder only received.
      { pid: Deno.pid, alive: true, inFlight: 2, role: "both" },
      { pid: holder.pid, alive: true, inFlight: 0, role: "receiver" },
    ].sort((a, b) => a.pid - b.pid),
  );

  const field = (name: string) => table.stdout.match(new RegExp(`^${name} +(.*)$`, "m"))?.[1];
  assert.match(field("channel") ?? "", new RegExp(`^stats +\\(/dev/shm/${s.prefix}\\.stats\\)$`));
  assert.match(field("depth") ?? "", /^1 queued/);
  assert.match(field("in flight") ?? "", /^1 received/);
  assert.equal(field("sent"), "3");
  assert.equal(field("received"), "2");
  assert.equal(field("released"), "1");
  assert.match(field("participants") ?? "", /^2 \(2 alive, 0 dead\)/);
  assert.match(
    table.stdout,
    new RegExp(`^ {2}pid ${holder.pid} +alive +receiver +0 of its sent messages in flight$`, "m"),
  );

  const listed = JSON.parse(lsJson.stdout);
  assert.equal(listed.prefix, s.prefix);
  assert.deepEqual(listed.channels.map((c: { name: string }) => c.name), ["other", "stats"]);
  assert.deepEqual(listed.channels[1].counters, st.counters);
  assert.deepEqual(listed.skipped.map((x: { name: string; code: string }) => [x.name, x.code]), [
    ["junk", "IncompatibleChannel"],
  ]);

  const [header, ...rows] = lines(lsTable.stdout);
  assert.match(
    header,
    /^NAME +STATE +DEPTH +IN-FLIGHT +CAPACITY +SENT +RECEIVED +RELEASED +EXPIRED +FULL +REDELIVERED/,
  );
  const statsRow = rows.find((row) => row.startsWith("stats "))?.split(/ +/);
  assert.deepEqual(statsRow?.slice(0, 11), ["stats", "ready", "1", "1", "8", "3", "2", "1", "0", "0", "0"]);
  assert.ok(rows.some((row) => row.startsWith("other ")));
  assert.ok(rows.some((row) => /^skipped junk: .*cannot be used/.test(row)));

  // The library functions behind ls and gc: the foreign file is skipped, not fatal.
  assert.deepEqual(listChannels(s.prefix).map((c) => c.name), ["other", "stats"]);

  const empty = await cli(["ls", "--prefix", `${s.prefix}nothing`]);
  assertOk(empty, "ls of an empty prefix");
  assert.equal(empty.stdout, `no channels under prefix '${s.prefix}nothing'\n`);
});

Deno.test("rm removes an idle channel, refuses one in use (exit 1) unless --force", async () => {
  await using s = new Scope();
  Channel.open("idle", { ...SMALL, prefix: s.prefix }).close();
  const busy = s.open("busy", { ...SMALL, mode: "async" });
  busy.trySend("keep me");
  const p = ["--prefix", s.prefix];

  const removed = await cli(["rm", "idle", ...p, "--json"]);
  assertOk(removed, "rm idle");
  assert.deepEqual(JSON.parse(removed.stdout), { prefix: s.prefix, removed: ["idle"] });
  assert.deepEqual(segmentsOf(s.prefix), ["busy"]);

  assertUserError(
    await cli(["rm", "busy", ...p]),
    EXIT.runtime,
    new RegExp(`channel 'busy' is in use \\(1 queued, open in pid ${Deno.pid}\\); rm --force`),
  );
  assertUserError(await cli(["rm", "idle", ...p]), EXIT.notFound, /no channel 'idle'/);
  assert.deepEqual(segmentsOf(s.prefix), ["busy"]);

  const forced = await cli(["rm", "busy", ...p, "--force"]);
  assertOk(forced, "rm --force");
  assert.equal(forced.stdout, "removed 'busy'\n");
  assert.deepEqual(segmentsOf(s.prefix), []);
});

Deno.test("gc removes only channels whose participants are all dead or gone and that hold nothing", async () => {
  await using s = new Scope();
  const options = { ...SMALL, mode: "async" };
  // live: held open by a process that stays alive.
  await s.spawn("peer.ts", "live", options);
  // abandoned: its only participant was killed; closed: its participant left cleanly. Both empty.
  await (await s.spawn("peer.ts", "abandoned", options)).kill();
  Channel.open("closed", { ...SMALL, prefix: s.prefix }).close();
  // queued: its sender was killed, but a message waits for a receiver (queues outlive senders).
  const sender = await s.spawn("peer.ts", "queued", options);
  assert.deepEqual(await sender.ask("send", { values: ["for later"] }), { sent: 1 });
  await sender.kill();
  const p = ["--prefix", s.prefix];

  const dry = await cli(["gc", ...p, "--dry-run", "--json"]);
  assertOk(dry, "gc --dry-run");
  assert.deepEqual(JSON.parse(dry.stdout), {
    prefix: s.prefix,
    dryRun: true,
    removed: ["abandoned", "closed"],
  });
  assert.deepEqual(segmentsOf(s.prefix), ["abandoned", "closed", "live", "queued"]);

  const run = await cli(["gc", ...p]);
  assertOk(run, "gc");
  assert.equal(run.stdout, "removed 2 abandoned channels: abandoned, closed\n");
  assert.deepEqual(segmentsOf(s.prefix), ["live", "queued"]);
  assert.equal(Channel.stat("queued", { prefix: s.prefix }).depth, 1);

  const again = await cli(["gc", ...p]);
  assertOk(again, "gc again");
  assert.equal(again.stdout, `nothing to remove under prefix '${s.prefix}'\n`);
  assert.deepEqual(gc(s.prefix), [], "the library's gc agrees");
});

Deno.test("tail prints messages as they come and leaves the channel cleanly on SIGINT (exit 0)", async () => {
  await using s = new Scope();
  const ch = s.open("feed", { ...SMALL, mode: "async" });
  ch.trySend({ n: 1 });
  ch.trySend("two");
  await using tail = new CliProcess(["tail", "feed", "--prefix", s.prefix]);
  assert.equal(await tail.line("the first queued message"), '{"n":1}');
  assert.equal(await tail.line("the second queued message"), '"two"');

  // An ack send resolves only once tail printed and released it.
  await within(ch.send([3], { mode: "ack", timeout: STEP_TIMEOUT_MS }), "an ack send to tail");
  assert.equal(await tail.line("a message sent while it waits"), "[3]");
  assert.ok(ch.stat().participants.some((p) => p.pid === tail.pid && p.alive));

  tail.signal("SIGINT");
  const { code, rest, stderr } = await tail.finish();
  assert.deepEqual({ code, rest, stderr }, { code: EXIT.ok, rest: [], stderr: "" });
  const st = ch.stat();
  assert.deepEqual(st.participants.map((p) => p.pid), [Deno.pid], "tail closed its handle (not just died)");
  assert.deepEqual([st.depth, st.inFlight, st.counters.received, st.counters.released], [0, 0, 3, 3]);
});

Deno.test("recv waiting for more is stopped by SIGINT: exit 130, what it printed kept", async () => {
  await using s = new Scope();
  const ch = s.open("wait", { ...SMALL, mode: "async" });
  ch.trySend("first");
  await using recv = new CliProcess([
    "recv",
    "wait",
    "--count",
    "2",
    "--timeout",
    "inf",
    "--prefix",
    s.prefix,
  ]);
  assert.equal(await recv.line("the queued message"), '"first"');
  recv.signal("SIGINT");
  const { code, rest, stderr } = await recv.finish();
  assert.deepEqual({ code, rest, stderr }, { code: EXIT.interrupted, rest: [], stderr: "" });
  assert.deepEqual(ch.stat().participants.map((p) => p.pid), [Deno.pid]);
});

Deno.test("send in ack mode with nobody receiving: exit 1 after --timeout, saying to start a receiver; the message is withdrawn", async () => {
  await using s = new Scope();
  Channel.open("lonely", { ...SMALL, prefix: s.prefix }).close(); // exists, nobody has it open
  const p = ["--prefix", s.prefix, "--timeout", "200"];
  assertUserError(
    await cli(["send", "lonely", '{"id": 1}', ...p]),
    EXIT.runtime,
    /^ferry: no receiver released the message on 'lonely' within 200 ms \(ack mode\).*; no other process has 'lonely' open: start a receiver first \(recv or tail\), or send with --mode async/,
  );
  const lonely = s.open("lonely", SMALL);
  assert.deepEqual([lonely.stat().depth, lonely.tryRecv()], [0, undefined], "the message was withdrawn");

  // Someone has it open (this process) but does not receive: the library's words, no advice.
  const ignored = await cli(["send", "lonely", "2", ...p]);
  assertUserError(ignored, EXIT.runtime, /no receiver released the message on 'lonely' within 200 ms/);
  assert.doesNotMatch(ignored.stderr, /no other process/);
});

Deno.test("send to a full channel: exit 1 after --timeout with one clear line", async () => {
  await using s = new Scope();
  const ch = s.open("tiny", { capacity: 1, maxMessageSize: 1024, mode: "async" });
  ch.trySend("already here");
  const p = ["--prefix", s.prefix, "--timeout", "100"];

  assertUserError(
    await cli(["send", "tiny", '"one more"', "--mode", "async", ...p]),
    EXIT.runtime,
    /^ferry: channel 'tiny' is full \(1\/1 messages held\)/,
  );
  assertUserError(
    await cli(["send", "tiny", "-", "--mode", "async", ...p], '"a"\n"b"\n'),
    EXIT.runtime,
    /is full .* \(line 1 of stdin; 0 sent before it\)$/m,
  );
  const st = ch.stat();
  assert.deepEqual([st.depth, st.counters.sent], [1, 1]);
  assert.ok(st.counters.full >= 2, `full counter ${st.counters.full} after two sends found no room`);
  assert.equal(ch.tryRecv()?.data, "already here");
});

Deno.test("group: add, ls, send to every member and rm, each from its own CLI process", async () => {
  await using s = new Scope();
  const p = ["--prefix", s.prefix];
  try {
    const a = s.open("ga", { mode: "async" });
    const b = s.open("gb", { mode: "async" });
    assertOk(await cli(["group", "add", "jobs", "ga", ...p]), "group add ga");
    assertOk(await cli(["group", "add", "jobs", "gb", ...p]), "group add gb");
    const ls = await cli(["group", "ls", "jobs", ...p, "--json"]);
    assertOk(ls, "group ls");
    assert.deepEqual(JSON.parse(ls.stdout).members.sort(), ["ga", "gb"]);

    const sent = await cli(["group", "send", "jobs", '{"n": 1}', "--mode", "async", ...p, "--json"]);
    assertOk(sent, "group send");
    assert.deepEqual(JSON.parse(sent.stdout).sent.sort(), ["ga", "gb"]);
    assert.deepEqual([a.tryRecv()?.data, b.tryRecv()?.data], [{ n: 1 }, { n: 1 }]);
    // Values as send takes them: JSON, or text with --string; text that is not JSON sends nothing.
    assertUserError(
      await cli(["group", "send", "jobs", "hi", "--mode", "async", ...p]),
      EXIT.usage,
      /^ferry: group send: 'hi' is not JSON \(unexpected 'h' at column 1\)/,
    );
    assertOk(await cli(["group", "send", "jobs", "hi", "--string", "--mode", "async", ...p]), "--string");
    assert.deepEqual([a.tryRecv()?.data, b.tryRecv()?.data, a.tryRecv()], ["hi", "hi", undefined]);

    assertOk(await cli(["group", "rm", "jobs", "gb", ...p]), "group rm");
    assert.deepEqual(JSON.parse((await cli(["group", "ls", "jobs", ...p, "--json"])).stdout).members, ["ga"]);
    assertUserError(await cli(["group", "frob", ...p]), 2, /unknown action 'frob'/);
  } finally {
    Namespace.unlinkGroups({ prefix: s.prefix });
  }
});

Deno.test("group send never creates a member: a missing one fails (exit 1) and no segment appears", async () => {
  await using s = new Scope();
  const p = ["--prefix", s.prefix];
  try {
    const here = s.open("here", { ...SMALL, mode: "async" });
    assertOk(await cli(["group", "add", "jobs", "here", ...p]), "group add here");
    assertOk(await cli(["group", "add", "jobs", "gone", ...p]), "group add gone");
    const sent = await cli(["group", "send", "jobs", '"x"', "--mode", "async", ...p, "--json"]);
    assert.equal(sent.code, EXIT.runtime, `stderr: ${sent.stderr}`);
    const result = JSON.parse(sent.stdout);
    assert.deepEqual(result.sent, ["here"]);
    assert.deepEqual(
      result.failed.map((f: { channel: string; error: { code: string } }) => [f.channel, f.error.code]),
      [["gone", "ChannelNotFound"]],
    );
    assert.deepEqual(segmentsOf(s.prefix), ["here"], "group send created the missing member");
    assert.equal(here.tryRecv()?.data, "x");
    const human = await cli(["group", "send", "jobs", '"y"', "--mode", "async", ...p]);
    assert.equal(human.code, EXIT.runtime);
    assert.match(human.stdout, /^failed: gone: .*no channel/m);
    assertUserError(human, EXIT.runtime, /^ferry: group send: 1 of 2 members failed \(gone\)$/m);
  } finally {
    Namespace.unlinkGroups({ prefix: s.prefix });
  }
});

Deno.test("group send to a group with no members: exit 1 with one line, nothing sent, nothing created", async () => {
  await using s = new Scope();
  const p = ["--prefix", s.prefix];
  try {
    for (const extra of [[], ["--json"], ["--mode", "async"]]) {
      const r = await cli(["group", "send", "nobody", '{"x": 1}', ...p, ...extra]);
      assert.equal(r.stdout, "", `group send ${extra.join(" ")} printed a result`);
      assertUserError(
        r,
        EXIT.runtime,
        new RegExp(`^ferry: group 'nobody' has no members in namespace '${s.prefix}': nothing was sent`),
      );
    }
    // A group whose last member left is empty too.
    s.open("once", { ...SMALL, mode: "async" });
    assertOk(await cli(["group", "add", "jobs", "once", ...p]), "group add");
    assertOk(await cli(["group", "rm", "jobs", "once", ...p]), "group rm");
    assertUserError(
      await cli(["group", "send", "jobs", "1", ...p]),
      EXIT.runtime,
      /group 'jobs' has no members/,
    );
    assert.deepEqual(segmentsOf(s.prefix), ["once"], "group send created a channel");
  } finally {
    Namespace.unlinkGroups({ prefix: s.prefix });
  }
});

Deno.test("group add --hold: the membership lasts while the command runs, ends on SIGTERM and on SIGKILL", async () => {
  await using s = new Scope();
  const p = ["--prefix", s.prefix];
  try {
    using ns = Namespace.connect({ prefix: s.prefix });
    {
      await using held = new CliProcess(["group", "add", "jobs", "inbox", "--hold", ...p]);
      assert.match(await held.line("the held line"), /'inbox' held in group 'jobs'/);
      assert.deepEqual(ns.groupMembers("jobs"), ["inbox"]);
      held.signal("SIGTERM");
      const { code, stderr } = await held.finish();
      assert.equal(code, EXIT.ok, stderr);
      assert.deepEqual(ns.groupMembers("jobs"), [], "the membership outlived the command");
    }
    {
      await using held = new CliProcess(["group", "add", "jobs", "inbox", "--hold", ...p, "--json"]);
      assert.equal(JSON.parse(await held.line("the held line")).lifetime, "process");
      assert.deepEqual(ns.groupMembers("jobs"), ["inbox"]);
      held.signal("SIGKILL");
      await held.finish();
      assert.deepEqual(ns.groupMembers("jobs"), [], "the membership outlived the killed command");
    }
    assert.deepEqual([ns.groupStat().counters.closed, ns.groupStat().counters.died], [1, 1]);
    assertUserError(await cli(["group", "add", "jobs", "x", "--hold", "--expiry", "5", ...p]), 2, /exclude/);
    assertUserError(await cli(["group", "send", "jobs", "1", "--on-full", "block", ...p]), 2, /--on-full/);
  } finally {
    Namespace.unlinkGroups({ prefix: s.prefix });
  }
});
