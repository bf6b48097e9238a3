// Shared pieces of the test suite: a per-test Scope (unique prefix, channels, child processes, temp
// dirs, all cleaned up on dispose), a Child that talks to a worker over stdin/stdout lines, and
// self-checking payloads. Workers import the stdin and payload helpers from here too.

import { fileURLToPath } from "node:url";
import { Channel } from "../mod.ts";
import { textLines as readLines } from "../cli/lines.ts";

type OpenOptions = NonNullable<Parameters<typeof Channel.open>[1]>;

/** Hang guard for one awaited step; not a speed assertion (every expected step takes far less). */
export const STEP_TIMEOUT_MS = 20_000;

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const SHM_DIR = "/dev/shm";

/** A prefix no other test (or earlier run) uses, so channels never collide. */
export function uniquePrefix(): string {
  return `t${Deno.pid}_${crypto.randomUUID().slice(0, 8)}`;
}

/** Names of the segments under /dev/shm that belong to `prefix`, sorted. */
export function segmentsOf(prefix: string): string[] {
  const names: string[] = [];
  for (const entry of Deno.readDirSync(SHM_DIR)) {
    if (entry.name.startsWith(`${prefix}.`)) names.push(entry.name.slice(prefix.length + 1));
  }
  return names.sort();
}

/** Path of the segment file for a channel. */
export function segmentPath(prefix: string, name: string): string {
  return `${SHM_DIR}/${prefix}.${name}`;
}

/** Resolves after `ms`. Only for letting a deadline pass when the deadline is the behaviour under test. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Awaits `promise`, failing with a clear message instead of hanging if it does not settle in time. */
export async function within<T>(promise: Promise<T>, what: string, ms = STEP_TIMEOUT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang guard: ${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise watched without being awaited: `settled` turns true once it resolves or rejects. */
export interface Followed<T> {
  readonly promise: Promise<T>;
  readonly settled: boolean;
}

/** Starts following `promise` (its rejection counts as handled until the test awaits it). */
export function follow<T>(promise: Promise<T>): Followed<T> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  return {
    promise,
    get settled() {
      return settled;
    },
  };
}

/** What a worker answers to a command: one JSON line (see tests/workers/peer.ts). */
export interface Reply {
  error?: string;
  code?: string;
  message?: string;
  seq?: number;
  sender?: number;
  redelivered?: boolean;
  data?: unknown;
  size?: number;
  sent?: number;
  released?: number;
}

/** A worker process started with `deno run -A tests/workers/<script>`, spoken to in lines. */
export class Child implements AsyncDisposable {
  readonly pid: number;
  readonly status: Promise<Deno.CommandStatus>;
  readonly #label: string;
  readonly #process: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: string[] = [];
  readonly #wakers = new Set<() => void>();
  readonly #pumps: Promise<void>[];
  #stdoutClosed = false;
  #stderr = "";

  /** `env` is added to this process's environment (e.g. FERRY_LIB and FERRY_FAULT for a fault build). */
  constructor(script: string, args: string[], env?: Record<string, string>) {
    const workerPath = fileURLToPath(new URL(`./workers/${script}`, import.meta.url));
    this.#process = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", workerPath, ...args],
      cwd: REPO_ROOT,
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#process.pid;
    this.#label = `${script} (pid ${this.pid})`;
    this.#stdin = this.#process.stdin.getWriter();
    this.status = this.#process.status;
    this.#pumps = [this.#pumpStdout(), this.#pumpStderr()];
  }

  /** The next line the child printed; fails if it exits first or nothing comes within `ms`. */
  async line(what = "a line", ms = STEP_TIMEOUT_MS): Promise<string> {
    const deadline = Date.now() + ms;
    while (true) {
      if (this.#lines.length > 0) return this.#lines.shift()!;
      if (this.#stdoutClosed) throw new Error(`${this.#label} exited before printing ${what}${this.#tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.#label} printed no ${what} within ${ms} ms${this.#tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, left);
        function wake() {
          clearTimeout(timer);
          resolve();
        }
        this.#wakers.add(wake);
      });
    }
  }

  /** Reads the next line and checks it is exactly `expected`. */
  async expectLine(expected: string, ms = STEP_TIMEOUT_MS): Promise<void> {
    const got = await this.line(`"${expected}"`, ms);
    if (got !== expected) {
      throw new Error(`${this.#label} printed "${got}", expected "${expected}"${this.#tail()}`);
    }
  }

  /** Writes one line to the child's stdin. */
  async tell(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(`${line}\n`));
  }

  /** Sends a command to a peer worker and returns its one-line JSON reply. */
  async ask(op: string, args: Record<string, unknown> = {}, ms = STEP_TIMEOUT_MS): Promise<Reply> {
    await this.tell(JSON.stringify({ op, ...args }));
    return JSON.parse(await this.line(`a reply to ${op}`, ms)) as Reply;
  }

  /** SIGKILLs the child and waits until it is gone. */
  async kill(): Promise<Deno.CommandStatus> {
    try {
      this.#process.kill("SIGKILL");
    } catch {
      // already exited
    }
    return await this.status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.#stdin.close();
    } catch {
      // the child may be gone already
    }
    await this.kill();
    await Promise.all(this.#pumps);
  }

  #wake() {
    for (const wake of this.#wakers) wake();
    this.#wakers.clear();
  }

  #tail(): string {
    return this.#stderr ? `; its stderr ends:\n${this.#stderr.slice(-4000)}` : "";
  }

  async #pumpStdout() {
    for await (const line of textLines(this.#process.stdout)) {
      this.#lines.push(line);
      this.#wake();
    }
    this.#stdoutClosed = true;
    this.#wake();
  }

  async #pumpStderr() {
    for await (const chunk of this.#process.stderr.pipeThrough(new TextDecoderStream())) {
      this.#stderr = (this.#stderr + chunk).slice(-16_000);
    }
  }
}

