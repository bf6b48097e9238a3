// Namespace: the channel groups of one prefix, the public handle. Memberships live in the
// namespace's group table (table.ts), so every process of the namespace sees the same groups; a
// membership lasts until its deadline or for as long as the process that added it (its lifetime).
// sendGroup (fan_out.ts) fans a value out to every member channel.

import {
  checkChoice,
  checkMode,
  checkMs,
  checkName,
  checkPrefix,
  checkSeconds,
  DEFAULTS,
  expiryMs,
} from "../channel/options.ts";
import { InvalidOptionError } from "../errors.ts";
import { trustOf } from "../open.ts";
import { unlinkStore } from "../structures.ts";
import { MemberHandles, sendGroup } from "./fan_out.ts";
import {
  DEFAULT_GROUP_EXPIRY,
  DEFAULT_GROUP_MEMORY,
  DEFAULT_MEMBER_IDLE,
  type GroupAddOptions,
  type GroupSendOptions,
  type GroupSendResult,
  type GroupStat,
  MAX_GROUP_MEMORY,
  MIN_GROUP_MEMORY,
  type NamespaceOptions,
} from "./options.ts";
import { GroupTable, unlinkTable } from "./table.ts";
import { type GroupWatch, newGroupWatch } from "./watch.ts";

/**
 * Namespaces holding process memberships: kept reachable until close(), so that garbage collection
 * (whose finalizer frees the table, ending them) cannot end a membership the process still wants.
 */
const holding = new Set<object>();

/** A membership deadline as the core takes it (0: never); the field is 64-bit. */
function groupExpiryMs(what: string, seconds: number): number {
  return expiryMs(seconds, what, Number.MAX_SAFE_INTEGER, "seconds >= 0 (or Infinity)");
}

const token = Symbol("ferry.namespace");

/**
 * The groups of one namespace, and a sender to them: a group is a named set of channels that
 * {@linkcode Namespace.sendGroup} sends one value to, each member getting its own copy.
 *
 * @example Fan-out
 * ```ts
 * import { Namespace } from "@ferry/ferry";
 *
 * using ns = Namespace.connect({ mode: "async" });
 * ns.groupAdd("audit", "audit.disk");
 * ns.groupAdd("audit", "audit.mail");
 * const { sent, skipped } = await ns.sendGroup("audit", { event: "login" });
 * ```
 */
export class Namespace<T = unknown> implements Disposable, AsyncDisposable {
  /** The namespace: channels and groups with this prefix see each other. */
  readonly prefix: string;
  /** Default seconds a membership lasts (0: forever). */
  readonly groupExpiry: number;
  /** Memberships the table can hold (fixed by whoever created it). */
  readonly groupCapacity: number;
  /** Bytes the table reserves (fixed by whoever created it). */
  readonly groupMemory: number;

  #table: GroupTable;
  #members: MemberHandles<T>;
  #expiryMs: number;

  /**
   * Opens the group table of `options.prefix` (creating it, `groupMemory` bytes, if absent). The
   * other options are the defaults of the channels sendGroup opens.
   *
   * @example
   * ```ts
   * import { Namespace } from "@ferry/ferry";
   *
   * using ns = Namespace.connect({ prefix: "shop", groupExpiry: 3600, memberIdle: 30 });
   * ```
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
    return unlinkTable(checkPrefix(options.prefix ?? DEFAULTS.prefix));
  }

  /**
   * Removes the namespace's msgpack structure store (`/dev/shm/<prefix>~structures`, see the README's
   * "msgpack and shared shapes"): call it once no process of the namespace runs, as its channels
   * are removed. A process that has it open keeps using it, and a later process makes a new one
   * that the first cannot read (a DecodeError between them, never a wrong value); messages still
   * queued that name the old store's shapes are a DecodeError too. Returns false if there was none.
   */
  static unlinkShapes(options: { prefix?: string } = {}): boolean {
    return unlinkStore(checkPrefix(options.prefix ?? DEFAULTS.prefix));
  }

