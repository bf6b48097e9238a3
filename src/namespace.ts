// Namespace: the channel groups of one prefix. Memberships live in the namespace's group table, a
// shared-memory segment of its own (`/dev/shm/<prefix>~groups`, see core/src/group.rs), so every
// process of the namespace sees the same groups; a membership lasts until its deadline or for as
// long as the process that added it (its lifetime). sendGroup fans a value out to every member
// channel through channel handles it opens (never creating a channel) and closes once unused.

import { core } from "../ffi/lib.ts";
import { IncompatibleReason, Status } from "../ffi/status.ts";
import { Channel } from "./channel/channel.ts";
import {
  abiMs,
  checkMs,
  checkName,
  checkPrefix,
  DEFAULTS,
  type OpenOptions,
  type SendMode,
} from "./channel/options.ts";
import {
  ChannelFullError,
  ChannelNotFoundError,
  FerryError,
  IncompatibleChannelError,
  InvalidNameError,
  InvalidOptionError,
  NoSpaceError,
  PermissionDeniedError,
  SystemError,
  TimeoutError,
} from "./errors.ts";
import {
  buildingMessage,
  foreignError,
  type OpenReport,
  readReport,
  reportBuffer,
  type Trust,
  trustOf,
} from "./open.ts";

/**
 * Outcomes and the one error of the group calls (core/src/group.rs). They live here rather than in
 * ffi/status.ts only because that file is shared; the core keeps them outside status.rs's range.
 */
const GroupStatus = { ADDED: 0, REFRESHED: 1, ERR_TABLE_FULL: -100 } as const;

/** The same rule as channel names: 1 to 100 of letters, digits and `. _ - !`. */
const DEFAULT_PREFIX = "ferry";
/** 1 MiB: 4095 memberships (256 bytes each, after a 256-byte header). */
const DEFAULT_GROUP_MEMORY = 1 << 20;
const MIN_GROUP_MEMORY = 512;
const MAX_GROUP_MEMORY = 256 << 20;
const DEFAULT_GROUP_EXPIRY = 86_400;
/**
 * Seconds a member handle may stay unused. Opening one costs 35-50 us (measured: open + close of
 * an existing channel, against 0.4-2 us for a send), so handles are kept between sendGroup calls,
 * but each holds one of its channel's 64 participant seats, so not for long.
 */
const DEFAULT_MEMBER_IDLE = 10;
/** `lifetime` as ferry_group_add takes it. */
const LIFETIME = { expiry: 0, process: 1 } as const;
/** Times a member is opened again when its channel is replaced while it is being opened. */
const OPEN_ATTEMPTS = 3;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Every membership slot of the group table holds a live membership. */
export class GroupTableFullError extends FerryError {
  constructor(message: string) {
    super("GroupTableFull", message);
  }
}

export interface NamespaceOptions<T = unknown> extends OpenOptions<T> {
  /**
   * Bytes of the namespace's group table, if this call creates it: (groupMemory - 256) / 256
   * memberships. Fixed at creation; later connects read it back. Default 1 MiB (4095 memberships).
   */
  groupMemory?: number;
  /** Seconds a membership lasts unless it is added again (0 or Infinity: forever). Default 86400. */
  groupExpiry?: number;
  /**
   * Seconds a channel handle that sendGroup opened on a member may stay unused before it is closed
   * (each holds one of that channel's 64 participant seats). 0: closed after each sendGroup;
   * Infinity: kept until the channel leaves the group or the namespace closes. Default 10.
   */
  memberIdle?: number;
}

/**
 * How long a membership lasts:
 * - `"expiry"`: `expiry` seconds (the namespace's `groupExpiry` by default), whatever becomes of
 *   the process that added it; adding it again moves its deadline.
 * - `"process"`: while this Namespace is open in this process. It ends at `close()` (or `using`'s
 *   end) and when the process dies in any way, SIGKILL included: the kernel drops the lock that
 *   stands for it, and the next process to look at the group frees it. Until `close()`, the
 *   Namespace is kept from garbage collection.
 */