/**
 * Everything one test creates, under one unique prefix. `await using s = new Scope()` kills and awaits
 * every child, closes every channel and unlinks every segment of the prefix, whatever the test did.
 */
export class Scope implements AsyncDisposable {
  readonly prefix = uniquePrefix();
  readonly #channels: Channel[] = [];
  readonly #children: Child[] = [];
  readonly #tempDirs: string[] = [];

  /** Opens (creating if absent) a channel under this scope's prefix. */
  open(name: string, options: OpenOptions = {}): Channel {
    const channel = Channel.open(name, { ...options, prefix: this.prefix });
    this.#channels.push(channel);
    return channel;
  }

  /**
   * Starts `tests/workers/<script>` with arguments `prefix name ...args` (objects as JSON) and waits
   * until it prints "ready".
   */
  async spawn(script: string, name: string, ...args: (string | number | object)[]): Promise<Child> {
    const text = args.map((arg) => typeof arg === "object" ? JSON.stringify(arg) : String(arg));
    const child = new Child(script, [this.prefix, name, ...text]);
    this.#children.push(child);
    await child.expectLine("ready");
    return child;
  }

  /** A temporary directory removed on dispose. */
  async tempDir(): Promise<string> {
    const dir = await Deno.makeTempDir({ prefix: `ferry_${this.prefix}_` });
    this.#tempDirs.push(dir);
    return dir;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.#children.map((child) => child[Symbol.asyncDispose]()));
    for (const channel of this.#channels) {
      try {
        channel.close();
      } catch {
        // closed by the test already
      }
    }
    for (const name of segmentsOf(this.prefix)) {
      try {
        Channel.unlink(name, { prefix: this.prefix });
      } catch {
        // not a channel (a test's foreign file): removed below
      }
      await Deno.remove(segmentPath(this.prefix, name)).catch(() => {});
    }
    // The namespace's msgpack structure store (src/structures.ts), made by the first msgpack use.
    await Deno.remove(`${SHM_DIR}/${this.prefix}~structures`).catch(() => {});
    for (const dir of this.#tempDirs) await Deno.remove(dir, { recursive: true });
  }
}

/** What a CLI process did: its exit code and everything it wrote. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno run -A cli.ts <args>` from the repository root, its output piped. */
export function cliCommand(args: string[], stdin: "piped" | "null", signal?: AbortSignal): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli.ts", ...args],
    cwd: REPO_ROOT,
    stdin,
    stdout: "piped",
    stderr: "piped",
    signal,
  });
}

