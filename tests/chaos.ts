// The chaos runner: crash loops and a soak, with every message accounted for.
//
//   deno task chaos                      # FERRY_CHAOS_SECONDS (default 180) in all
//   deno run -A tests/chaos.ts --seconds 60 --seed 7 [--soak-seconds 20] [--json out.json]
//
// Crash rounds. Each round starts senders (ack and async mode; send, sendSync and trySend) and
// receivers (recv, for await, recvSync, holders, batches) as separate processes on one channel, and kills
// them: SIGKILL at random moments, SIGKILL in chosen situations (a receiver parked in a wait, a
// sender blocked on a full channel or on its ack, a receiver holding a message, a process still
// opening the channel, a channel being created), and deterministic kill points compiled into a
// test build of the core (core/src/fault.rs: FERRY_FAULT=<point>:<n> aborts at the n-th pass), among
// them a process dying while it recovers another dead one (the others are SIGSTOPped meanwhile, so
// the recovery is certainly its). Workers log every send (before and after, with the outcome) and
// every receive (before release) with single write(2)s, so a kill loses nothing already done.
// After each round every process is stopped, a fresh handle drains the channel, and these must
// hold:
//   - no payload torn, every byte checked; no message delivered twice unless marked redelivered,
//     and no more redeliveries than receivers died; nothing delivered that was never sent;
//   - every send that succeeded (ack: released by a receiver; async: written) was received;
//   - every ack send ended in OK or PeerDiedError, never a timeout or a hang; PeerDiedError only
//     where a receiver died; a message held by a killed receiver gives PeerDiedError (ack) or is
//     redelivered (async);
//   - after the drain: depth 0, nothing in flight, no dead participant listed, and the channel
//     takes `capacity` new messages and gives them back;
//   - memory (half the channels have a `memory` bound): the pages the file holds are never more
//     than the channel counts (a death mid-allocation may overstate, never understate), and what
//     it counts stays within its bound;
//   - no worker exits in any way but the ones the round caused.
// Soak. Many processes (more than the cores) send and receive on one channel for a bounded time,
// mixed sizes and modes, no kills: every message delivered exactly once, resident memory of each
// process sampled throughout and flat, and the segment (under a `memory` bound that binds, so
// senders contend for the allocator) within its bound at every sample.

import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Channel } from "../mod.ts";
import { delay, segmentPath, segmentsOf, textLines, uniquePrefix } from "./helpers.ts";
import {
  checkPayload,
  F_ORDER,
  F_REDELIVERED,
  F_TORN,
  type LogRecord,
  makePayload,
  Outcome,
  OutcomeName,
  readLog,
  Rec,
  rng,
} from "./workers/chaos_common.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const CORE_MANIFEST = `${REPO_ROOT}core/Cargo.toml`;
export const FAULT_TARGET_DIR = `${REPO_ROOT}core/target/fault`;
export const FAULT_LIB = `${FAULT_TARGET_DIR}/release/libferry_core.so`;
/** Hang guard for one step of a round; every step takes a small fraction of it. */
const STEP_MS = 30_000;
const CAPACITIES = [2, 4, 8, 16, 32];
const SEND_POINTS = ["send.claimed", "send.written", "send.ready"];
/** A sender growing its slot's pages (charged, reserved) or shrinking them (punching, punched). */
const ALLOC_POINTS = ["alloc.charged", "alloc.reserved", "alloc.punching", "alloc.punched"];
/** The `memory` bound of the channels that have one: below capacity x 1 MiB from capacity 8. */
const BOUNDED_MEMORY = 4 * (1 << 20);
const RECV_POINTS = ["recv.claimed", "recv.run", "release.before"];
const SCENARIOS = ["random", "holding", "parked", "blocked", "recovery", "opening", "create"] as const;
type Scenario = typeof SCENARIOS[number];
const MiB = 1 << 20;