export type GroupLifetime = "expiry" | "process";

export interface GroupAddOptions {
  /** How long the membership lasts (see GroupLifetime). Default "expiry". */
  lifetime?: GroupLifetime;
  /**
   * Seconds this membership lasts (0 or Infinity: forever). Default: the namespace's groupExpiry.
   * Only for lifetime "expiry".
   */
  expiry?: number;
}

/**
 * What sendGroup does with a member that has no room (its channel holds `capacity` messages, or
 * this namespace's handle on it has `slots` messages unreleased): `"wait"` for room up to
 * `timeout`, then skip it; `"skip"` at once.
 */
export type GroupFullPolicy = "wait" | "skip";

export interface GroupSendOptions {
  /** "ack": resolve once every member released its copy; "async": once every copy is written. */
  mode?: SendMode;
  /**
   * Milliseconds to wait: for room in a full member (onFull "wait"), then in ack mode for the
   * release. Default: the channel timeout. Giving one in async mode makes onFull default to "wait".
   */
  timeout?: number;
  /** Seconds before an unreceived copy is dropped. Default: the channel expiry. */
  expiry?: number;
  /**
   * A full member: "wait" for room up to `timeout`, or "skip" it at once. Default "wait" in ack
   * mode or when a `timeout` is given, else "skip" (async fire-and-forget never waits unless asked).
   */
  onFull?: GroupFullPolicy;
}

export interface GroupSendResult {
  group: string;
  /** Members that got the value: written (async mode) or released by a receiver (ack mode). */
  sent: string[];
  /**
   * Members that were full: the channel held `capacity` messages, or this namespace already had
   * `slots` unreleased messages on it. Skipped at once (onFull "skip") or after waiting `timeout`
   * for room (onFull "wait"). Counted in the namespace (groupStat().counters.skipped) and the
   * channel.
   */
  skipped: string[];
  /**
   * Members whose copy failed otherwise: ChannelNotFoundError for a member whose channel does not
   * exist (never created; counted in groupStat().counters.missing), PeerDiedError, ExpiredError,
   * TimeoutError, another open error...
   */
  failed: { channel: string; error: Error }[];
}

export interface GroupStat {
  prefix: string;
  /** Memberships the table can hold. */
  capacity: number;
  /** Bytes the table reserves in /dev/shm. */
  bytes: number;
  /** Memberships now (unexpired). */
  live: number;
  counters: {
    added: number;
    refreshed: number;
    discarded: number;
    expired: number;
    /** Entries freed because the process adding them died mid-add. */
    reclaimed: number;
    /** Duplicate entries merged (two processes adding one membership at the same instant). */
    merged: number;
    /** sendGroup calls. */
    fanouts: number;
    /** Members those calls skipped because they were full. */
    skipped: number;
    /** Members those calls found without a channel (reported as failed). */
    missing: number;
    /** Process memberships ended because their process died (found by a later scan). */
    died: number;
    /** Process memberships ended by close() of the Namespace that added them. */
    closed: number;
  };
  createdAt: Date;
}

/** Expiry seconds as the milliseconds the core takes (0: never). */
function expiryMs(what: string, seconds: number): number {
  if (typeof seconds !== "number" || Number.isNaN(seconds) || seconds < 0) {
    throw new InvalidOptionError(`${what} must be a number of seconds >= 0 (or Infinity), not ${seconds}`);
  }
  if (seconds === 0 || seconds === Infinity) return 0;
  return Math.min(Number.MAX_SAFE_INTEGER, Math.max(1, Math.round(seconds * 1000)));
}

