// What a namespace's group calls take and give: options, the send result, the table's stat, and
// the defaults of each.

import type { OpenOptions, SendMode } from "../channel/options.ts";

/** 1 MiB: 4095 memberships (256 bytes each, after a 256-byte header). */
export const DEFAULT_GROUP_MEMORY = 1 << 20;
export const MIN_GROUP_MEMORY = 512;
export const MAX_GROUP_MEMORY = 256 << 20;
export const DEFAULT_GROUP_EXPIRY = 86_400;
/**
 * Seconds a member handle may stay unused. Opening one costs 35-50 us (measured: open + close of
 * an existing channel, against 0.4-2 us for a send), so handles are kept between sendGroup calls,
 * but each holds one of its channel's 64 participant seats, so not for long.
 */
export const DEFAULT_MEMBER_IDLE = 10;

/**
 * Options of {@linkcode Namespace.connect}: the group table's, and the defaults of the channels
 * sendGroup opens (any {@linkcode OpenOptions}).
 */
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

/** Options of Namespace.groupAdd. */
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

/** Options of Namespace.sendGroup. */
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

/** What became of each member of one sendGroup, in member order. */
export interface GroupSendResult {
  /** The group sent to. */
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

/** A namespace's group table at one instant (Namespace.groupStat). */
export interface GroupStat {
  /** The namespace. */
  prefix: string;
  /** Memberships the table can hold. */
  capacity: number;
  /** Bytes the table reserves in /dev/shm. */
  bytes: number;
  /** Memberships now (unexpired). */
  live: number;
  /** Events since the table was created, over all processes. */
  counters: {
    /** Memberships added. */
    added: number;
    /** Memberships added again (their deadline moved). */
    refreshed: number;
    /** Memberships ended by groupDiscard. */
    discarded: number;
    /** Memberships ended by their deadline. */
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
  /** When the table was created. */
  createdAt: Date;
}