/** Builds the core with its kill points (a separate target dir; never the library users load). */
export async function buildFaultLibrary(): Promise<string> {
  const out = await new Deno.Command("cargo", {
    args: [
      "build",
      "--release",
      "--quiet",
      "--features",
      "fault-injection,testing",
      "--target-dir",
      FAULT_TARGET_DIR,
      "--manifest-path",
      CORE_MANIFEST,
    ],
    // Its own target dir, so these only change this build: it is a test library, and a quick build
    // (no LTO, parallel codegen) keeps the short chaos run's share of `deno task test` small.
    env: { CARGO_PROFILE_RELEASE_LTO: "false", CARGO_PROFILE_RELEASE_CODEGEN_UNITS: "16" },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("cargo build of the fault-injection core failed");
  return FAULT_LIB;
}

// ------------------------------------------------------------------ processes

type Role = "sender" | "receiver";

interface KidSpec {
  role: Role;
  id: number;
  /** sender: "ack" | "async"; receiver: its kind. */
  mode: string;
  api?: string;
  fault?: string;
  log: string;
}

/** A worker process: tests/workers/chaos_*.ts, run with core dumps off and its own FERRY_* env. */
class Kid {
  readonly pid: number;
  readonly status: Promise<Deno.CommandStatus>;
  exited: Deno.CommandStatus | undefined;
  /** Set when this runner SIGKILLed it, with the reason. */
  killedBy: string | undefined;
  killedAt = 0;
  readonly #process: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: string[] = [];
  #stdoutDone = false;
  #wake: (() => void) | undefined;
  stderr = "";
  readonly pumps: Promise<void>;

  constructor(
    readonly spec: KidSpec,
    script: string,
    args: string[],
    env: Record<string, string>,
    denoFlags: string[] = [],
  ) {
    const path = fileURLToPath(new URL(`./workers/${script}`, import.meta.url));
    this.#process = new Deno.Command("/bin/sh", {
      args: ["-c", 'ulimit -c 0; exec "$@"', "sh", Deno.execPath(), "run", "-A", ...denoFlags, path, ...args],
      cwd: REPO_ROOT,
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#process.pid;
    this.#stdin = this.#process.stdin.getWriter();
    this.status = this.#process.status.then((s) => this.exited = s);
    this.pumps = Promise.all([this.#pumpOut(), this.#pumpErr()]).then(() => {});
  }

  get alive(): boolean {
    return this.exited === undefined;
  }

  get label(): string {
    const s = this.spec;
    return `${s.role} ${s.id} (${s.mode}${s.api ? `/${s.api}` : ""}${
      s.fault ? `, FERRY_FAULT=${s.fault}` : ""
    }, pid ${this.pid})`;
  }

  /** The next stdout line, or undefined if the process ended or `ms` passed first. */
  async line(ms = STEP_MS): Promise<string | undefined> {
    const deadline = performance.now() + ms;
    for (;;) {
      if (this.#lines.length > 0) return this.#lines.shift();
      const left = deadline - performance.now();
      if (this.#stdoutDone || left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#wake = done;
      });
    }
  }

  async tell(line: string): Promise<void> {
    try {
      await this.#stdin.write(new TextEncoder().encode(`${line}\n`));
    } catch {
      // it died: the round's accounting sees that from its status
    }
  }

  async kill(reason: string, t0: number): Promise<boolean> {
    if (!this.alive) return false;
    this.killedBy = reason;
    this.killedAt = Date.now() - t0;
    try {
      this.#process.kill("SIGKILL");
    } catch {
      // already gone
    }
    await this.status;
    return this.exited?.signal === "SIGKILL";
  }

  signal(sig: Deno.Signal): void {
    try {
      this.#process.kill(sig);
    } catch {
      // already gone
    }
  }

  /** Waits up to `ms` for it to exit; false if it did not. */
  async exit(ms: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
    const done = await Promise.race([this.status.then(() => true), timeout]);
    clearTimeout(timer);
    return done;
  }

  async dispose(): Promise<void> {
    this.signal("SIGCONT");
    if (this.alive) this.signal("SIGKILL");
    await this.status;
    try {
      await this.#stdin.close();
    } catch {
      // closed with the process
    }
    await this.pumps;
  }

  async #pumpOut() {
    for await (const line of textLines(this.#process.stdout)) {
      this.#lines.push(line);
      this.#wake?.();
    }
    this.#stdoutDone = true;
    this.#wake?.();
  }

  async #pumpErr() {
    for await (const chunk of this.#process.stderr.pipeThrough(new TextDecoderStream())) {
      this.stderr = (this.stderr + chunk).slice(-8000);
    }
  }
}

// ------------------------------------------------------------------ figures

export interface Figures {
  seed: number;
  seconds: number;
  rounds: number;
  roundsFailed: number;
  scenarios: Record<string, number>;
  processesSpawned: number;
  processesKilled: number;
  kills: Record<string, number>;
  faultKills: Record<string, number>;
  messagesSent: number;
  messagesDelivered: number;
  redelivered: number;
  ackOk: number;
  asyncOk: number;
  peerDied: number;
  peerDiedMaxMs: number;
  refills: number;
  violations: string[];
  soak?: SoakFigures;
}

export interface SoakFigures {
  seconds: number;
  processes: number;
  cores: number;
  messages: number;
  ackMessages: number;
  lost: number;
  duplicated: number;
  torn: number;
  segmentBytes: [number, number];
  /** Per process: resident MiB at the first sample after warm-up, peak, and at the end. */
  rss: { label: string; start: number; peak: number; end: number }[];
  maxGrowthMiB: number;
}

function newFigures(seed: number, seconds: number): Figures {
  return {
    seed,
    seconds,
    rounds: 0,
    roundsFailed: 0,
    scenarios: {},
    processesSpawned: 0,
    processesKilled: 0,
    kills: {},
    faultKills: {},
    messagesSent: 0,
    messagesDelivered: 0,
    redelivered: 0,
    ackOk: 0,
    asyncOk: 0,
    peerDied: 0,
    peerDiedMaxMs: 0,
    refills: 0,
    violations: [],
  };
}

function bump(map: Record<string, number>, key: string, n = 1) {
  map[key] = (map[key] ?? 0) + n;
}

// ------------------------------------------------------------------ one round

interface RoundContext {
  prefix: string;
  name: string;
  capacity: number;
  /** The channel's `memory` option, or undefined for the default. */
  memory: number | undefined;
  dir: string;
  faultLib: string;
  figures: Figures;
  log: (line: string) => void;
}

class Round {
  readonly kids: Kid[] = [];
  readonly violations: string[] = [];
  readonly t0 = Date.now();
  /** Exactly what a killed receiver held: (senderId, seq) and when it was killed. */
  readonly heldAtKill: { senderId: number; seq: number; redelivered: boolean; killedAt: number }[] = [];
  nextId: number;
  readonly random: () => number;

  constructor(readonly ctx: RoundContext, readonly index: number, seed: number) {
    this.random = rng(seed);
    this.nextId = (index + 1) * 1000;
  }

  pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.random() * list.length)];
  }

  between(lo: number, hi: number): number {
    return lo + Math.floor(this.random() * (hi - lo + 1));
  }

  get live(): Kid[] {
    return this.kids.filter((k) => k.alive);
  }

  /** Starts a worker; resolves once it printed "ready" (true) or died first (false). */
  async spawn(spec: Omit<KidSpec, "id" | "log">, ready = true): Promise<Kid> {
    const id = this.nextId++;
    const log = `${this.ctx.dir}/${id}.log`;
    const full: KidSpec = { ...spec, id, log };
    const seed = String(Math.floor(this.random() * 2 ** 31));
    const common = [this.ctx.prefix, this.ctx.name, String(id)];
    const args = spec.role === "sender"
      ? [...common, spec.mode, spec.api!, log, String(this.t0), seed, String(this.between(1, 4))]
      : [...common, spec.mode, log, String(this.t0), seed];
    const kid = new Kid(full, spec.role === "sender" ? "chaos_sender.ts" : "chaos_receiver.ts", args, {
      FERRY_LIB: this.ctx.faultLib,
      FERRY_FAULT: spec.fault ?? "",
      FERRY_CHAOS_CAPACITY: String(this.ctx.capacity),
      FERRY_CHAOS_MEMORY: this.ctx.memory === undefined ? "" : String(this.ctx.memory),
    });
    this.kids.push(kid);
    this.ctx.figures.processesSpawned++;
    if (ready) await this.ready(kid);
    return kid;
  }

  async ready(kid: Kid): Promise<boolean> {
    const line = await kid.line();
    if (line === "ready") return true;
    if (line === undefined) await kid.exit(STEP_MS); // died starting: classifyExit judges how
    else this.violations.push(`${kid.label} printed "${line}" instead of ready`);
    return false;
  }

  /** A random kill point for a worker of this role, or none. */
  fault(role: Role, ack: boolean): string | undefined {
    if (this.random() > 0.35) return undefined;
    const r = this.random();
    if (r < 0.15) return `recover.slot:${this.between(1, 4 * this.ctx.capacity)}`;
    if (role === "sender") {
      // Growths happen about once per slot per larger size, shrinks on small sends over 1 MiB.
      if (r < 0.45) return `${this.pick(ALLOC_POINTS)}:${this.between(1, 3)}`;
      if (ack && r < 0.6) return `ack.collect:${this.between(1, 60)}`;
      return `${this.pick(SEND_POINTS)}:${this.between(1, 250)}`;
    }
    return `${this.pick(RECV_POINTS)}:${this.between(1, 250)}`;
  }

  sender(mode?: string, fault = true): Promise<Kid> {
    const m = mode ?? this.pick(["ack", "async"]);
    return this.spawn({
      role: "sender",
      mode: m,
      api: this.pick(["send", "send", "sync", "try"]),
      fault: fault ? this.fault("sender", m === "ack") : undefined,
    });
  }

  receiver(kind?: string, fault = true, ready = true): Promise<Kid> {
    const mode = kind ?? this.pick(["recv", "iter", "sync", "holder", "batch"]);
    // A batch receiver dies mid-run (after a claim of a run, before the lane's head moves past
    // it) half the times it is given a kill point; other receivers never pass that point.
    const midRun = mode === "batch" && this.random() < 0.5;
    return this.spawn({
      role: "receiver",
      mode,
      fault: !fault ? undefined : midRun ? `recv.run:${this.between(1, 20)}` : this.fault("receiver", false),
    }, ready);
  }

  async kill(kid: Kid, reason: string): Promise<void> {
    if (await kid.kill(reason, this.t0)) {
      bump(this.ctx.figures.kills, reason);
      this.ctx.figures.processesKilled++;
    }
  }

  async killRandom(reason: string, role?: Role): Promise<void> {
    const targets = this.live.filter((k) => role === undefined || k.spec.role === role);
    if (targets.length > 0) await this.kill(this.pick(targets), reason);
  }

  /** Polls the channel's counters until `done` says so or `ms` pass. */
  async until(done: (s: ReturnType<typeof Channel.stat>) => boolean, ms = 3_000): Promise<boolean> {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      if (done(Channel.stat(this.ctx.name, { prefix: this.ctx.prefix }))) return true;
      await delay(5);
    }
    return false;
  }

  async run(scenario: Scenario): Promise<void> {
    const { ctx } = this;
    if (scenario === "create") await this.create();
    const senders = [this.sender("ack"), this.sender("async")];
    if (this.random() < 0.5) senders.push(this.sender());
    const receivers = [this.receiver(), this.receiver("holder")];
    if (this.random() < 0.5) receivers.push(this.receiver());
    await Promise.all([...senders, ...receivers]);

    const duration = this.between(800, 2000);
    const end = performance.now() + duration;
    const kills = Array.from({ length: this.between(1, 3) }, () => this.random() * duration).sort((a, b) =>
      a - b
    );
    const middle = duration * (0.3 + 0.3 * this.random());
    let scenarioDone = false;
    const start = performance.now();
    for (const at of kills) {
      if (!scenarioDone && at > middle) {
        await this.situation(scenario);
        scenarioDone = true;
      }
      const wait = start + at - performance.now();
      if (wait > 0) await delay(wait); // a random moment: the moment is what is being varied
      await this.killRandom("random");
      if (this.random() < 0.7) {
        // A replacement, which may itself be killed while it is still starting and opening.
        const replacement = this.random() < 0.5 ? this.sender(undefined, true) : this.receiver();
        if (this.random() < 0.25) {
          await delay(this.random() * 400);
          const kid = this.kids[this.kids.length - 1];
          await this.kill(kid, "while opening");
        }
        await replacement;
      }
    }
    if (!scenarioDone) await this.situation(scenario);
    const rest = end - performance.now();
    if (rest > 0) await delay(rest);
    await this.finish();
    ctx.log(
      `round ${this.index} (${scenario}, capacity ${ctx.capacity}, memory ${
        ctx.memory ?? "default"
      }): ${this.kids.length} processes`,
    );
  }

  /** The round's chosen situation: a kill at a moment that is certain, not likely. */
  async situation(scenario: Scenario): Promise<void> {
    const senders = () => this.live.filter((k) => k.spec.role === "sender");
    const receivers = () => this.live.filter((k) => k.spec.role === "receiver");
    switch (scenario) {
      case "holding": {
        // A receiver takes a message and keeps it; it is killed holding it.
        const holder = await this.receiver("recv", false);
        await holder.tell("grab");
        const line = await holder.line(5_000);
        const m = line?.match(/^holding (\d+) (\d+) (true|false)$/);
        await this.kill(holder, "holding a message");
        if (m) {
          this.heldAtKill.push({
            senderId: Number(m[1]),
            seq: Number(m[2]),
            redelivered: m[3] === "true",
            killedAt: holder.killedAt,
          });
        }
        return;
      }
      case "parked": {
        // Senders pause; once nothing is queued or held every receiver is parked in a wait.
        for (const s of senders()) await s.tell("pause");
        if (await this.until((s) => s.depth === 0 && s.inFlight === 0)) {
          const targets = receivers();
          if (targets.length > 0) await this.kill(this.pick(targets), "parked in a receive wait");
        }
        for (const s of senders()) await s.tell("resume");
        return;
      }
      case "blocked": {
        // Receivers pause; once the channel is full the senders are blocked in send or ack waits.
        for (const r of receivers()) await r.tell("pause");
        // Full: the channel's capacity, or an async sender's 16 slots.
        if (await this.until((s) => s.depth + s.inFlight >= Math.min(this.ctx.capacity, 16))) {
          const targets = senders();
          if (targets.length > 0) await this.kill(this.pick(targets), "blocked in a send wait");
        }
        for (const r of receivers()) await r.tell("resume");
        return;
      }
      case "recovery": {
        // Everyone else is stopped, one process is killed, and a newcomer armed to die on its
        // n-th recovered slot opens the channel: it is the one recovering, and dies doing it.
        // A second newcomer then has to recover both.
        const others = this.live;
        for (const k of others) k.signal("SIGSTOP");
        try {
          const victim = this.pick(others);
          if (victim) await this.kill(victim, "random");
          const point = `recover.slot:${this.between(1, this.ctx.capacity)}`;
          const opener = await this.spawn({ role: "receiver", mode: "recv", fault: point }, false);
          await this.ready(opener);
          await this.receiver("recv", false);
        } finally {
          for (const k of others) k.signal("SIGCONT");
        }
        return;
      }
      case "opening": {
        // Dies just after taking its participant lock, before it is marked active.
        const a = await this.spawn({ role: "receiver", mode: "recv", fault: "join.locked" }, false);
        await this.ready(a);
        // And one killed at a random moment of its start (loading, opening, joining).
        const b = this.receiver("recv", false, false);
        await delay(this.random() * 500);
        await this.kill(this.kids[this.kids.length - 1], "while opening");
        await b.catch(() => {});
        return;
      }
      default:
        return;
    }
  }

  /** A brand-new channel whose first builder dies mid-build; the next opener must rebuild it. */
  async create(): Promise<void> {
    const builder = await this.spawn({ role: "receiver", mode: "recv", fault: "open.building" }, false);
    await this.ready(builder);
    if (!segmentsOf(this.ctx.prefix).includes(this.ctx.name)) {
      this.violations.push("the builder killed at open.building left no segment to recover");
    }
  }

  /** Stops everyone: senders finish their sends in flight, receivers leave; nothing may hang. */
  async finish(): Promise<void> {
    for (const k of this.live) await k.tell("resume");
    await this.receiver("recv", false); // a healthy receiver, whatever was killed
    const senders = this.live.filter((k) => k.spec.role === "sender");
    for (const s of senders) await s.tell("stop");
    for (const s of senders) {
      if (!await s.exit(STEP_MS)) {
        this.violations.push(`${s.label} did not finish its sends within ${STEP_MS} ms of stop (a hang)`);
        await this.kill(s, "hung");
      }
    }
    const receivers = this.live.filter((k) => k.spec.role === "receiver");
    for (const r of receivers) await r.tell("exit");
    for (const r of receivers) {
      if (!await r.exit(STEP_MS)) {
        this.violations.push(`${r.label} did not exit within ${STEP_MS} ms`);
        await this.kill(r, "hung");
      }
    }
    for (const k of this.kids) await k.dispose();
    for (const k of this.kids) this.classifyExit(k);
  }

  classifyExit(k: Kid): void {
    const s = k.exited!;
    if (k.killedBy !== undefined && s.signal === "SIGKILL") return;
    if (s.signal === "SIGABRT" && k.spec.fault && !/panicked/.test(k.stderr)) {
      const point = k.spec.fault.split(":")[0];
      bump(this.ctx.figures.faultKills, point);
      this.ctx.figures.processesKilled++;
      k.killedBy = `fault ${point}`;
      return;
    }
    if (s.code === 0 && s.signal === null) return;
    this.violations.push(
      `${k.label} exited with code ${s.code} signal ${s.signal}; stderr:\n${k.stderr.slice(-2000)}`,
    );
  }

  /** Drains with a fresh handle and checks that the channel is whole; returns what it received. */
  check(): LogRecord[] {
    const { prefix, name, capacity } = this.ctx;
    const got: LogRecord[] = [];
    const ch = Channel.open<Uint8Array>(name, {
      prefix,
      codec: "raw",
      mode: "async",
      slots: 32,
      autoRelease: false,
    });
    try {
      for (let m = ch.tryRecv(); m !== undefined; m = ch.tryRecv()) {
        const c = checkPayload(m.bytes);
        const flags = (m.redelivered ? F_REDELIVERED : 0) | (c.ok ? 0 : F_TORN);
        got.push({
          kind: Rec.GOT,
          code: 0,
          flags,
          senderId: c.senderId,
          seq: c.seq,
          time: Date.now() - this.t0,
        });
        m.release();
      }
      const st = ch.stat();
      if (st.depth !== 0 || st.inFlight !== 0) {
        this.violations.push(`after recovery and drain: depth ${st.depth}, in flight ${st.inFlight}`);
      }
      const others = st.participants.filter((p) => p.pid !== Deno.pid || !p.alive);
      if (others.length > 0) {
        this.violations.push(`after recovery: participants still listed ${JSON.stringify(others)}`);
      }
      // Every slot is free again: the channel takes `capacity` messages at once and returns them.
      const checkerId = 0xffff_0000 + this.index;
      for (let i = 0; i < capacity; i++) {
        try {
          ch.trySend(makePayload(checkerId, i, 64 + i));
        } catch (e) {
          this.violations.push(`after recovery the channel refused message ${i + 1} of ${capacity}: ${e}`);
          break;
        }
      }
      for (let i = 0; i < capacity; i++) {
        const m = ch.tryRecv();
        const c = m && checkPayload(m.bytes);
        if (!c || !c.ok || c.senderId !== checkerId || c.seq !== i) {
          this.violations.push(`after recovery new message ${i} came back as ${JSON.stringify(c)}`);
          break;
        }
        m!.release();
      }
      if (ch.tryRecv() !== undefined) this.violations.push("after the refill an extra message came out");
      this.checkMemory(ch);
      this.ctx.figures.refills++;
    } finally {
      ch.close();
    }
    return got;
  }

  /** The memory invariants: pages held never exceed what is counted, which stays within the bound. */
  checkMemory(ch: Channel<Uint8Array>): void {
    const { prefix, name, capacity, memory } = this.ctx;
    const st = ch.stat();
    const file = segmentResident(prefix, name);
    if (file > st.bytes) {
      this.violations.push(`memory: the file holds ${file} bytes, the channel counts only ${st.bytes}`);
    }
    if (memory !== undefined && st.bytes - fixedPart(prefix, capacity) > memory) {
      this.violations.push(`memory: ${st.bytes} bytes counted, over the fixed part and the ${memory} bound`);
    }
  }

  /** Reads every log and checks the delivery invariants. */
  async account(checkerGot: LogRecord[]): Promise<void> {
    const f = this.ctx.figures;
    type SenderInfo = { kid: Kid; ack: boolean; begun: Set<number>; ends: Map<number, LogRecord> };
    const senders = new Map<number, SenderInfo>();
    const deliveries = new Map<string, { unmarked: number; again: number; by: Kid[] }>();
    let deadReceivers = 0;
    const key = (sid: number, seq: number) => `${sid}:${seq}`;

    const read = async (k: Kid) => {
      try {
        return readLog(await Deno.readFile(k.spec.log));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return [];
        throw e;
      }
    };
    const gots: { kid: Kid | null; records: LogRecord[] }[] = [];
    for (const k of this.kids) {
      const records = await read(k);
      if (k.spec.role === "sender") {
        const info: SenderInfo = { kid: k, ack: k.spec.mode === "ack", begun: new Set(), ends: new Map() };
        for (const r of records) {
          if (r.kind === Rec.BEGIN) info.begun.add(r.seq);
          if (r.kind === Rec.END) info.ends.set(r.seq, r);
        }
        senders.set(k.spec.id, info);
      } else {
        if (k.killedBy !== undefined) deadReceivers++;
        gots.push({ kid: k, records });
      }
    }
    gots.push({ kid: null, records: checkerGot });

    for (const { kid, records } of gots) {
      for (const r of records) {
        if (r.kind !== Rec.GOT) continue;
        const who = kid ? kid.label : "the checker";
        if (r.flags & F_TORN) {
          this.violations.push(`${who} received a torn payload (sender ${r.senderId} seq ${r.seq})`);
          continue;
        }
        const s = senders.get(r.senderId);
        if (!s || !s.begun.has(r.seq)) {
          this.violations.push(`${who} received sender ${r.senderId} seq ${r.seq}, which was never sent`);
          continue;
        }
        const k = key(r.senderId, r.seq);
        const d = deliveries.get(k) ?? { unmarked: 0, again: 0, by: [] };
        deliveries.set(k, d);
        if (r.flags & F_REDELIVERED) {
          d.again++;
          f.redelivered++;
        } else {
          d.unmarked++;
        }
        if (r.flags & F_ORDER) {
          this.violations.push(`${who} received sender ${r.senderId} seq ${r.seq} out of its sender's order`);
        }
        if (kid) d.by.push(kid);
        f.messagesDelivered++;
      }
    }

    for (const [k, d] of deliveries) {
      if (d.unmarked > 1) this.violations.push(`message ${k} delivered ${d.unmarked} times unmarked`);
      if (d.again > deadReceivers) {
        this.violations.push(
          `message ${k} redelivered ${d.again} times, but only ${deadReceivers} receivers died`,
        );
      }
    }

    for (const [id, s] of senders) {
      f.messagesSent += s.begun.size;
      const killed = s.kid.killedBy !== undefined;
      for (const seq of s.begun) {
        const end = s.ends.get(seq);
        if (!end) {
          if (!killed) this.violations.push(`${s.kid.label}: send ${seq} never completed (a hang)`);
          continue;
        }
        const d = deliveries.get(key(id, seq));
        if (end.code === Outcome.OK) {
          if (s.ack) f.ackOk++;
          else f.asyncOk++;
          if (!d) {
            this.violations.push(
              `${s.kid.label}: ${
                s.ack ? "ack" : "async"
              } send ${seq} succeeded but was never received (lost)`,
            );
          }
        } else if (end.code === Outcome.PeerDied && s.ack) {
          f.peerDied++;
          if (deadReceivers === 0) {
            this.violations.push(`${s.kid.label}: send ${seq} got PeerDiedError though no receiver died`);
          }
          if (d && d.by.length > 0 && !d.by.some((k) => k.killedBy !== undefined)) {
            this.violations.push(
              `${s.kid.label}: send ${seq} got PeerDiedError though its receivers all lived`,
            );
          }
        } else {
          const said = s.kid.stderr.split("\n").find((l) => l.includes(`seq ${seq}:`)) ?? "";
          this.violations.push(
            `${s.kid.label}: send ${seq} ended in ${
              OutcomeName[end.code]
            } (ack sends end in OK or PeerDied, ` +
              `async in OK) ${said}`,
          );
        }
      }
    }

    for (const h of this.heldAtKill) {
      const s = senders.get(h.senderId);
      const end = s?.ends.get(h.seq);
      const d = deliveries.get(key(h.senderId, h.seq));
      if (s?.ack && end) {
        if (end.code !== Outcome.PeerDied) {
          this.violations.push(
            `sender ${h.senderId} seq ${h.seq} was held by a killed receiver, yet its ack send ended in ${
              OutcomeName[end.code]
            }`,
          );
        } else {
          f.peerDiedMaxMs = Math.max(f.peerDiedMaxMs, end.time - h.killedAt);
        }
      } else if (!s?.ack && (!d || d.again === 0)) {
        this.violations.push(
          `async message ${h.senderId}:${h.seq} held by a killed receiver was not redelivered`,
        );
      }
    }
  }
}