function tableError(report: OpenReport, prefix: string, trust?: Trust, timeout?: number): FerryError {
  const where = `/dev/shm/${prefix}~groups`;
  switch (report.status) {
    case Status.ERR_INVALID_NAME:
      return new InvalidNameError(`prefix '${prefix}' is not valid`);
    case Status.ERR_INCOMPATIBLE:
      return new IncompatibleChannelError(
        `${where} is not a ferry group table this version can use: ` +
          `${IncompatibleReason[report.detail] ?? "unknown reason"}. ` +
          `Remove it with Namespace.unlinkGroups({ prefix: "${prefix}" }) if it is stale.`,
      );
    case Status.ERR_NO_SPACE:
      return new NoSpaceError(
        `/dev/shm cannot hold the group table ${where}: lower groupMemory or free space`,
      );
    case Status.ERR_PERMISSION:
      return new PermissionDeniedError(`no permission to open ${where}: it belongs to another user or mode`);
    case Status.ERR_FOREIGN:
      return foreignError(report, where, trust ?? trustOf({}), "use another prefix");
    case Status.ERR_BUILDING:
      return new TimeoutError(buildingMessage(`the group table ${where}`, report.detail, timeout ?? 0));
    case Status.ERR_INVALID_ARGUMENT:
      return new InvalidOptionError(
        `groupMemory must be from ${MIN_GROUP_MEMORY} to ${MAX_GROUP_MEMORY} bytes`,
      );
    default:
      return new SystemError(`cannot open ${where}`, report.detail);
  }
}

const finalizer = new FinalizationRegistry<Deno.PointerObject>((table) => core().ferry_group_free(table));
/**
 * Namespaces holding process memberships: kept reachable until close(), so that garbage collection
 * (whose finalizer frees the table, ending them) cannot end a membership the process still wants.
 */
const holding = new Set<object>();

/** A channel handle sendGroup opened on a member, kept while it is used. */
interface MemberHandle<T> {
  channel: Channel<T>;
  /** The channel's identity (inode) when opened: another one under the name means it was replaced. */
  id: bigint;
  /** The groups it was sent to through: once it is a member of none of them, it is closed. */
  groups: Set<string>;
  /** performance.now() of its last use. */
  lastUsed: number;
  /** Sends in progress: it is closed only once they settle. */
  pending: number;
  /** To be closed when `pending` reaches 0. */
  retiring: boolean;
}

const token = Symbol("ferry.namespace");

/**
 * The groups of one namespace, and a sender to them.
 *
 * ```ts
 * using ns = Namespace.connect({ mode: "async" });
 * ns.groupAdd("audit", "audit.disk");
 * ns.groupAdd("audit", "audit.mail");
 * const { sent, skipped } = await ns.sendGroup("audit", { event: "login" });
 * ```
 */
export class Namespace<T = unknown> implements Disposable, AsyncDisposable {
  readonly prefix: string;
  /** Default seconds a membership lasts (0: forever). */
  readonly groupExpiry: number;
  /** Memberships the table can hold (fixed by whoever created it). */
  readonly groupCapacity: number;
  /** Bytes the table reserves (fixed by whoever created it). */
  readonly groupMemory: number;

  #lib = core();
  #table: Deno.PointerObject;
  #expiryMs: number;
  #channelOptions: OpenOptions<T>;
  #memberIdleMs: number;
  #prefixBytes: Uint8Array;
  #handles = new Map<string, MemberHandle<T>>();
  /** Handles out of use with sends still in progress: closed when those settle, or by close(). */
  #retiring = new Set<MemberHandle<T>>();
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #membersOut = new Uint8Array(16 * 1024);
  #info = new Uint32Array(2);
  #closed = false;

  /**
   * Opens the group table of `options.prefix` (creating it, `groupMemory` bytes, if absent). The
   * other options are the defaults of the channels sendGroup opens.
   */
  static connect<T = unknown>(options: NamespaceOptions<T> = {}): Namespace<T> {
    return new Namespace<T>(token, options);
  }

  /**
   * Removes the namespace's group table: every membership of every group is gone. Namespaces
   * connected now keep using the old table; later connects get a new one (with their groupMemory).
   * Returns false if there was none. Channels are not touched.
   */
  static unlinkGroups(options: { prefix?: string } = {}): boolean {
    const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
    const bytes = encoder.encode(prefix);
    const st = core().ferry_group_unlink(bytes, bytes.length);
    if (st === Status.OK) return true;
    if (st === Status.ERR_NOT_FOUND) return false;
    throw tableError({ status: st, detail: 0 }, prefix);
  }