  private constructor(key: symbol, options: NamespaceOptions<T>) {
    if (key !== token) throw new TypeError("use Namespace.connect()");
    const { groupMemory, groupExpiry, memberIdle, ...channelOptions } = options;
    this.prefix = checkPrefix(options.prefix ?? DEFAULTS.prefix);
    checkMode(channelOptions.mode ?? "ack");
    this.groupExpiry = groupExpiry ?? DEFAULT_GROUP_EXPIRY;
    this.#expiryMs = groupExpiryMs("groupExpiry", this.groupExpiry);
    const idle = checkSeconds("memberIdle", memberIdle ?? DEFAULT_MEMBER_IDLE);
    const memory = groupMemory ?? DEFAULT_GROUP_MEMORY;
    if (!Number.isInteger(memory) || memory < MIN_GROUP_MEMORY || memory > MAX_GROUP_MEMORY) {
      throw new InvalidOptionError(
        `groupMemory must be an integer from ${MIN_GROUP_MEMORY} to ${MAX_GROUP_MEMORY} bytes, not ${memory}`,
      );
    }
    const trust = trustOf(options);
    // The channels' timeout also bounds the wait for a table another process is building.
    const timeout = checkMs("timeout", options.timeout ?? DEFAULTS.timeout);
    this.#table = new GroupTable(this, this.prefix, memory, trust, timeout);
    this.groupCapacity = this.#table.capacity;
    this.groupMemory = this.#table.memory;
    this.#members = new MemberHandles(this.#table, { ...channelOptions, prefix: this.prefix }, idle * 1000);
  }

  /**
   * Makes `channel` a member of `group`, for `expiry` seconds (default groupExpiry) or, with
   * `lifetime: "process"`, while this Namespace is open in this process (see GroupLifetime).
   * Returns true if it was not a member. Adding an expiring member again moves its deadline to the
   * later of the two; a pair can hold both kinds at once, and stays a member while either lasts.
   * Throws GroupTableFullError when the table holds groupCapacity memberships.
   *
   * @example A worker's inbox is in the group exactly as long as the worker runs
   * ```ts
   * import { Namespace } from "@ferry/ferry";
   *
   * using ns = Namespace.connect();
   * ns.groupAdd("jobs.broadcast", `inbox.${Deno.pid}`, { lifetime: "process" });
   * ```
   */
  groupAdd(group: string, channel: string, options: GroupAddOptions = {}): boolean {
    checkName("group name", group);
    checkName("channel name", channel);
    const lifetime = checkChoice("lifetime", options.lifetime ?? "expiry", ["expiry", "process"], false);
    if (lifetime === "process" && options.expiry !== undefined) {
      throw new InvalidOptionError(
        'expiry is for lifetime "expiry"; a "process" membership lasts while its process has this Namespace open',
      );
    }
    const expiry = options.expiry === undefined ? this.#expiryMs : groupExpiryMs("expiry", options.expiry);
    this.#table.live();
    if (lifetime === "process") holding.add(this);
    return this.#table.add(group, channel, lifetime, expiry);
  }

  /** Ends `channel`'s membership of `group`; returns whether it was a member. */
  groupDiscard(group: string, channel: string): boolean {
    return this.#table.discard(group, channel);
  }

  /** The member channels of `group` now, sorted (empty for a group nobody added to). */
  groupMembers(group: string): string[] {
    return this.#table.members(group);
  }

  /**
   * A watch on the members of `group`, for a caller that reads them before every message:
   * `watch.members()` is what `groupMembers` returns, at the cost of one atomic load (and one lock
   * test per member another process holds) while no membership changed, where `groupMembers`
   * scans the whole group table (about 11 µs for the default groupMemory).
   */
  watchGroup(group: string): GroupWatch {
    this.#table.live();
    return newGroupWatch(this.#table, group);
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
   * @example Every subscriber gets every event: wait up to 2 s for a slow one instead of skipping it
   * ```ts
   * import { Namespace } from "@ferry/ferry";
   *
   * using ns = Namespace.connect();
   * const { sent, skipped, failed } = await ns.sendGroup("events", { kind: "deploy" }, {
   *   mode: "async",
   *   timeout: 2000,
   * });
   * for (const { channel, error } of failed) console.error(channel, error.message);
   * ```
   */
  sendGroup(group: string, value: T, options: GroupSendOptions = {}): Promise<GroupSendResult> {
    return sendGroup(this.#table, this.#members, group, value, options);
  }

  /** Size, memberships now and counters of the namespace's group table. */
  groupStat(): GroupStat {
    return this.#table.stat();
  }

  /**
   * Closes the channel handles sendGroup opened (sends still waiting reject with
   * ChannelClosedError) and the group table, which ends the memberships this Namespace added with
   * `lifetime: "process"`. Expiring memberships stay: they belong to the namespace.
   */
  close(): void {
    if (this.#table.closed) return;
    this.#members.closeAll();
    holding.delete(this);
    this.#table.close();
  }

  /** Closes the namespace at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the namespace at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
