// Channel: a named queue in shared memory. Sends and receives are one synchronous FFI call each
// when they can complete now; only when they must wait do they spin briefly and then park in one
// nonblocking futex wait per handle and side, so the event loop is never blocked for long.

import { core } from "../ffi/lib.ts";
import {
  IncompatibleReason,
  NO_TIMEOUT,
  OPEN_EXISTING,
  OPEN_OBSERVER,
  RECV_AUTO_RELEASE,
  RECV_NO_COPY,
  SEND_ACK,
  SEND_COUNT_FULL,
  SEND_RETRY,
  SIDE_RECV,
  SIDE_SEND,
  Status,
} from "../ffi/status.ts";
import { capacityFor, type CapacityPatterns } from "./capacity.ts";
import { type Codec, type CodecOption, makeCodec } from "./codec.ts";
import {
  ChannelClosedError,
  ChannelFullError,
  ChannelNotFoundError,
  ExpiredError,
  FerryError,
  IncompatibleChannelError,
  InvalidNameError,
  InvalidOptionError,
  MessageTooLargeError,
  NoSpaceError,
  PeerDiedError,
  PermissionDeniedError,
  SystemError,
  TimeoutError,
  TooManyParticipantsError,
} from "./errors.ts";
import { Message, type Releaser } from "./message.ts";
import { Views, type ViewTicket } from "./views.ts";
import {
  buildingMessage,
  foreignError,
  type OpenReport,
  readReport,
  reportBuffer,
  type Trust,
  trustOf,
  type TrustOptions,
} from "./open.ts";

export type SendMode = "ack" | "async";

export interface OpenOptions<T = unknown> extends TrustOptions {
  /** Namespace: channels with the same prefix see each other. Default "ferry". */
  prefix?: string;
  /** "ack" (default): send resolves once a receiver released the message. "async": once written. */
  mode?: SendMode;
  /** Messages this handle may have written and not yet released (1..32). Default 1 ack, 16 async. */
  slots?: number;
  /** Messages the channel holds at once, queued or received and not yet released. Fixed at creation. */
  capacity?: number;
  /**
   * Capacity by channel name, tried before `capacity`: globs (`"ws.*"`) or RegExps, first match in
   * insertion order wins. Like `capacity`, it only matters to the process that creates the channel.
   */
  channelCapacity?: CapacityPatterns;
  /** Largest encoded message in bytes. Fixed at creation. Default 1 MiB. */
  maxMessageSize?: number;
  /** Seconds after which an unreceived message is dropped (0 or Infinity: never). Default 60. */
  expiry?: number;
  /**
   * Milliseconds any wait may take (Infinity: no limit). Default 5000. Opening waits too, for a
   * channel another process is still building: TimeoutError when it is not ready in time.
   */
  timeout?: number;
  codec?: CodecOption<T>;
  /** Release each message when it is received (or after the `for await` body). Default true. */
  autoRelease?: boolean;
  /**
   * Raw codec only: receive without copying. `msg.view` reads the payload in shared memory until
   * the message is released or the channel closed (then it is detached: it reads length 0 and
   * `msg.view` throws). Messages from recv/tryRecv/recvSync/recvMany stay held until
   * `msg.release()`; `for await` releases after the body.
   */
  zeroCopy?: boolean;
  /** false: open only an existing channel (ChannelNotFoundError when absent). Default true. */
  create?: boolean;
}

export interface SendOptions {
  mode?: SendMode;
  timeout?: number;
  expiry?: number;
}

export interface RecvOptions {
  timeout?: number;
}

/**
 * Whether a channel's segment can be read: "ready" (built; every field of its stat is real),
 * "building" (another process is making it now, or is stopped while making it), "incomplete" (its
 * creator died while making it: the next opener rebuilds it, gc and rm remove it). A stat that is
 * not "ready" has only its name, state, `bytes` (the file's size), `createdAt` (the file's last
 * change) and, while building, `builder`; its other numbers are 0 and it has no participants.
 */
export type ChannelState = "ready" | "building" | "incomplete";

/** Options of Channel.stat and Channel.recover: the namespace, and which segments to trust. */
export interface StatOptions extends TrustOptions {
  /** Namespace of the channel. Default "ferry". */
  prefix?: string;
}

export interface ChannelStat {
  name: string;
  prefix: string;
  state: ChannelState;
  /** State "building": the pid of the process building it, when known. */
  builder?: number;
  capacity: number;
  maxMessageSize: number;
  /** Bytes the segment reserves in /dev/shm. */
  bytes: number;
  /** Of those, bytes resident in memory now (pages ever touched). */
  resident: number;
  /** Messages queued and not yet received. */
  depth: number;
  /** Messages received and not yet released. */
  inFlight: number;
  counters: {
    sent: number;
    received: number;
    released: number;
    expired: number;
    full: number;
    redelivered: number;
  };
  createdAt: Date;
  /** Open handles: process, whether it lives, its slots in flight as a sender, what it did so far. */
  participants: {
    pid: number;
    alive: boolean;
    inFlight: number;
    role: "sender" | "receiver" | "both" | "idle";
  }[];
}

/** @internal Channel and group names. */
export const NAME_PATTERN = /^[A-Za-z0-9._!-]{1,100}$/;
/**
 * Prefixes: the name rule without ".", so that `<prefix>.<name>` splits at its first dot and no two
 * (prefix, name) pairs share a segment (prefix "a" with channel "b.c" is not prefix "a.b" with "c").
 */
const PREFIX_PATTERN = /^[A-Za-z0-9_!-]{1,100}$/;
/** @internal The defaults of every option that has one (Namespace reads timeout from here). */
export const DEFAULTS = {
  prefix: "ferry",
  capacity: 100,
  maxMessageSize: 1 << 20,
  expiry: 60,
  timeout: 5000,
};
/** Received payloads are copied into chunks of this size, one `subarray` each. */
const CHUNK_BYTES = 64 * 1024;
/** Below this much room left, start a new chunk before receiving. */
const CHUNK_MIN_FREE = 4 * 1024;
/**
 * Attempts before a wait parks (about 15 us): covers a peer's round trip without a nonblocking
 * call, and gives the core back soon when another process needs it.
 */