// ------------------------------------------------------------------ soak

async function rssBytes(pid: number): Promise<number> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const m = status.match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** What a channel of `capacity` slots holds with no message pages: its stat's bytes, fresh. */
function fixedPart(prefix: string, capacity: number): number {
  const name = `fixed-${capacity}`;
  const probe = Channel.open(name, { prefix, capacity });
  try {
    return probe.stat().bytes;
  } finally {
    probe.close();
    Channel.unlink(name, { prefix });
  }
}

function segmentResident(prefix: string, name: string): number {
  // Allocated blocks of the shm file: what the segment holds in memory.
  return (Deno.statSync(segmentPath(prefix, name)).blocks ?? 0) * 512;
}

export async function soak(
  seconds: number,
  faultLib: string | undefined,
  log: (line: string) => void,
  random: () => number,
): Promise<{ figures: SoakFigures; violations: string[] }> {
  const prefix = uniquePrefix();
  const name = "soak";
  const dir = await Deno.makeTempDir({ prefix: "ferry_soak_" });
  const cores = navigator.hardwareConcurrency;
  const capacity = 64;
  // 1 MiB for messages up to 64 KiB over 64 slots (4 MiB if all held one): the bound binds.
  const memory = 1 << 20;
  const owner = Channel.open(name, { prefix, capacity, maxMessageSize: 64 * 1024, memory, mode: "async" });
  const fixed = fixedPart(prefix, capacity);
  const violations: string[] = [];
  const kids: Kid[] = [];
  // Workers open with the owner's settings: a different explicit capacity is refused.
  const env: Record<string, string> = {
    FERRY_FAULT: "",
    FERRY_CHAOS_CAPACITY: String(capacity),
    FERRY_CHAOS_MAX_MESSAGE: String(64 * 1024),
    FERRY_CHAOS_MEMORY: String(memory),
    ...(faultLib ? { FERRY_LIB: faultLib } : {}),
  };
  const t0 = Date.now();
  let id = 1;
  const spawn = (role: Role, mode: string, api?: string) => {
    const spec: KidSpec = { role, id: id++, mode, api, log: `${dir}/${id - 1}.log` };
    const seed = String(Math.floor(random() * 2 ** 31));
    const args = role === "sender"
      ? [prefix, name, String(spec.id), mode, api!, spec.log, String(t0), seed, "4"]
      : [prefix, name, String(spec.id), mode, spec.log, String(t0), seed];
    const script = role === "sender" ? "chaos_sender.ts" : "chaos_receiver.ts";
    const kid = new Kid(spec, script, args, env, ["--v8-flags=--expose-gc"]);
    kids.push(kid);
    return kid;
  };
  try {
    for (const api of ["send", "sync", "try", "send"]) spawn("sender", "async", api);
    for (const api of ["send", "sync"]) spawn("sender", "ack", api);
    for (const kind of ["recv", "iter", "sync", "holder", "batch"]) spawn("receiver", kind);
    for (const k of kids) {
      if (await k.line() !== "ready") throw new Error(`soak: ${k.label} did not start: ${k.stderr}`);
    }
    // Warm-up (JIT, first chunks), then resident memory sampled every second until the end.
    const warm = Math.min(3, seconds / 4) * 1000;
    await delay(warm);
    const samples = new Map<Kid, number[]>(kids.map((k) => [k, []]));
    const segment = [segmentResident(prefix, name), 0] as [number, number];
    const end = performance.now() + seconds * 1000 - warm;
    let lastReport = performance.now();
    let overBound = 0;
    while (performance.now() < end) {
      for (const k of kids) samples.get(k)!.push(await rssBytes(k.pid));
      if (owner.stat().bytes - fixed > memory) overBound++;
      for (const k of kids) if (!k.alive) throw new Error(`soak: ${k.label} died: ${k.stderr}`);
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        log(`soak: ${Math.round((end - performance.now()) / 1000)} s left, depth ${owner.stat().depth}`);
      }
      await delay(Math.min(1000, Math.max(0, end - performance.now())));
    }
    for (const k of kids) samples.get(k)!.push(await rssBytes(k.pid));
    segment[1] = segmentResident(prefix, name);

    const senders = kids.filter((k) => k.spec.role === "sender");
    for (const s of senders) await s.tell("stop");
    for (const s of senders) if (!await s.exit(STEP_MS)) violations.push(`soak: ${s.label} hung on stop`);
    const receivers = kids.filter((k) => k.spec.role === "receiver");
    for (const r of receivers) await r.tell("exit");
    for (const r of receivers) if (!await r.exit(STEP_MS)) violations.push(`soak: ${r.label} hung on exit`);
    for (const k of kids) {
      await k.dispose();
      if (k.exited?.code !== 0) {
        violations.push(`soak: ${k.label} exited ${JSON.stringify(k.exited)}: ${k.stderr}`);
      }
    }

    // Count every message: each one sent is received exactly once, unmarked and whole.
    const sent = new Map<number, { ack: boolean; ok: number; count: number }>();
    const counts = new Map<number, Uint8Array>();
    let torn = 0, messages = 0, ackMessages = 0;
    for (const s of senders) {
      const records = readLog(await Deno.readFile(s.spec.log));
      const ends = records.filter((r) => r.kind === Rec.END);
      const begun = records.filter((r) => r.kind === Rec.BEGIN).length;
      const bad = ends.filter((r) => r.code !== Outcome.OK);
      if (bad.length > 0) {
        violations.push(
          `soak: ${s.label}: ${bad.length} sends failed (${OutcomeName[bad[0].code]}): ${
            s.stderr.split("\n")[0]
          }`,
        );
      }
      if (ends.length !== begun) {
        violations.push(`soak: ${s.label}: ${begun - ends.length} sends never completed`);
      }
      sent.set(s.spec.id, { ack: s.spec.mode === "ack", ok: ends.length - bad.length, count: begun });
      counts.set(s.spec.id, new Uint8Array(begun));
    }
    let duplicated = 0, stray = 0;
    for (const r of receivers) {
      for (const rec of readLog(await Deno.readFile(r.spec.log))) {
        if (rec.kind !== Rec.GOT) continue;
        if (rec.flags & F_TORN) torn++;
        if (rec.flags & F_REDELIVERED) {
          violations.push(`soak: ${rec.senderId}:${rec.seq} marked redelivered, nobody died`);
        }
        const c = counts.get(rec.senderId);
        if (!c || rec.seq >= c.length) {
          stray++;
          continue;
        }
        if (c[rec.seq]++ > 0) duplicated++;
      }
    }
    let lost = 0;
    for (const [sid, c] of counts) {
      for (let i = 0; i < c.length; i++) if (c[i] === 0) lost++;
      messages += c.length;
      if (sent.get(sid)!.ack) ackMessages += c.length;
    }
    // The checker's drain: nothing may be left over.
    const left = owner.tryRecv();
    if (left !== undefined) {
      violations.push("soak: a message was left in the channel after every receiver drained it");
    }
    if (lost) violations.push(`soak: ${lost} messages lost`);
    if (duplicated) violations.push(`soak: ${duplicated} messages delivered twice`);
    if (torn) violations.push(`soak: ${torn} torn payloads`);
    if (stray) violations.push(`soak: ${stray} messages received that no sender sent`);
    // The segment's pages come and go with the messages (trimmed over the low-water mark), so
    // they are not flat: they must stay within the bound and never exceed what the channel counts.
    if (overBound > 0) violations.push(`soak: ${overBound} samples counted more than the memory bound`);
    // Compared once everyone stopped: a stat sums the slots one by one, not at one instant.
    const [held, counted] = [segmentResident(prefix, name), owner.stat().bytes];
    if (held > counted) {
      violations.push(`soak: the segment holds ${held} bytes, more than the ${counted} it counts`);
    }
    if (segment[1] - fixed > memory) {
      violations.push(`soak: the segment holds ${segment[1]} bytes at the end`);
    }

    // Flat memory: the highest sample of the last third is within 32 MiB of the first third's. The
    // workers run a full collection every half second, so what remains is what they keep; the
    // margin covers the collector's and the allocator's steps (new pages, a new thread's arena).
    const rss = [];
    let maxGrowth = 0;
    for (const k of kids) {
      const xs = samples.get(k)!.filter((x) => x > 0);
      const third = Math.max(1, Math.floor(xs.length / 3));
      const early = Math.max(...xs.slice(0, third));
      const late = Math.max(...xs.slice(-third));
      const growth = (late - early) / MiB;
      maxGrowth = Math.max(maxGrowth, growth);
      rss.push({
        label: k.label,
        start: xs[0] / MiB,
        peak: Math.max(...xs) / MiB,
        end: xs[xs.length - 1] / MiB,
        samples: xs.map((x) => Math.round(x / MiB)),
      });
      // A soak of a few seconds is still warming up (JIT, heap sizing): it reports, it does not judge.
      if (seconds >= 20 && growth > 32) {
        violations.push(`soak: ${k.label} resident memory grew ${growth.toFixed(1)} MiB`);
      }
    }
    return {
      figures: {
        seconds,
        processes: kids.length,
        cores,
        messages,
        ackMessages,
        lost,
        duplicated,
        torn,
        segmentBytes: segment,
        rss,
        maxGrowthMiB: maxGrowth,
      },
      violations,
    };
  } finally {
    for (const k of kids) await k.dispose();
    owner.close();
    for (const n of segmentsOf(prefix)) Channel.unlink(n, { prefix });
    await Deno.remove(dir, { recursive: true });
  }
}