  private constructor(key: symbol, options: NamespaceOptions<T>) {
    if (key !== token) throw new TypeError("use Namespace.connect()");
    const { groupMemory, groupExpiry, memberIdle, ...channelOptions } = options;
    this.prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
    const mode = channelOptions.mode ?? "ack";
    if (mode !== "ack" && mode !== "async") {
      throw new InvalidOptionError(`mode must be "ack" or "async", not ${mode}`);
    }
    this.#channelOptions = { ...channelOptions, prefix: this.prefix };
    this.groupExpiry = groupExpiry ?? DEFAULT_GROUP_EXPIRY;
    this.#expiryMs = expiryMs("groupExpiry", this.groupExpiry);
    const idle = memberIdle ?? DEFAULT_MEMBER_IDLE;
    if (typeof idle !== "number" || Number.isNaN(idle) || idle < 0) {
      throw new InvalidOptionError(`memberIdle must be a number of seconds >= 0 (or Infinity), not ${idle}`);
    }
    this.#memberIdleMs = idle * 1000;
    const memory = groupMemory ?? DEFAULT_GROUP_MEMORY;
    if (!Number.isInteger(memory) || memory < MIN_GROUP_MEMORY || memory > MAX_GROUP_MEMORY) {
      throw new InvalidOptionError(
        `groupMemory must be an integer from ${MIN_GROUP_MEMORY} to ${MAX_GROUP_MEMORY} bytes, not ${memory}`,
      );
    }
    const trust = trustOf(options);
    // The channels' timeout also bounds the wait for a table another process is building.
    const timeout = checkMs("timeout", options.timeout ?? DEFAULTS.timeout);

    const bytes = encoder.encode(this.prefix);
    this.#prefixBytes = bytes;
    const err = reportBuffer();
    const table = this.#lib.ferry_group_open(
      bytes,
      bytes.length,
      memory,
      trust.permissions,
      abiMs(timeout),
      trust.owners,
      trust.owners.length,
      err,
    );
    if (table === null) throw tableError(readReport(err), this.prefix, trust, timeout);
    this.#table = table;
    const info = new Uint32Array(2);
    this.#lib.ferry_group_info(table, info);
    this.groupCapacity = info[0];
    this.groupMemory = info[1];
    finalizer.register(this, table, this);
  }

  /**
   * Makes `channel` a member of `group`, for `expiry` seconds (default groupExpiry) or, with
   * `lifetime: "process"`, while this Namespace is open in this process (see GroupLifetime).
   * Returns true if it was not a member. Adding an expiring member again moves its deadline to the
   * later of the two; a pair can hold both kinds at once, and stays a member while either lasts.
   * Throws GroupTableFullError when the table holds groupCapacity memberships.
   *
   * ```ts
   * // a worker's inbox is in the group exactly as long as the worker runs
   * using ns = Namespace.connect();
   * ns.groupAdd("jobs.broadcast", `inbox.${Deno.pid}`, { lifetime: "process" });
   * ```
   */
  groupAdd(group: string, channel: string, options: GroupAddOptions = {}): boolean {
    const g = encoder.encode(checkName("group name", group));
    const c = encoder.encode(checkName("channel name", channel));
    const lifetime = options.lifetime ?? "expiry";
    if (lifetime !== "expiry" && lifetime !== "process") {
      throw new InvalidOptionError(`lifetime must be "expiry" or "process", not ${lifetime}`);
    }
    if (lifetime === "process" && options.expiry !== undefined) {
      throw new InvalidOptionError(
        'expiry is for lifetime "expiry"; a "process" membership lasts while its process has this Namespace open',
      );
    }
    const expiry = options.expiry === undefined ? this.#expiryMs : expiryMs("expiry", options.expiry);
    const table = this.#live();
    if (lifetime === "process") holding.add(this);
    const st = this.#lib.ferry_group_add(table, g, g.length, c, c.length, BigInt(expiry), LIFETIME[lifetime]);
    if (st === GroupStatus.ADDED) return true;
    if (st === GroupStatus.REFRESHED) return false;
    if (st === GroupStatus.ERR_TABLE_FULL) {
      throw new GroupTableFullError(
        `the group table of namespace '${this.prefix}' is full (${this.groupCapacity} memberships); ` +
          "discard memberships, shorten groupExpiry, or raise groupMemory (fixed when the table was " +
          `created: Namespace.unlinkGroups({ prefix: "${this.prefix}" }) lets the next connect make a new one)`,
      );
    }
    throw this.#statusError(st);
  }

  /** Ends `channel`'s membership of `group`; returns whether it was a member. */
  groupDiscard(group: string, channel: string): boolean {
    const g = encoder.encode(checkName("group name", group));
    const c = encoder.encode(checkName("channel name", channel));
    const st = this.#lib.ferry_group_discard(this.#live(), g, g.length, c, c.length);
    if (st < 0) throw this.#statusError(st);
    return st === 1;
  }

  /** The member channels of `group` now, sorted (empty for a group nobody added to). */
  groupMembers(group: string): string[] {
    return this.#readMembers(group);
  }

  /**
   * The members of `group`; their [len][name] records stay in #membersOut (info: count, bytes)
   * until the next call.
   */
  #readMembers(group: string): string[] {
    const g = encoder.encode(checkName("group name", group));
    const info = this.#info;
    const read = () => {
      const out = this.#membersOut;
      return this.#lib.ferry_group_members(this.#live(), g, g.length, out, out.length, info);
    };
    let st = read();
    while (st === Status.NEED_BUFFER) {
      this.#membersOut = new Uint8Array(Math.max(info[1], this.#membersOut.length * 2));
      st = read();
    }
    if (st !== Status.OK) throw this.#statusError(st);
    const out = this.#membersOut;
    const names: string[] = [];
    for (let at = 0, i = 0; i < info[0]; i++) {
      const len = out[at];
      names.push(decoder.decode(out.subarray(at + 1, at + 1 + len)));
      at += 1 + len;
    }
    return names;
  }

  /**
   * Sends `value` to every member channel of `group`, in parallel. Failures are reported per
   * member, never thrown: a full member is skipped and counted (at once, or after waiting up to
   * `timeout` for room: see `onFull`), a member whose channel does not exist fails with
   * ChannelNotFoundError (it is never created). Async mode resolves once every copy is written;
   * ack mode once every member released its copy (or failed). An empty group resolves with empty
   * lists.
   *
   * Each member gets at most `slots` (of the namespace's channel options: 16 in async mode, 1 in
   * ack mode) copies written and not yet released; past that the member is full for this
   * namespace, even with room in its channel.
   *
   * ```ts
   * // every subscriber gets every event: wait up to 2 s for a slow one instead of skipping it
   * const { skipped } = await ns.sendGroup("events", event, { mode: "async", timeout: 2000 });
   * ```
   */
  async sendGroup(group: string, value: T, options: GroupSendOptions = {}): Promise<GroupSendResult> {
    const mode = options.mode ?? this.#channelOptions.mode ?? "ack";
    if (mode !== "ack" && mode !== "async") {
      throw new InvalidOptionError(`mode must be "ack" or "async", not ${mode}`);
    }
    // Ack sends wait by default like any ack send (a handle has one ack slot per channel by
    // default, so back-to-back sendGroups queue rather than skip); async ones when given a timeout.
    const onFull = options.onFull ?? (mode === "ack" || options.timeout !== undefined ? "wait" : "skip");
    if (onFull !== "wait" && onFull !== "skip") {
      throw new InvalidOptionError(`onFull must be "wait" or "skip", not ${onFull}`);
    }
    const members = this.#readMembers(group);
    const ids = this.#memberIds(this.#membersOut, this.#info[1], members.length);
    this.#forgetFormer(group, new Set(members));
    const sendOptions = { mode, timeout: options.timeout, expiry: options.expiry };
    const result: GroupSendResult = { group, sent: [], skipped: [], failed: [] };
    let missing = 0;
    const settle = (channel: string, error?: unknown) => {
      if (error === undefined) result.sent.push(channel);
      else if (error instanceof ChannelFullError) result.skipped.push(channel);
      else {
        if (error instanceof ChannelNotFoundError) missing++;
        result.failed.push({ channel, error: error instanceof Error ? error : new Error(String(error)) });
      }
    };
    const send = (handle: MemberHandle<T>): void | Promise<void> => {
      const channel = handle.channel;
      if (onFull === "skip") return channel.trySend(value, sendOptions); // throws ChannelFullError
      return channel.send(value, sendOptions); // waits up to timeout, then ChannelFullError
    };
    // Every member is opened and its send started in this turn; only the waits run in parallel.
    const waits: Promise<void>[] = [];
    members.forEach((channel, i) => {
      let handle: MemberHandle<T> | undefined;
      let outcome: void | Promise<void>;
      try {
        handle = this.#member(channel, ids[i], group);
        handle.pending++;
        outcome = send(handle);
      } catch (error) {
        if (handle !== undefined) this.#done(handle);
        return settle(channel, error);
      }
      if (outcome === undefined) {
        this.#done(handle);
        return settle(channel);
      }
      waits.push(
        outcome.then(() => settle(channel), (error) => settle(channel, error ?? "rejected"))
          .finally(() => this.#done(handle)),
      );
    });
    if (waits.length > 0) {
      await Promise.all(waits);
      // Reported in member order whatever order the waits ended in.
      const order = new Map(members.map((m, i) => [m, i]));
      const byMember = (a: string, b: string) => order.get(a)! - order.get(b)!;
      result.sent.sort(byMember);
      result.skipped.sort(byMember);
      result.failed.sort((a, b) => byMember(a.channel, b.channel));
    }
    if (!this.#closed) this.#lib.ferry_group_note_fanout(this.#table, result.skipped.length, missing);
    this.#scheduleIdleClose();
    return result;
  }

  /** Size, memberships now and counters of the namespace's group table. */
  groupStat(): GroupStat {
    const s = new BigUint64Array(15);
    this.#lib.ferry_group_stat(this.#live(), s);
    const n = (i: number) => Number(s[i]);
    return {
      prefix: this.prefix,
      capacity: n(0),
      bytes: n(1),
      live: n(2),
      counters: {
        added: n(3),
        refreshed: n(4),
        discarded: n(5),
        expired: n(6),
        reclaimed: n(7),
        merged: n(8),
        fanouts: n(9),
        skipped: n(10),
        missing: n(12),
        died: n(13),
        closed: n(14),
      },
      createdAt: new Date(n(11)),
    };
  }

  /**
   * The identities of the `count` channels named in `records` (0n: absent). One core call: a
   * stat of each channel's segment, about a microsecond each.
   */
  #memberIds(records: Uint8Array, bytes: number, count: number): BigUint64Array {
    const ids = new BigUint64Array(count);
    if (count === 0) return ids;
    const p = this.#prefixBytes;
    const st = this.#lib.ferry_group_channel_ids(p, p.length, records, bytes, count, ids);
    if (st !== Status.OK) throw this.#statusError(st);
    return ids;
  }

  #memberId(name: string): bigint {
    const c = encoder.encode(name);
    const record = new Uint8Array(1 + c.length);
    record[0] = c.length;
    record.set(c, 1);
    return this.#memberIds(record, record.length, 1)[0];
  }

  /**
   * A handle on member `name` whose channel has identity `id` now: the kept one if it is still on
   * that channel, else a new one, opened with the namespace's channel options and never creating.
   * Throws ChannelNotFoundError for a channel that does not exist.
   */
  #member(name: string, id: bigint, group: string): MemberHandle<T> {
    const kept = this.#handles.get(name);
    if (kept !== undefined && kept.id !== id) this.#retire(kept); // removed, maybe created again
    let handle = this.#handles.get(name);
    if (handle === undefined) {
      this.#live();
      for (let attempt = 1;; attempt++) {
        if (id === 0n) {
          throw new ChannelNotFoundError(
            `group member '${name}' has no channel in namespace '${this.prefix}' (sendGroup never creates one)`,
          );
        }
        const channel = Channel.open<T>(name, { ...this.#channelOptions, create: false });
        // The identity before and after the open agree: the handle is on that channel, not on one
        // removed (or created) in between.
        const after = this.#memberId(name);
        if (after === id || attempt === OPEN_ATTEMPTS) {
          handle = { channel, id: after, groups: new Set(), lastUsed: 0, pending: 0, retiring: false };
          break;
        }
        channel.close();
        id = after;
      }
      this.#handles.set(name, handle);
    }
    handle.groups.add(group);
    handle.lastUsed = performance.now();
    return handle;
  }

  /** Handles sent to `group` through whose channel is no longer one of its `members`. */
  #forgetFormer(group: string, members: Set<string>): void {
    for (const [name, handle] of this.#handles) {
      if (!members.has(name) && handle.groups.delete(group) && handle.groups.size === 0) {
        this.#retire(handle);
      }
    }
  }

  /** Takes `handle` out of use; closed now, or when its last send settles. */
  #retire(handle: MemberHandle<T>): void {
    if (this.#handles.get(handle.channel.name) === handle) this.#handles.delete(handle.channel.name);
    handle.retiring = true;
    if (handle.pending === 0) handle.channel.close();
    else this.#retiring.add(handle);
  }

  #done(handle: MemberHandle<T>): void {
    handle.pending--;
    handle.lastUsed = performance.now();
    if (handle.retiring && handle.pending === 0) {
      this.#retiring.delete(handle);
      handle.channel.close();
    }
  }

  /** Closes handles unused for memberIdle; runs while there are handles, never keeping the process. */
  #scheduleIdleClose(): void {
    if (this.#memberIdleMs === 0) {
      for (const handle of [...this.#handles.values()]) this.#retire(handle);
      return;
    }
    if (this.#idleTimer !== undefined || this.#handles.size === 0 || this.#memberIdleMs === Infinity) return;
    const sweep = () => {
      this.#idleTimer = undefined;
      if (this.#closed) return;
      const now = performance.now();
      for (const handle of [...this.#handles.values()]) {
        if (handle.pending === 0 && now - handle.lastUsed >= this.#memberIdleMs) this.#retire(handle);
      }
      this.#scheduleIdleClose();
    };
    // Checked twice per idle period: a handle is closed between memberIdle and 1.5 x memberIdle.
    const timer = setTimeout(sweep, Math.max(this.#memberIdleMs / 2, 10));
    Deno.unrefTimer(timer);
    this.#idleTimer = timer;
  }

  #live(): Deno.PointerObject {
    if (this.#closed) throw new FerryError("NamespaceClosed", `namespace '${this.prefix}' is closed`);
    return this.#table;
  }

  #statusError(st: number): FerryError {
    if (st === Status.ERR_INVALID_NAME) return new InvalidNameError("group or channel name is not valid");
    return new FerryError(
      "Internal",
      `unexpected status ${st} from the ferry core (groups of '${this.prefix}')`,
    );
  }

  /**
   * Closes the channel handles sendGroup opened (sends still waiting reject with
   * ChannelClosedError) and the group table, which ends the memberships this Namespace added with
   * `lifetime: "process"`. Expiring memberships stay: they belong to the namespace.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    for (const handle of [...this.#handles.values(), ...this.#retiring]) handle.channel.close();
    this.#handles.clear();
    this.#retiring.clear();
    finalizer.unregister(this);
    holding.delete(this);
    this.#lib.ferry_group_free(this.#table);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