/** Runs the CLI to completion (killed by the hang guard if it does not finish), feeding it `stdin`. */
export async function cli(args: string[], stdin?: string): Promise<CliResult> {
  const child = cliCommand(args, stdin === undefined ? "null" : "piped", AbortSignal.timeout(STEP_TIMEOUT_MS))
    .spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
    } catch {
      // the CLI exited without reading it all; its result says why
    }
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * The command prefix that runs a program as another user (uid and gid `uid`, no supplementary
 * groups), or undefined when this process cannot (it is not root, or setpriv is missing).
 */
export function otherUserCommand(uid = 65534): string[] | undefined {
  if (Deno.uid() !== 0) return undefined;
  for (const setpriv of ["/usr/bin/setpriv", "/bin/setpriv"]) {
    try {
      Deno.statSync(setpriv);
      return [setpriv, `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups"];
    } catch {
      // try the next
    }
  }
  return undefined;
}

/** The lines of a byte stream, as they arrive (a last line without a newline too): the CLI's reader. */
export function textLines(stream: ReadableStream<Uint8Array>): AsyncIterableIterator<string> {
  return readLines(stream).values();
}

/** Lines from this process's stdin (for workers); ends at EOF. */
export function stdinLines(): AsyncIterableIterator<string> {
  return textLines(Deno.stdin.readable);
}

// Self-checking payload: u32 words [MAGIC, seq, byteLength, body...] where body word i is derived
// from (seq, i % 1024), so building one is a few memcpys and any torn, mixed or truncated write
// fails checkPayload.
const PAYLOAD_MAGIC = 0xfe44a7ed;
/** Size of the one big payload workers/stream_sender.ts sends, long enough to copy that a kill lands inside. */
export const BIG_PAYLOAD_BYTES = 16 << 20;
const PAYLOAD_HEADER_WORDS = 3;
const PATTERN_WORDS = 1024;

function patternBlock(seq: number): Uint32Array {
  const block = new Uint32Array(PATTERN_WORDS);
  for (let i = 0; i < PATTERN_WORDS; i++) {
    const x = (Math.imul(seq + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;
    block[i] = (x ^ (x >>> 15)) >>> 0;
  }
  return block;
}

/** A payload of `byteLength` bytes (a multiple of 4, at least 12) that checkPayload can verify. */
export function patternPayload(seq: number, byteLength: number): Uint8Array {
  if (byteLength % 4 !== 0 || byteLength < 4 * PAYLOAD_HEADER_WORDS) {
    throw new Error(`bad length ${byteLength}`);
  }
  const words = new Uint32Array(byteLength / 4);
  const block = patternBlock(seq);
  words.set(block.subarray(0, Math.min(PATTERN_WORDS, words.length)));
  for (let filled = PATTERN_WORDS; filled < words.length; filled *= 2) words.copyWithin(filled, 0, filled);
  words.set([PAYLOAD_MAGIC, seq, byteLength]);
  return new Uint8Array(words.buffer);
}

/** Verifies a patternPayload in full and returns its seq; throws describing the first damage found. */
export function checkPayload(bytes: Uint8Array): number {
  if (bytes.byteLength < 4 * PAYLOAD_HEADER_WORDS || bytes.byteLength % 4 !== 0) {
    throw new Error(`torn payload: length ${bytes.byteLength}`);
  }
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const words = new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
  if (words[0] !== PAYLOAD_MAGIC) throw new Error(`torn payload: magic ${words[0].toString(16)}`);
  const seq = words[1];
  if (words[2] !== bytes.byteLength) {
    throw new Error(`torn payload ${seq}: header says ${words[2]} bytes, got ${bytes.byteLength}`);
  }
  const block = patternBlock(seq);
  for (let i = PAYLOAD_HEADER_WORDS; i < words.length; i++) {
    if (words[i] !== block[i % PATTERN_WORDS]) {
      throw new Error(`torn payload ${seq}: word ${i} of ${words.length}`);
    }
  }
  return seq;
}