// ------------------------------------------------------------------ the run

export interface ChaosOptions {
  /** Total budget, soak included. */
  seconds: number;
  soakSeconds: number;
  seed: number;
  faultLib: string;
  /** Stop after this many rounds even if time is left. */
  maxRounds?: number;
  log?: (line: string) => void;
}

export async function runChaos(o: ChaosOptions): Promise<Figures> {
  const log = o.log ?? (() => {});
  const figures = newFigures(o.seed, o.seconds);
  const started = performance.now();
  const deadline = started + o.seconds * 1000;
  const prefix = uniquePrefix();
  const dir = await Deno.makeTempDir({ prefix: "ferry_chaos_" });
  try {
    if (o.soakSeconds > 0) {
      const s = await soak(o.soakSeconds, undefined, log, rng(o.seed ^ 0x50a4));
      figures.soak = s.figures;
      figures.violations.push(...s.violations);
      log(
        `soak: ${s.figures.messages} messages through ${s.figures.processes} processes, ${s.violations.length} violations`,
      );
    }
    let channel = 0;
    let capacity = CAPACITIES[0];
    let memory: number | undefined;
    for (let r = 0; performance.now() < deadline && (o.maxRounds === undefined || r < o.maxRounds); r++) {
      const random = rng(o.seed + r * 7919);
      const scenario = SCENARIOS[r % SCENARIOS.length];
      // A new channel for creation rounds and every few rounds; the others reuse it as it is.
      if (r === 0 || scenario === "create" || random() < 0.2) {
        // Nobody is attached between rounds: the old one goes, so /dev/shm holds one at a time.
        if (channel > 0) Channel.unlink(`chaos${channel}`, { prefix });
        channel++;
        capacity = CAPACITIES[Math.floor(random() * CAPACITIES.length)];
        memory = random() < 0.5 ? BOUNDED_MEMORY : undefined;
      }
      // Not created here: the round's workers race to create it (a builder dies in "create" rounds).
      const name = `chaos${channel}`;
      const roundDir = `${dir}/${r}`;
      await Deno.mkdir(roundDir);
      const ctx: RoundContext = {
        prefix,
        name,
        capacity,
        memory,
        dir: roundDir,
        faultLib: o.faultLib,
        figures,
        log,
      };
      const round = new Round(ctx, r, Math.floor(random() * 2 ** 31));
      try {
        await round.run(scenario);
        const got = round.check();
        await round.account(got);
      } catch (e) {
        round.violations.push(`round ${r} failed: ${(e as Error).stack ?? e}`);
      } finally {
        for (const k of round.kids) await k.dispose();
      }
      figures.rounds++;
      bump(figures.scenarios, scenario);
      if (round.violations.length > 0) {
        figures.roundsFailed++;
        for (const v of round.violations) {
          figures.violations.push(`round ${r} (${scenario}, seed ${o.seed}): ${v}`);
        }
        log(`round ${r}: ${round.violations.length} violations, first: ${round.violations[0]}`);
      }
      await Deno.remove(roundDir, { recursive: true });
    }
  } finally {
    for (const n of segmentsOf(prefix)) {
      try {
        Channel.unlink(n, { prefix });
      } catch {
        await Deno.remove(segmentPath(prefix, n)).catch(() => {});
      }
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return figures;
}

export function describe(f: Figures): string {
  const list = (m: Record<string, number>) =>
    Object.entries(m).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
  const lines = [
    `ferry chaos: ${f.seconds} s, seed ${f.seed}`,
    `  rounds           ${f.rounds} run, ${f.rounds - f.roundsFailed} survived (${list(f.scenarios)})`,
    `  processes        ${f.processesSpawned} started, ${f.processesKilled} killed`,
    `  SIGKILLs         ${list(f.kills) || "none"}`,
    `  kill points      ${list(f.faultKills) || "none"}`,
    `  messages         ${f.messagesSent} sent, ${f.messagesDelivered} deliveries checked byte for byte ` +
    `(${f.redelivered} redelivered); ack OK ${f.ackOk}, async OK ${f.asyncOk}, PeerDiedError ${f.peerDied}` +
    (f.peerDiedMaxMs ? ` (at most ${f.peerDiedMaxMs} ms after the holder was killed)` : ""),
    `  recovered        ${f.refills} drains with every slot refilled`,
  ];
  if (f.soak) {
    const s = f.soak;
    lines.push(
      `  soak             ${s.processes} processes on ${s.cores} cores for ${s.seconds} s: ${s.messages} messages ` +
        `(${s.ackMessages} ack), lost ${s.lost}, duplicated ${s.duplicated}, torn ${s.torn}; ` +
        `segment ${(s.segmentBytes[0] / MiB).toFixed(1)} -> ${(s.segmentBytes[1] / MiB).toFixed(1)} MiB; ` +
        `largest resident growth ${s.maxGrowthMiB.toFixed(1)} MiB`,
    );
  }
  lines.push(
    `  violations       ${f.violations.length}${
      f.violations.length === 0 ? " (nothing lost, torn or duplicated)" : ""
    }`,
  );
  for (const v of f.violations.slice(0, 20)) lines.push(`    - ${v}`);
  return lines.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string" },
      "soak-seconds": { type: "string" },
      seed: { type: "string" },
      json: { type: "string" },
      quiet: { type: "boolean" },
    },
  });
  const seconds = Number(values.seconds ?? Deno.env.get("FERRY_CHAOS_SECONDS") ?? 180);
  const soakSeconds = Number(values["soak-seconds"] ?? Math.max(5, Math.min(60, Math.round(seconds / 4))));
  const seed = Number(values.seed ?? Deno.env.get("FERRY_CHAOS_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const faultLib = await buildFaultLibrary();
  const figures = await runChaos({
    seconds,
    soakSeconds,
    seed,
    faultLib,
    log: values.quiet ? undefined : (line) => console.error(line),
  });
  console.log(describe(figures));
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(figures, null, 2));
  Deno.exit(figures.violations.length === 0 ? 0 : 1);
}