const SPIN_ATTEMPTS = 200;
/** Longest single park; waits re-check liveness and deadlines at least this often. */
const PARK_SLICE_MS = 20;
const MAX_MS = 0xffff_fffe;
/** Messages one batch call moves at most. */
const BATCH_MAX = 256;

const encoder = new TextEncoder();

/** Messages encoded end to end for a batch send. */
interface Staged {
  bytes: Uint8Array;
  lens: Uint32Array;
  offsets: Float64Array;
  count: number;
}

/** @internal Channel and group names: the one rule for both. */
export function checkName(what: string, value: unknown): string {
  if (typeof value !== "string" || !NAME_PATTERN.test(value)) {
    throw new InvalidNameError(
      `${what} ${JSON.stringify(value)} is not valid: use 1 to 100 letters, digits or . _ - !`,
    );
  }
  return value;
}

/** @internal Namespace prefixes: the one rule for channels, groups, listing and gc. */
export function checkPrefix(value: unknown): string {
  if (typeof value !== "string" || !PREFIX_PATTERN.test(value)) {
    throw new InvalidNameError(
      `prefix ${JSON.stringify(value)} is not valid: use 1 to 100 letters, digits or _ - ! ` +
        '(no ".": it separates the prefix from the channel name)',
    );
  }
  return value;
}

function checkMode(value: unknown): SendMode {
  if (value !== "ack" && value !== "async") {
    throw new InvalidOptionError(`mode must be "ack" or "async", not ${JSON.stringify(value)}`);
  }
  return value;
}

function checkBool(what: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new InvalidOptionError(`${what} must be true or false, not ${JSON.stringify(value)}`);
  }
  return value;
}

