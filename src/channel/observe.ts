// What can be done to a channel without joining it (never counted as a participant, never
// waiting for a builder): read its stat, recover what dead participants left, remove it. Also
// reads the stat of a joined handle: one reader of the core's stat and participant arrays.

import { core } from "../../ffi/lib.ts";
import { Layout, ParticipantRow, StatIndex } from "../../ffi/abi.ts";
import { MEMORY_DEFAULT, OPEN_OBSERVER, Status } from "../../ffi/status.ts";
import { type OpenReport, readReport, reportBuffer, trustOf, type TrustOptions } from "../open.ts";
import { checkName, checkPrefix, DEFAULTS, segmentName } from "./options.ts";
import { openError } from "./status.ts";

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

/** A channel's depth, counters and participants at one instant (see Channel.stat). */
export interface ChannelStat {
  /** Channel name, without the prefix. */
  name: string;
  /** Namespace. */
  prefix: string;
  /** Whether the segment is built (see ChannelState). */
  state: ChannelState;
  /** State "building": the pid of the process building it, when known. */
  builder?: number;
  /** Messages the channel holds at once (fixed at creation). */
  capacity: number;
  /** Largest encoded message in bytes (fixed at creation). */
  maxMessageSize: number;
  /**
   * Bytes the channel holds in /dev/shm now: its fixed part (header, participants, slot lines:
   * about 40 KiB at capacity 100) and the pages its slots reserved for messages larger than 96
   * bytes. Grows with what is queued and in flight, up to the fixed part plus `memory`.
   */
  bytes: number;
  /** Most bytes the slots' pages may take together (the `memory` option, fixed at creation). */
  memory: number;
  /** Of those, bytes resident in memory now (pages ever touched). */
  resident: number;
  /** Messages queued and not yet received. */
  depth: number;
  /** Messages received and not yet released. */
  inFlight: number;
  /** Events since the channel was created, over all participants. */
  counters: {
    /** Messages written. */
    sent: number;
    /** Messages taken by a receiver. */
    received: number;
    /** Messages released by their receiver. */
    released: number;
    /** Messages dropped unreceived after their expiry. */
    expired: number;
    /** Sends that found no room and gave up (or were told so by trySend). */
    full: number;
    /** Messages queued again after their receiver died or closed holding them. */
    redelivered: number;
  };
  /** When the channel was created. */
  createdAt: Date;
  /** Open handles: process, whether it lives, its slots in flight as a sender, what it did so far. */
  participants: {
    /** Process id. */
    pid: number;
    /** Whether that process still holds the channel open (its liveness lock). */
    alive: boolean;
    /** Messages it sent that are not yet released. */
    inFlight: number;
    /** What it has done on the channel so far. */
    role: "sender" | "receiver" | "both" | "idle";
  }[];
}

const { MAX_PARTICIPANTS } = Layout;
const ROLES = ["idle", "sender", "receiver", "both"] as const;

/** The stat of the channel open as `h`. */
export function readStat(h: Deno.PointerObject, name: string, prefix: string): ChannelStat {
  const lib = core();
  const s = new BigUint64Array(StatIndex.LENGTH);
  lib.ferry_stat(h, s);
  const n = (i: number) => Number(s[i]);
  const rows = new Uint32Array(ParticipantRow.STRIDE * MAX_PARTICIPANTS);
  const count = lib.ferry_participants(h, rows, MAX_PARTICIPANTS);
  const participants = [];
  for (let i = 0; i < count; i++) {
    const row = rows.subarray(ParticipantRow.STRIDE * i, ParticipantRow.STRIDE * (i + 1));
    participants.push({
      pid: row[ParticipantRow.PID],
      alive: row[ParticipantRow.ALIVE] === 1,
      inFlight: row[ParticipantRow.IN_FLIGHT],
      role: ROLES[row[ParticipantRow.ROLE] & 3],
    });
  }
  return {
    name,
    prefix,
    state: "ready",
    capacity: n(StatIndex.CAPACITY),
    maxMessageSize: n(StatIndex.MAX_MESSAGE),
    bytes: n(StatIndex.RESERVED),
    memory: n(StatIndex.MEMORY),
    resident: n(StatIndex.RESIDENT),
    depth: n(StatIndex.DEPTH),
    inFlight: n(StatIndex.IN_FLIGHT),
    counters: {
      sent: n(StatIndex.SENT),
      received: n(StatIndex.RECEIVED),
      released: n(StatIndex.RELEASED),
      expired: n(StatIndex.EXPIRED),
      full: n(StatIndex.FULL),
      redelivered: n(StatIndex.REDELIVERED),
    },
    createdAt: new Date(n(StatIndex.CREATED_UNIX_MS)),
    participants,
  };
}

/** See Channel.stat. */
export function stat(name: string, options: StatOptions): ChannelStat {
  const h = observe(name, options);
  if ("state" in h) return h;
  try {
    return readStat(h, name, options.prefix ?? DEFAULTS.prefix);
  } finally {
    core().ferry_free(h);
  }
}

/** See Channel.recover. */
export function recover(name: string, options: StatOptions): number {
  const h = observe(name, options);
  if ("state" in h) return 0;
  const lib = core();
  try {
    return lib.ferry_sweep(h);
  } finally {
    lib.ferry_free(h);
  }
}

/** See Channel.unlink. */
export function unlink(name: string, options: { prefix?: string }): boolean {
  const prefix = checkPrefix(options.prefix ?? DEFAULTS.prefix);
  const bytes = segmentName(prefix, checkName("channel name", name));
  const st = core().ferry_unlink(bytes, bytes.length);
  if (st === Status.OK) return true;
  if (st === Status.ERR_NOT_FOUND) return false;
  throw openError({ status: st, detail: 0 }, { prefix, name });
}

/**
 * Removes a channel whose creator died before finishing it (state "incomplete"), judged and
 * removed under its init lock so that no opener can start rebuilding it in between. Returns true
 * if it was removed, false if it is no longer there or no longer incomplete (built since, or being
 * built by a live process). For gc and the CLI's rm.
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

/**
 * Opens a channel without joining it, never waiting for a builder: the handle (the caller frees
 * it), or the stat of a channel that is not built (state "building" or "incomplete").
 */
function observe(name: string, options: StatOptions): Deno.PointerObject | ChannelStat {
  const prefix = checkPrefix(options.prefix ?? DEFAULTS.prefix);
  checkName("channel name", name);
  const trust = trustOf(options);
  const bytes = segmentName(prefix, name);
  const err = reportBuffer();
  // An observer creates nothing and takes no seat: capacity, size and slots are not asked for.
  const h = core().ferry_open(
    bytes,
    bytes.length,
    0,
    0,
    MEMORY_DEFAULT,
    MEMORY_DEFAULT,
    trust.permissions,
    0,
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

/** The stat of a channel that is not built: what the file itself says. */
function unbuiltStat(name: string, prefix: string, state: ChannelState, report: OpenReport): ChannelStat {
  return {
    name,
    prefix,
    state,
    ...(state === "building" && report.detail > 0 ? { builder: report.detail } : {}),
    capacity: 0,
    maxMessageSize: 0,
    bytes: report.found?.size ?? 0,
    memory: 0,
    resident: 0,
    depth: 0,
    inFlight: 0,
    counters: { sent: 0, received: 0, released: 0, expired: 0, full: 0, redelivered: 0 },
    createdAt: report.found?.modified ?? new Date(0),
    participants: [],
  };
}
