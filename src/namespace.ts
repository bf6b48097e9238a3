// Namespace: the channel groups of one prefix. Memberships live in the namespace's group table, a
// shared-memory segment of its own (`/dev/shm/<prefix>~groups`, see core/src/group.rs), so they
// outlive the process that added them and every process of the namespace sees the same groups.
// sendGroup fans a value out to every member channel through channel handles it opens and caches.

import { core } from "../ffi/lib.ts";
import { IncompatibleReason, Status } from "../ffi/status.ts";
import {
  abiMs,
  Channel,
  checkMs,
  checkName,
  checkPrefix,
  DEFAULTS,
  type OpenOptions,
  type SendMode,
} from "./channel.ts";
import {
  ChannelFullError,
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
}

export interface GroupAddOptions {
  /** Seconds this membership lasts (0 or Infinity: forever). Default: the namespace's groupExpiry. */
  expiry?: number;
}

export interface GroupSendOptions {
  /** "ack": resolve once every member released its copy; "async": once every copy is written. */
  mode?: SendMode;
  /** Milliseconds to wait (ack mode): for room, then for the release. Default: the channel timeout. */
  timeout?: number;
  /** Seconds before an unreceived copy is dropped. Default: the channel expiry. */
  expiry?: number;
}

export interface GroupSendResult {
  group: string;
  /** Members that got the value: written (async mode) or released by a receiver (ack mode). */
  sent: string[];
  /**
   * Members that were full: the channel held `capacity` messages, or this namespace already had
   * `slots` unreleased messages on it. Async mode skips them at once; ack mode after waiting
   * `timeout` for room. Counted in the namespace (groupStat().counters.skipped) and the channel.
   */
  skipped: string[];
  /** Members whose copy failed otherwise: PeerDiedError, ExpiredError, TimeoutError, an open error... */
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
  #channels = new Map<string, Channel<T>>();
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
    const { groupMemory, groupExpiry, ...channelOptions } = options;
    this.prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
    const mode = channelOptions.mode ?? "ack";
    if (mode !== "ack" && mode !== "async") {
      throw new InvalidOptionError(`mode must be "ack" or "async", not ${mode}`);
    }
    this.#channelOptions = { ...channelOptions, prefix: this.prefix };
    this.groupExpiry = groupExpiry ?? DEFAULT_GROUP_EXPIRY;
    this.#expiryMs = expiryMs("groupExpiry", this.groupExpiry);
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
   * Makes `channel` a member of `group` for `expiry` seconds (default groupExpiry). Returns true if
   * it was not a member; a member's deadline moves to the later of its deadline and the new one.
   * Throws GroupTableFullError when the table holds groupCapacity memberships.
   */
  groupAdd(group: string, channel: string, options: GroupAddOptions = {}): boolean {
    const g = encoder.encode(checkName("group name", group));
    const c = encoder.encode(checkName("channel name", channel));
    const expiry = options.expiry === undefined ? this.#expiryMs : expiryMs("expiry", options.expiry);
    const st = this.#lib.ferry_group_add(this.#live(), g, g.length, c, c.length, BigInt(expiry));
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
   * Sends `value` to every member channel of `group`, in parallel. A full member is skipped and
   * counted, not an error; other failures are reported per member, never thrown. Async mode
   * resolves once every copy is written; ack mode once every member released its copy (or failed).
   * An empty group resolves with empty lists.
   */
  async sendGroup(group: string, value: T, options: GroupSendOptions = {}): Promise<GroupSendResult> {
    const members = this.groupMembers(group);
    const mode = options.mode ?? this.#channelOptions.mode ?? "ack";
    if (mode !== "ack" && mode !== "async") {
      throw new InvalidOptionError(`mode must be "ack" or "async", not ${mode}`);
    }
    const sendOptions = { mode, timeout: options.timeout, expiry: options.expiry };
    const result: GroupSendResult = { group, sent: [], skipped: [], failed: [] };
    const settle = (channel: string, error?: unknown) => {
      if (error === undefined) result.sent.push(channel);
      else if (error instanceof ChannelFullError) result.skipped.push(channel);
      else result.failed.push({ channel, error: error instanceof Error ? error : new Error(String(error)) });
    };
    if (mode === "async") {
      // trySend never waits: a member with no room now is skipped.
      for (const channel of members) {
        try {
          this.#channel(channel).trySend(value, sendOptions);
          settle(channel);
        } catch (error) {
          settle(channel, error);
        }
      }
    } else {
      // Ack sends wait for room like any ack send (a handle has one ack slot per channel by
      // default, so back-to-back sendGroups queue rather than skip); still full at the deadline
      // means skipped.
      const outcomes = await Promise.allSettled(
        members.map(async (channel) => await this.#channel(channel).send(value, sendOptions)),
      );
      outcomes.forEach((o, i) =>
        settle(members[i], o.status === "rejected" ? o.reason ?? "rejected" : undefined)
      );
    }
    if (!this.#closed) this.#lib.ferry_group_note_fanout(this.#table, result.skipped.length);
    return result;
  }

  /** Size, memberships now and counters of the namespace's group table. */
  groupStat(): GroupStat {
    const s = new BigUint64Array(12);
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
      },
      createdAt: new Date(n(11)),
    };
  }

  /** The cached handle on member `name`, opened with the namespace's channel options. */
  #channel(name: string): Channel<T> {
    let channel = this.#channels.get(name);
    if (channel === undefined) {
      this.#live();
      channel = Channel.open<T>(name, this.#channelOptions);
      this.#channels.set(name, channel);
    }
    return channel;
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
   * Closes the channel handles sendGroup opened (ack sends still waiting reject with
   * ChannelClosedError) and the group table. Memberships stay: they belong to the namespace.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const channel of this.#channels.values()) channel.close();
    this.#channels.clear();
    finalizer.unregister(this);
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