function checkInt(what: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${what} must be an integer from ${min} to ${max}, not ${value}`);
  }
  return value;
}

/** @internal Milliseconds option check (Infinity allowed), shared with Namespace. */
export function checkMs(what: string, value: number): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new InvalidOptionError(`${what} must be a number of milliseconds >= 0 (or Infinity), not ${value}`);
  }
  return value;
}

/** Expiry seconds as the u32 milliseconds the core takes (0: never). */
function expiryMs(seconds: number): number {
  if (typeof seconds !== "number" || Number.isNaN(seconds) || seconds < 0) {
    throw new InvalidOptionError(`expiry must be a number of seconds >= 0, not ${seconds}`);
  }
  if (seconds === 0 || seconds === Infinity) return 0;
  return Math.min(MAX_MS, Math.max(1, Math.round(seconds * 1000)));
}

/** @internal Milliseconds as the core's u32 (NO_TIMEOUT: no limit). */
export function abiMs(ms: number): number {
  return ms === Infinity ? NO_TIMEOUT : Math.min(MAX_MS, Math.ceil(ms));
}

function segmentName(prefix: string, name: string): Uint8Array {
  return encoder.encode(`${prefix}.${name}`);
}

/** What a failed open of a channel was trying to do, for its error message. */
interface OpenContext {
  prefix: string;
  name: string;
  /** Bytes the channel would reserve. */
  bytes?: number;
  trust?: Trust;
  timeout?: number;
}

function openError(report: OpenReport, o: OpenContext): FerryError {
  const { prefix, name } = o;
  const where = `/dev/shm/${prefix}.${name}`;
  switch (report.status) {
    case Status.ERR_INVALID_NAME:
      return new InvalidNameError(`channel name '${prefix}.${name}' is not valid`);
    case Status.ERR_INCOMPATIBLE:
      return new IncompatibleChannelError(
        `${where} cannot be used: ${IncompatibleReason[report.detail] ?? "unknown reason"}. ` +
          `Remove it with Channel.unlink("${name}", { prefix: "${prefix}" }) if it is stale.`,
      );
    case Status.ERR_NO_SPACE:
      return new NoSpaceError(
        `/dev/shm cannot hold channel '${name}'${o.bytes ? ` (${o.bytes} bytes)` : ""}: ` +
          "lower capacity or maxMessageSize, or free space in /dev/shm",
      );
    case Status.ERR_PERMISSION:
      return new PermissionDeniedError(`no permission to open ${where}: it belongs to another user or mode`);
    case Status.ERR_FOREIGN:
      return foreignError(report, where, o.trust ?? trustOf({}), "use another channel name or prefix");
    case Status.ERR_BUILDING:
      return new TimeoutError(buildingMessage(`channel '${name}' (${where})`, report.detail, o.timeout ?? 0));
    case Status.ERR_INCOMPLETE:
      return new ChannelNotFoundError(
        `channel '${name}' in namespace '${prefix}' was never finished: the process creating it died ` +
          "while building it. Opening it with create builds it again; gc or rm removes it.",
      );
    case Status.ERR_TOO_MANY_PARTICIPANTS:
      return new TooManyParticipantsError(
        `channel '${name}' already has 64 open handles (participants), the most a channel takes. ` +
          "A handle keeps its seat until close(): close handles when done (`using ch = Channel.open(...)`); " +
          "one that is dropped without close() keeps it until garbage collection or process exit",
      );
    case Status.ERR_NOT_FOUND:
      return new ChannelNotFoundError(`there is no channel '${name}' in namespace '${prefix}'`);
    case Status.ERR_INVALID_ARGUMENT:
      return new InvalidOptionError(`channel '${name}': capacity, maxMessageSize or slots out of range`);
    default:
      return new SystemError(`cannot open ${where}`, report.detail);
  }
}

/**
 * Opens a channel without joining it (stat, recover), never waiting for a builder: the handle, or
 * the stat of a channel that is not built (state "building" or "incomplete").
 */
function observe(name: string, options: StatOptions): Deno.PointerObject | ChannelStat {
  const prefix = checkPrefix(options.prefix ?? DEFAULTS.prefix);
  checkName("channel name", name);
  const trust = trustOf(options);
  const bytes = segmentName(prefix, name);
  const err = reportBuffer();
  const h = core().ferry_open(
    bytes,
    bytes.length,
    1,
    0,
    trust.permissions,
    1,
    OPEN_OBSERVER,
    0,
    trust.owners,
    trust.owners.length,
    err,
  );
  if (h !== null) return h;
  const report = readReport(err);
  if (report.status === Status.ERR_BUILDING) return unbuiltStat(name, prefix, "building", report);
  if (report.status === Status.ERR_INCOMPLETE) return unbuiltStat(name, prefix, "incomplete", report);
  throw openError(report, { prefix, name, trust });
}

function unbuiltStat(name: string, prefix: string, state: ChannelState, report: OpenReport): ChannelStat {
  return {
    name,
    prefix,
    state,
    ...(state === "building" && report.detail > 0 ? { builder: report.detail } : {}),
    capacity: 0,
    maxMessageSize: 0,
    bytes: report.found?.size ?? 0,
    resident: 0,
    depth: 0,
    inFlight: 0,
    counters: { sent: 0, received: 0, released: 0, expired: 0, full: 0, redelivered: 0 },
    createdAt: report.found?.modified ?? new Date(0),
    participants: [],
  };
}

/**
 * @internal Removes a channel whose creator died before finishing it (state "incomplete"), judged
 * and removed under its init lock so that no opener can start rebuilding it in between. Returns
 * true if it was removed, false if it is no longer there or no longer incomplete (built since, or
 * being built by a live process).
 */
export function unlinkIncomplete(name: string, options: StatOptions = {}): boolean {
  const prefix = checkPrefix(options.prefix ?? DEFAULTS.prefix);
  const bytes = segmentName(prefix, checkName("channel name", name));
  const trust = trustOf(options);
  const st = core().ferry_unlink_incomplete(
    bytes,
    bytes.length,
    trust.permissions,
    trust.owners,
    trust.owners.length,
  );
  if (st === Status.OK) return true;
  if ([Status.ERR_NOT_FOUND, Status.BUILT, Status.ERR_BUILDING].includes(st as never)) return false;
  throw openError({ status: st, detail: 0 }, { prefix, name, trust });
}

// The last resort for a channel dropped without close(): closes and unmaps it. It cannot run
// while a view over the mapping is alive and not detached, since every such view keeps its
// channel reachable (see views.ts); so a channel dropped with a view still in use stays mapped
// until that view is garbage too.
const finalizer = new FinalizationRegistry<Deno.PointerObject>((handle) => {
  const lib = core();
  lib.ferry_close(handle);
  lib.ferry_free(handle);
});

/** A slot lent by `loan`: what commit/unloan need, and the ticket to detach its view. */
interface Loan {
  slot: number;
  generation: number;
  len: number;
  view: ViewTicket;
}

const token = Symbol("ferry.channel");

export class Channel<T = unknown>
  implements Releaser, AsyncIterable<Message<T>>, Disposable, AsyncDisposable {
  readonly name: string;
  readonly prefix: string;
  readonly mode: SendMode;
  readonly slots: number;
  readonly capacity: number;
  readonly maxMessageSize: number;
  readonly expiry: number;
  readonly timeout: number;
  readonly autoRelease: boolean;
  readonly zeroCopy: boolean;

  #lib = core();
  #handle: Deno.PointerObject;
  /** The handle's part that the blocking-pool thread may use while parked (ferry_waiter). */
  #waiter: Deno.PointerObject | null = null;
  #codec: Codec<T>;
  #codecOption: CodecOption<T> | undefined;
  #expiryMs: number;
  #sendOut = new Uint32Array(4);
  #meta = new Uint32Array(9);
  #base: Deno.PointerObject | null = null;
  /** Slots lent by `loan`, by the view handed out (weakly: the views registry detaches them). */
  #loans = new WeakMap<Uint8Array, Loan>();
  /** Every loan view and zero-copy message view out now: detached before close() unmaps. */
  #views = new Views(this);
  #batchMeta = new Uint32Array(8 * BATCH_MAX);
  #staging: Staged = {
    bytes: new Uint8Array(64 * 1024),
    lens: new Uint32Array(BATCH_MAX),
    offsets: new Float64Array(BATCH_MAX + 1),
    count: 0,
  };
  #batchCount = new Uint32Array(1);
  #chunk = new Uint8Array(CHUNK_BYTES);
  #chunkUsed = 0;
  #parked: [Promise<number> | null, Promise<number> | null] = [null, null];
  #closed = false;
  #freed = false;

  /** Opens (creating if absent) the channel `name`. Creation settings come from the creator. */
  static open<T = unknown>(name: string, options: OpenOptions<T> = {}): Channel<T> {
    return new Channel<T>(token, name, options);
  }

  /** Removes the channel's segment. Open handles keep working on it; new opens get a new one. */
  static unlink(name: string, options: { prefix?: string } = {}): boolean {
    const prefix = checkPrefix(options.prefix ?? DEFAULTS.prefix);
    const bytes = segmentName(prefix, checkName("channel name", name));
    const st = core().ferry_unlink(bytes, bytes.length);
    if (st === Status.OK) return true;
    if (st === Status.ERR_NOT_FOUND) return false;
    throw openError({ status: st, detail: 0 }, { prefix, name });
  }

  /**
   * Undoes what dead participants of a channel left (held messages redelivered, unfinished
   * writes freed, outcomes nobody will collect dropped), without joining it; every live handle
   * does this on its own within tens of milliseconds. Returns how many it recovered (0 for a
   * channel that is not built: nobody ever took part in it).
   */
  static recover(name: string, options: StatOptions = {}): number {
    const h = observe(name, options);
    if ("state" in h) return 0;
    const lib = core();
    try {
      return lib.ferry_sweep(h);
    } finally {
      lib.ferry_free(h);
    }
  }

  /**
   * Depth, counters and participants of a channel, without joining it. Never waits: a channel
   * another process is building, or whose creator died while building it, has the state
   * "building" or "incomplete" (see ChannelState).
   */
  static stat(name: string, options: StatOptions = {}): ChannelStat {
    const h = observe(name, options);
    if ("state" in h) return h;
    const prefix = options.prefix ?? DEFAULTS.prefix;
    try {
      return readStat(h, name, prefix);
    } finally {
      core().ferry_free(h);
    }
  }

  private constructor(key: symbol, name: string, options: OpenOptions<T>) {
    if (key !== token) throw new TypeError("use Channel.open()");
    this.name = checkName("channel name", name);
    this.prefix = checkPrefix(options.prefix ?? DEFAULTS.prefix);
    const mode = checkMode(options.mode ?? "ack");
    this.mode = mode;
    this.slots = checkInt("slots", options.slots ?? (mode === "ack" ? 1 : 16), 1, 32);
    const patterned = capacityFor(this.name, options.channelCapacity);
    const explicitCapacity = patterned !== undefined || options.capacity !== undefined;
    const capacity = checkInt("capacity", patterned ?? options.capacity ?? DEFAULTS.capacity, 1, 65536);
    const maxMessageSize = checkInt(
      "maxMessageSize",
      options.maxMessageSize ?? DEFAULTS.maxMessageSize,
      0,
      1 << 30,
    );
    this.expiry = options.expiry ?? DEFAULTS.expiry;
    this.#expiryMs = expiryMs(this.expiry);
    this.timeout = checkMs("timeout", options.timeout ?? DEFAULTS.timeout);
    this.autoRelease = checkBool("autoRelease", options.autoRelease, true);
    this.zeroCopy = checkBool("zeroCopy", options.zeroCopy, false);
    const create = checkBool("create", options.create, true);
    if (this.zeroCopy && options.codec !== "raw") {
      throw new InvalidOptionError('zeroCopy needs codec: "raw" (views are bytes in shared memory)');
    }
    const trust = trustOf(options);
    this.#codec = makeCodec(options.codec);
    this.#codecOption = options.codec;

    const bytes = segmentName(this.prefix, this.name);
    const err = reportBuffer();
    const h = this.#lib.ferry_open(
      bytes,
      bytes.length,
      capacity,
      maxMessageSize,
      trust.permissions,
      this.slots,
      create ? 0 : OPEN_EXISTING,
      abiMs(this.timeout),
      trust.owners,
      trust.owners.length,
      err,
    );
    if (h === null) {
      throw openError(readReport(err), {
        prefix: this.prefix,
        name: this.name,
        bytes: capacity * maxMessageSize,
        trust,
        timeout: this.timeout,
      });
    }
    this.#handle = h;
    const info = new Uint32Array(2);
    this.#lib.ferry_info(h, info);
    this.capacity = info[0];
    this.maxMessageSize = info[1];
    // Creation settings are the creator's. One this call asked for explicitly and did not get is
    // an error, not a silent substitute (the caller sized its messages or its queue on it).
    const asked = {
      capacity: explicitCapacity ? capacity : undefined,
      maxMessageSize: options.maxMessageSize,
    };
    for (
      const [what, wanted, got] of [
        ["capacity", asked.capacity, this.capacity],
        ["maxMessageSize", asked.maxMessageSize, this.maxMessageSize],
      ] as const
    ) {
      if (wanted !== undefined && wanted !== got) {
        this.#lib.ferry_close(h);
        this.#lib.ferry_free(h);
        throw new InvalidOptionError(
          `channel '${this.name}' exists with ${what} ${got}, not the ${wanted} this open asked for ` +
            `(${what} is fixed when a channel is created): leave ${what} out to take the channel's, ` +
            `or remove the channel (Channel.unlink) to create it anew`,
        );
      }
    }
    finalizer.register(this, h, this);
  }

  // ------------------------------------------------------------------ sending

  /** Per-call options over the handle's defaults: one place for each. */
  #expiryOf(options?: { expiry?: number }): number {
    return options?.expiry === undefined ? this.#expiryMs : expiryMs(options.expiry);
  }

  #timeoutOf(options?: { timeout?: number }): number {
    return options?.timeout === undefined ? this.timeout : checkMs("timeout", options.timeout);
  }

  #acks(options?: { mode?: SendMode }): boolean {
    const mode = options?.mode;
    return (mode === undefined ? this.mode : checkMode(mode)) === "ack";
  }

  /** Sends in the handle's mode: ack resolves once a receiver released it, async once written. */
  async send(value: T, options?: SendOptions): Promise<void> {
    let bytes = this.#encode(value);
    const ack = this.#acks(options);
    const flags = ack ? SEND_ACK : 0;
    const expiry = this.#expiryOf(options);
    const timeout = this.#timeoutOf(options);
    const out = this.#sendOut;
    const lib = this.#lib;
    // `out` is shared by every send on this handle: read it in the same turn as the call that
    // filled it, never after an await (another send may have filled it since).
    let st = lib.ferry_send(this.#live(), bytes, bytes.length, flags, expiry, out);
    let slot = out[0], generation = out[1];
    let deadline: number | undefined;
    if (st === Status.FULL_CAPACITY || st === Status.FULL_SLOTS) {
      deadline = performance.now() + timeout;
      bytes = bytes.slice(); // the codec may reuse its buffer while we wait
      const attempt = (extra: number) => {
        const s = lib.ferry_send(this.#live(), bytes, bytes.length, flags | extra, expiry, out);
        [slot, generation] = [out[0], out[1]];
        return s;
      };
      const sent = await this.#until(SIDE_SEND, deadline, () => {
        const s = attempt(SEND_RETRY);
        return s === Status.FULL_CAPACITY || s === Status.FULL_SLOTS ? undefined : s;
      });
      st = sent ?? attempt(SEND_COUNT_FULL);
    }
    if (st !== Status.OK) throw this.#sendError(st);
    if (ack) await this.#ackOutcome(slot, generation, deadline ?? performance.now() + timeout, timeout);
  }

  /** As `send`, blocking the thread (for scripts and workers). */
  sendSync(value: T, options?: SendOptions): void {
    const bytes = this.#encode(value);
    const ack = this.#acks(options);
    const flags = ack ? SEND_ACK : 0;
    const expiry = this.#expiryOf(options);
    const timeout = this.#timeoutOf(options);
    const out = this.#sendOut;
    const lib = this.#lib;
    let st = lib.ferry_send(this.#live(), bytes, bytes.length, flags, expiry, out);
    if (st === Status.FULL_CAPACITY || st === Status.FULL_SLOTS) {
      st = lib.ferry_send_wait(this.#live(), bytes, bytes.length, flags, expiry, abiMs(timeout), out);
    }
    if (st !== Status.OK) throw this.#sendError(st);
    if (!ack) return;
    const [slot, generation] = [out[0], out[1]];
    let outcome = lib.ferry_ack_wait(this.#live(), slot, generation, abiMs(timeout));
    if (outcome === Status.TIMEOUT) outcome = lib.ferry_ack_cancel(this.#live(), slot, generation);
    if (outcome !== Status.OK) throw this.#ackError(outcome, timeout);
  }

  /**
   * Sends without waiting for room: throws ChannelFullError when the channel or this sender's
   * slots are full. In ack mode the message is written now and the returned promise settles
   * with its acknowledgement.
   */
  trySend(value: T, options?: SendOptions): void | Promise<void> {
    const bytes = this.#encode(value);
    const ack = this.#acks(options);
    const expiry = this.#expiryOf(options);
    const out = this.#sendOut;
    const st = this.#lib.ferry_send(
      this.#live(),
      bytes,
      bytes.length,
      (ack ? SEND_ACK : 0) | SEND_COUNT_FULL,
      expiry,
      out,
    );
    if (st !== Status.OK) throw this.#sendError(st);
    if (ack) {
      const timeout = this.#timeoutOf(options);
      return this.#ackOutcome(out[0], out[1], performance.now() + timeout, timeout);
    }
  }

  // ------------------------------------------------------------------ batches

  /**
   * Sends `values` in async mode, as many per core call as fit, and returns how many were sent:
   * all of them, or those before the first that found no room. Every value is encoded and
   * checked before any is written, so bad input sends nothing.
   */
  trySendMany(values: readonly T[], options?: { expiry?: number }): number {
    const staged = this.#stage(values, true);
    const expiry = this.#expiryOf(options);
    return this.#sendStaged(staged, 0, expiry, true);
  }

  /** As sendMany, blocking the thread while it waits for room (scripts, workers, benchmarks). */
  sendManySync(values: readonly T[], options?: { expiry?: number; timeout?: number }): void {
    const staged = this.#stage(values, true);
    const expiry = this.#expiryOf(options);
    const timeout = this.#timeoutOf(options);
    let deadline: number | undefined;
    for (let sent = this.#sendStaged(staged, 0, expiry, false); sent < values.length;) {
      deadline ??= performance.now() + timeout;
      const left = deadline - performance.now();
      if (left <= 0 || this.#lib.ferry_send_room_wait(this.#live(), abiMs(left)) === Status.TIMEOUT) {
        this.#lib.ferry_note_full(this.#live());
        throw new TimeoutError(
          `sendManySync on '${this.name}' sent ${sent} of ${values.length} within ${timeout} ms; the channel stayed full`,
        );
      }
      sent = this.#sendStaged(staged, sent, expiry, false);
    }
  }

  /** As trySendMany, waiting for room (up to `timeout`) until every value is sent. */
  async sendMany(values: readonly T[], options?: { expiry?: number; timeout?: number }): Promise<void> {
    const staged = this.#stage(values, false);
    const expiry = this.#expiryOf(options);
    let sent = this.#sendStaged(staged, 0, expiry, false);
    if (sent === values.length) return;
    const timeout = this.#timeoutOf(options);
    const done = await this.#until(SIDE_SEND, performance.now() + timeout, () => {
      sent = this.#sendStaged(staged, sent, expiry, false);
      return sent === values.length ? true : undefined;
    });
    if (done === undefined) {
      this.#lib.ferry_note_full(this.#live());
      throw new TimeoutError(
        `sendMany on '${this.name}' sent ${sent} of ${values.length} within ${timeout} ms; the channel stayed full`,
      );
    }
  }

  /** Encodes every value end to end into one buffer, checking each before anything is sent. */
  #stage(values: readonly T[], reuse: boolean): Staged {
    // Synchronous callers reuse this handle's staging (typed arrays cost about 1 us each to make
    // here); sendMany, which may wait, stages into its own.
    const st: Staged = reuse ? this.#staging : {
      bytes: new Uint8Array(Math.min(64 * 1024, values.length * 256)),
      lens: new Uint32Array(values.length),
      offsets: new Float64Array(values.length + 1),
      count: 0,
    };
    if (st.lens.length < values.length) {
      st.lens = new Uint32Array(values.length);
      st.offsets = new Float64Array(values.length + 1);
    }
    let total = 0;
    for (let i = 0; i < values.length; i++) {
      const part = this.#codec.encode(values[i]);
      if (part.length > this.maxMessageSize) {
        throw new MessageTooLargeError(
          `sendMany: value ${i} is ${part.length} bytes; channel '${this.name}' takes at most ${this.maxMessageSize}`,
        );
      }
      if (total + part.length > st.bytes.length) {
        const grown = new Uint8Array(Math.max(2 * st.bytes.length, total + part.length));
        grown.set(st.bytes.subarray(0, total));
        st.bytes = grown;
      }
      st.bytes.set(part, total); // now, before the codec reuses its buffer for the next value
      st.lens[i] = part.length;
      st.offsets[i] = total;
      total += part.length;
    }
    st.offsets[values.length] = total;
    st.count = values.length;
    return st;
  }

  /** Sends staged messages from index `from` on; returns the index reached. */
  #sendStaged(
    staged: Staged,
    from: number,
    expiry: number,
    countFull: boolean,
  ): number {
    const out = this.#sendOut;
    let at = from;
    while (at < staged.count) {
      const count = Math.min(BATCH_MAX, staged.count - at);
      const start = staged.offsets[at];
      const bytes = staged.bytes.subarray(start, staged.offsets[at + count]);
      const st = this.#lib.ferry_send_batch(
        this.#live(),
        bytes,
        bytes.length,
        staged.lens.subarray(at, at + count),
        count,
        expiry,
        out,
      );
      at += out[0];
      if (st === Status.OK) continue;
      if (st === Status.FULL_CAPACITY || st === Status.FULL_SLOTS) {
        if (countFull) this.#lib.ferry_note_full(this.#live());
        return at;
      }
      throw this.#sendError(st);
    }
    return at;
  }

  /** Up to `max` messages queued now (none: an empty array), in as few core calls as fit. */
  tryRecvMany(max = 64): Message<T>[] {
    checkInt("max", max, 1, BATCH_MAX);
    const got: Message<T>[] = [];
    if (this.zeroCopy) {
      for (
        let m = this.#receiveInPlace();
        m !== undefined;
        m = got.length < max ? this.#receiveInPlace() : undefined
      ) {
        got.push(m);
      }
      return got;
    }
    const auto = this.autoRelease;
    this.#ensureChunk();
    const meta = this.#batchMeta;
    const base = this.#chunkUsed;
    const st = this.#lib.ferry_recv_batch(
      this.#live(),
      this.#chunk,
      this.#chunk.length,
      base,
      max,
      auto ? RECV_AUTO_RELEASE : 0,
      meta,
      meta.length,
      this.#batchCount,
    );
    return this.#batchMessages(st, base, auto);
  }

  /** As recvMany, blocking the thread until at least one message came (TimeoutError). */
  recvManySync(max = 64, options?: RecvOptions): Message<T>[] {
    checkInt("max", max, 1, BATCH_MAX);
    if (this.zeroCopy) {
      const first = this.recvSync(options);
      return max === 1 ? [first] : [first, ...this.tryRecvMany(max - 1)];
    }
    const timeout = this.#timeoutOf(options);
    const auto = this.autoRelease;
    this.#ensureChunk();
    const base = this.#chunkUsed;
    const st = this.#lib.ferry_recv_batch_wait(
      this.#live(),
      this.#chunk,
      this.#chunk.length,
      base,
      max,
      auto ? RECV_AUTO_RELEASE : 0,
      this.#batchMeta,
      this.#batchMeta.length,
      this.#batchCount,
      abiMs(timeout),
    );
    if (st === Status.TIMEOUT) {
      throw new TimeoutError(`nothing arrived on '${this.name}' within ${timeout} ms`);
    }
    return this.#batchMessages(st, base, auto);
  }

  /** Messages of a batch receive that returned `st` into the chunk from `base` on. */
  #batchMessages(st: number, base: number, auto: boolean): Message<T>[] {
    const got: Message<T>[] = [];
    const meta = this.#batchMeta;
    if (st === Status.EMPTY) return got;
    if (st !== Status.OK) throw this.#statusError(st);
    const chunk = this.#chunk;
    const n = this.#batchCount[0];
    for (let i = 0; i < n; i++) {
      const e = i * 8;
      const slot = meta[e], generation = meta[e + 1], len = meta[e + 2], flags = meta[e + 6];
      let buf = chunk, start = base + meta[e + 7];
      if (flags & 4) {
        // Too big for what was left of the chunk: held, read into its own buffer.
        buf = new Uint8Array(Math.max(len, 1));
        start = 0;
        const r = this.#lib.ferry_read(this.#live(), slot, generation, buf, buf.length, 0);
        if (r < 0) throw this.#statusError(r);
        if (auto) this.#lib.ferry_release(this.#live(), slot, generation);
      } else {
        this.#chunkUsed = start + len;
      }
      got.push(
        new Message<T>(
          this.#codec,
          buf,
          start,
          start + len,
          meta[e + 4] + meta[e + 5] * 0x1_0000_0000,
          meta[e + 3],
          (flags & 1) !== 0,
          auto ? null : this,
          slot,
          generation,
        ),
      );
    }
    return got;
  }

  /** At least one message, up to `max`, waiting up to `timeout` ms (TimeoutError). */
  async recvMany(max = 64, options?: RecvOptions): Promise<Message<T>[]> {
    const now = this.tryRecvMany(max);
    if (now.length > 0) return now;
    const timeout = this.#timeoutOf(options);
    const got = await this.#until(SIDE_RECV, performance.now() + timeout, () => {
      const m = this.tryRecvMany(max);
      return m.length > 0 ? m : undefined;
    });
    if (got === undefined) throw new TimeoutError(`nothing arrived on '${this.name}' within ${timeout} ms`);
    return got;
  }

  #encode(value: T): Uint8Array {
    const bytes = this.#codec.encode(value);
    if (bytes.length > this.maxMessageSize) {
      throw new MessageTooLargeError(
        `message is ${bytes.length} bytes; channel '${this.name}' takes at most ${this.maxMessageSize} ` +
          "(maxMessageSize, fixed when the channel was created)",
      );
    }
    return bytes;
  }

  async #ackOutcome(slot: number, generation: number, deadline: number, timeout: number): Promise<void> {
    const lib = this.#lib;
    const poll = () => {
      const s = lib.ferry_ack_status(this.#live(), slot, generation);
      return s === Status.PENDING ? undefined : s;
    };
    let outcome = poll() ?? await this.#until(SIDE_SEND, deadline, poll);
    if (outcome === undefined) outcome = lib.ferry_ack_cancel(this.#live(), slot, generation);
    if (outcome !== Status.OK) throw this.#ackError(outcome, timeout);
  }

  #sendError(st: number): FerryError {
    switch (st) {
      case Status.FULL_CAPACITY:
        return new ChannelFullError(
          `channel '${this.name}' is full (${this.capacity}/${this.capacity} messages held); ` +
            "raise capacity or receive faster",
        );
      case Status.FULL_SLOTS:
        return new ChannelFullError(
          `this sender has ${this.slots} unreleased messages on '${this.name}' (slots: ${this.slots}); ` +
            "wait for receivers to release them or raise slots",
        );
      case Status.ERR_TOO_LARGE:
        return new MessageTooLargeError(`message exceeds maxMessageSize ${this.maxMessageSize}`);
      default:
        return this.#statusError(st);
    }
  }

  #ackError(st: number, timeout: number): FerryError {
    switch (st) {
      case Status.PEER_DIED:
        return new PeerDiedError(
          `the receiver holding this message on '${this.name}' died before releasing it; it may have been processed`,
        );
      case Status.EXPIRED:
        return new ExpiredError(`the message on '${this.name}' expired before any receiver took it`);
      case Status.TIMEOUT:
        return new TimeoutError(
          `no receiver released the message on '${this.name}' within ${timeout} ms (ack mode); ` +
            "if none had taken it, it was withdrawn",
        );
      default:
        return this.#statusError(st);
    }
  }

  #statusError(st: number): FerryError {
    if (st === Status.CLOSED) return this.#closedError();
    if (st === Status.ERR_NOT_HELD) {
      return new FerryError("NotHeld", `that message is no longer held by this handle on '${this.name}'`);
    }
    if (st === Status.ERR_INCOMPATIBLE) {
      return new IncompatibleChannelError(
        `channel '${this.name}' holds a damaged message (its segment was overwritten); it was dropped`,
      );
    }
    return new FerryError("Internal", `unexpected status ${st} from the ferry core on '${this.name}'`);
  }

  // ------------------------------------------------------------------ receiving

  /** The next message, waiting up to `timeout` ms (TimeoutError when nothing came). */
  async recv(options?: RecvOptions): Promise<Message<T>> {
    const auto = this.autoRelease;
    const now = this.#receive(auto);
    if (now !== undefined) return now;
    const timeout = this.#timeoutOf(options);
    const got = await this.#until(SIDE_RECV, performance.now() + timeout, () => this.#receive(auto));
    if (got === undefined) throw new TimeoutError(`nothing arrived on '${this.name}' within ${timeout} ms`);
    return got;
  }

  /** As `recv`, blocking the thread. On a zeroCopy channel it gives views, held until release. */
  recvSync(options?: RecvOptions): Message<T> {
    const timeout = this.#timeoutOf(options);
    if (this.zeroCopy) {
      const st = this.#lib.ferry_recv_wait(
        this.#live(),
        null,
        0,
        0,
        RECV_NO_COPY,
        this.#meta,
        abiMs(timeout),
      );
      if (st === Status.TIMEOUT) {
        throw new TimeoutError(`nothing arrived on '${this.name}' within ${timeout} ms`);
      }
      return this.#inPlace(st);
    }
    const auto = this.autoRelease;
    this.#ensureChunk();
    const st = this.#lib.ferry_recv_wait(
      this.#live(),
      this.#chunk,
      this.#chunk.length,
      this.#chunkUsed,
      auto ? RECV_AUTO_RELEASE : 0,
      this.#meta,
      abiMs(timeout),
    );
    if (st === Status.TIMEOUT) {
      throw new TimeoutError(`nothing arrived on '${this.name}' within ${timeout} ms`);
    }
    return this.#received(st, auto);
  }

  /** The next message if one is queued now, else undefined. */
  tryRecv(): Message<T> | undefined {
    return this.#receive(this.autoRelease);
  }

  /** Messages as they come; with autoRelease each is released after the loop body. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Message<T>, void, undefined> {
    while (!this.#closed) {
      let msg: Message<T> | undefined;
      try {
        msg = this.#receive(false) ?? await this.#until(SIDE_RECV, Infinity, () => this.#receive(false));
      } catch (e) {
        if (e instanceof ChannelClosedError) return;
        throw e;
      }
      if (msg === undefined) return;
      try {
        yield msg;
      } finally {
        if (this.autoRelease && !this.#closed) msg.release();
      }
    }
  }

  #ensureChunk(): void {
    if (this.#chunk.length - this.#chunkUsed < CHUNK_MIN_FREE) {
      this.#chunk = new Uint8Array(CHUNK_BYTES);
      this.#chunkUsed = 0;
    }
  }

  #receive(auto: boolean): Message<T> | undefined {
    if (this.zeroCopy) return this.#receiveInPlace();
    this.#ensureChunk();
    const st = this.#lib.ferry_recv(
      this.#live(),
      this.#chunk,
      this.#chunk.length,
      this.#chunkUsed,
      auto ? RECV_AUTO_RELEASE : 0,
      this.#meta,
    );
    return st === Status.EMPTY ? undefined : this.#received(st, auto);
  }

  /** Builds the Message for a receive that returned `st` (OK or NEED_BUFFER). */
  #received(st: number, auto: boolean): Message<T> {
    const meta = this.#meta;
    const slot = meta[0], generation = meta[1], len = meta[2];
    let buf = this.#chunk;
    let start = this.#chunkUsed;
    if (st === Status.NEED_BUFFER) {
      if (len <= CHUNK_BYTES / 4) {
        this.#chunk = buf = new Uint8Array(CHUNK_BYTES);
        start = 0;
      } else {
        buf = new Uint8Array(len);
        start = 0;
      }
      const n = this.#lib.ferry_read(this.#live(), slot, generation, buf, buf.length, start);
      if (n < 0) throw this.#statusError(n);
      if (auto) this.#lib.ferry_release(this.#live(), slot, generation);
    } else if (st !== Status.OK) {
      throw this.#statusError(st);
    }
    if (buf === this.#chunk) this.#chunkUsed = start + len;
    return new Message<T>(
      this.#codec,
      buf,
      start,
      start + len,
      meta[4] + meta[5] * 0x1_0000_0000,
      meta[3],
      (meta[6] & 1) !== 0,
      auto ? null : this,
      slot,
      generation,
    );
  }

  #receiveInPlace(): Message<T> | undefined {
    const st = this.#lib.ferry_recv(this.#live(), null, 0, 0, RECV_NO_COPY, this.#meta);
    return st === Status.EMPTY ? undefined : this.#inPlace(st);
  }

  /** The zero-copy Message for a RECV_NO_COPY receive that returned `st`: held, its view tracked. */
  #inPlace(st: number): Message<T> {
    if (st !== Status.OK) throw this.#statusError(st);
    const meta = this.#meta;
    const len = meta[2];
    const shared = this.#view(meta[7] + meta[8] * 0x1_0000_0000, len);
    return new Message<T>(
      this.#codec,
      new Uint8Array(shared),
      0,
      len,
      meta[4] + meta[5] * 0x1_0000_0000,
      meta[3],
      (meta[6] & 1) !== 0,
      this,
      meta[0],
      meta[1],
      this.#views.track(shared),
    );
  }

  /**
   * A fresh ArrayBuffer over `len` bytes of the segment: detaching it revokes every view of it.
   * The caller tracks it in `#views` in the same turn, before any code can keep it.
   */
  #view(offset: number, len: number): ArrayBuffer {
    this.#base ??= this.#lib.ferry_base(this.#live());
    if (len === 0) return new ArrayBuffer(0);
    return Deno.UnsafePointerView.getArrayBuffer(this.#base!, len, offset);
  }

  // ------------------------------------------------------------------ zero-copy sending

  /**
   * Lends a slot of `size` bytes in shared memory (raw codec): write the message into the
   * returned view, then `commit` it (or `unloan` it). Counts against `slots` and `capacity` like
   * a send; throws ChannelFullError when there is no room. The view is detached (reads length 0)
   * by commit, unloan or close, whichever comes first.
   */
  loan(size: number): Uint8Array {
    if (!this.#isRaw()) {
      throw new InvalidOptionError('loan needs codec: "raw"');
    }
    checkInt("loan size", size, 0, this.maxMessageSize);
    const out = this.#sendOut;
    const st = this.#lib.ferry_loan(this.#live(), size, out);
    if (st !== Status.OK) throw this.#sendError(st);
    const slot = out[0], generation = out[1];
    const shared = this.#view(out[2] + out[3] * 0x1_0000_0000, size);
    const view = new Uint8Array(shared);
    this.#loans.set(view, { slot, generation, len: size, view: this.#views.track(shared) });
    return view;
  }

  /**
   * Sends a loaned view (its first `length` bytes, default all). The view is detached: the
   * bytes now belong to the receiver. In ack mode the returned promise settles with the ack.
   */
  commit(view: Uint8Array, options?: SendOptions & { length?: number }): void | Promise<void> {
    const loan = this.#takeLoan(view);
    const len = options?.length ?? loan.len;
    checkInt("commit length", len, 0, loan.len);
    const ack = this.#acks(options);
    const expiry = this.#expiryOf(options);
    const out = this.#sendOut;
    const st = this.#lib.ferry_commit(
      this.#live(),
      loan.slot,
      loan.generation,
      loan.len,
      len,
      ack ? SEND_ACK : 0,
      expiry,
      out,
    );
    if (st !== Status.OK) throw this.#sendError(st);
    if (ack) {
      const timeout = this.#timeoutOf(options);
      return this.#ackOutcome(out[0], out[1], performance.now() + timeout, timeout);
    }
  }

  /** Gives a loaned slot back without sending it. */
  unloan(view: Uint8Array): void {
    const loan = this.#takeLoan(view);
    const st = this.#lib.ferry_unloan(this.#live(), loan.slot, loan.generation);
    if (st !== Status.OK) throw this.#statusError(st);
  }

  #takeLoan(view: Uint8Array): Loan {
    if (this.#closed) throw this.#closedError(); // close() took every loan back
    const loan = this.#loans.get(view);
    if (loan === undefined) {
      throw new FerryError(
        "NotLoaned",
        `that view was not lent by loan() on '${this.name}', or was used already`,
      );
    }
    this.#loans.delete(view);
    this.#views.detach(loan.view); // the slot is no longer the caller's to write
    return loan;
  }

  #isRaw(): boolean {
    return this.#codecOption === "raw";
  }

  /** @internal Called by Message.release(). */
  releaseHeld(slot: number, generation: number, view: ViewTicket | null): void {
    if (this.#closed) return; // closing detached the views and handed the messages back
    if (view !== null) this.#views.detach(view); // before the slot can be reused
    const st = this.#lib.ferry_release(this.#live(), slot, generation);
    if (st !== Status.OK) throw this.#statusError(st);
  }

  // ------------------------------------------------------------------ waiting

  /**
   * Calls `attempt` until it returns a value or `deadline` (performance.now() ms) passes
   * (undefined). Spins first, then parks in one nonblocking futex wait shared by every waiter
   * on this handle and side.
   */
  async #until<R>(side: number, deadline: number, attempt: () => R | undefined): Promise<R | undefined> {
    for (let i = 0; i < SPIN_ATTEMPTS; i++) {
      const r = attempt();
      if (r !== undefined) return r;
    }
    const lib = this.#lib;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      const parked = this.#parked[side];
      if (parked !== null) {
        await parked;
      } else {
        const h = this.#live();
        const epoch = lib.ferry_park_prepare(h, side);
        const r = attempt();
        if (r !== undefined) {
          lib.ferry_park_cancel(h, side);
          return r;
        }
        // The wait runs on another thread: it gets the handle's Sync part, never the handle.
        this.#waiter ??= lib.ferry_waiter(h);
        const wait = lib.ferry_park_wait(this.#waiter, side, epoch, Math.min(Math.ceil(left), PARK_SLICE_MS));
        this.#parked[side] = wait;
        try {
          await wait;
        } finally {
          this.#parked[side] = null;
          this.#freeWhenIdle();
        }
      }
      const r = attempt(); // throws ChannelClosedError once the handle is closed
      if (r !== undefined) return r;
    }
  }

  // ------------------------------------------------------------------ lifecycle

  #live(): Deno.PointerObject {
    if (this.#closed) throw this.#closedError();
    return this.#handle;
  }

  #closedError(): ChannelClosedError {
    return new ChannelClosedError(`channel '${this.name}' is closed`);
  }

  /** Depth, counters and participants now. */
  stat(): ChannelStat {
    return readStat(this.#live(), this.name, this.prefix);
  }

  /**
   * Leaves the channel. Messages this handle holds unreleased are redelivered to others, marked
   * `redelivered` (ack-mode ones too: their senders go on waiting for the next receiver's
   * release); messages it sent stay queued; loaned slots are given back. Every loan view and
   * zero-copy message view is detached first (each reads length 0 from then on). Pending waits on
   * this handle reject with ChannelClosedError.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    finalizer.unregister(this);
    // Views first: ferry_close frees loaned slots and hands held messages to others, and
    // ferry_free unmaps; a view left attached would then write another message or fault.
    this.#views.detachAll();
    this.#lib.ferry_close(this.#handle);
    this.#freeWhenIdle();
  }

  /** The native handle is freed only when no parked wait still uses it. */
  #freeWhenIdle(): void {
    if (this.#closed && !this.#freed && this.#parked[0] === null && this.#parked[1] === null) {
      this.#freed = true;
      this.#lib.ferry_free(this.#handle);
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

function readStat(h: Deno.PointerObject, name: string, prefix: string): ChannelStat {
  const lib = core();
  const s = new BigUint64Array(14);
  lib.ferry_stat(h, s);
  const n = (i: number) => Number(s[i]);
  const rows = new Uint32Array(4 * 64);
  const count = lib.ferry_participants(h, rows, 64);
  const roles = ["idle", "sender", "receiver", "both"] as const;
  const participants = [];
  for (let i = 0; i < count; i++) {
    const [pid, alive, inFlight, role] = rows.subarray(4 * i, 4 * i + 4);
    participants.push({ pid, alive: alive === 1, inFlight, role: roles[role & 3] });
  }
  return {
    name,
    prefix,
    state: "ready",
    capacity: n(0),
    maxMessageSize: n(1),
    bytes: n(2),
    resident: n(13),
    depth: n(3),
    inFlight: n(4),
    counters: { sent: n(5), received: n(6), released: n(7), expired: n(8), full: n(9), redelivered: n(10) },
    createdAt: new Date(n(11)),
    participants,
  };
}
