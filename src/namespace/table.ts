// A namespace's group table: the shared-memory segment `/dev/shm/<prefix>~groups` (see
// core/src/group.rs) that holds every membership of the namespace's groups, behind the core's
// group calls. Opening it, reading and changing memberships, its stat, and what its statuses mean.

import { core } from "../../ffi/lib.ts";
import { GroupInfo, GroupStatIndex, GroupWatch, MembersInfo } from "../../ffi/abi.ts";
import {
  GroupStatus,
  IncompatibleReason,
  LIFETIME_EXPIRY,
  LIFETIME_PROCESS,
  Status,
} from "../../ffi/status.ts";
import { abiMs, checkName } from "../channel/options.ts";
import {
  FerryError,
  GroupTableFullError,
  IncompatibleChannelError,
  InvalidNameError,
  InvalidOptionError,
  NoSpaceError,
  PermissionDeniedError,
  SystemError,
  TimeoutError,
} from "../errors.ts";
import {
  buildingMessage,
  foreignError,
  type OpenReport,
  readReport,
  reportBuffer,
  type Trust,
  trustOf,
} from "../open.ts";
import { type GroupLifetime, type GroupStat, MAX_GROUP_MEMORY, MIN_GROUP_MEMORY } from "./options.ts";

/**
 * Outcomes and the one error of the group calls (core/src/group.rs). They live here rather than in
 * ffi/status.ts only because that file is shared; the core keeps them outside status.rs's range.
 */
/** `lifetime` as ferry_group_add takes it. */
const LIFETIME = { expiry: LIFETIME_EXPIRY, process: LIFETIME_PROCESS } as const;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const finalizer = new FinalizationRegistry<Deno.PointerObject>((table) => core().ferry_group_free(table));

/** The error for a failed open (or unlink) of the group table of `prefix`. */
export function tableError(report: OpenReport, prefix: string, trust?: Trust, timeout?: number): FerryError {
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

/** Removes the group table of `prefix`; see Namespace.unlinkGroups. */
export function unlinkTable(prefix: string): boolean {
  const bytes = encoder.encode(prefix);
  const st = core().ferry_group_unlink(bytes, bytes.length);
  if (st === Status.OK) return true;
  if (st === Status.ERR_NOT_FOUND) return false;
  throw tableError({ status: st, detail: 0 }, prefix);
}

/** What `GroupTable.membersWatched` keeps of one group between calls. */
export interface WatchState {
  /** The group's name, encoded. */
  readonly groupBytes: Uint8Array;
  /** The core's watch (GroupWatch in ffi/abi.ts); all zeros: none yet. */
  words: Uint32Array;
  /** The members the watch stands for. */
  members: readonly string[];
}

/** A fresh WatchState of `group` (its first read scans). */
export function watchState(group: string): WatchState {
  return {
    groupBytes: encoder.encode(checkName("group name", group)),
    // Room for the header and 8 members held by other processes; grown when a group has more.
    words: new Uint32Array(GroupWatch.HEADER + 8 * GroupWatch.ENTRY),
    members: [],
  };
}

/** One open group table. `owner` (the Namespace) is what the finalizer watches. */
export class GroupTable {
  readonly prefix: string;
  /** Memberships the table can hold (fixed by whoever created it). */
  readonly capacity: number;
  /** Bytes the table reserves (fixed by whoever created it). */
  readonly memory: number;
  closed = false;

  #lib = core();
  #table: Deno.PointerObject;
  #prefixBytes: Uint8Array;
  /** The [len][name] records of the last members read, grown when a group outgrows it. */
  #membersOut = new Uint8Array(16 * 1024);
  /** ferry_group_members' count and bytes of those records, and the u32s of their watch. */
  #info = new Uint32Array(MembersInfo.LENGTH);

  /** Opens (creating it, `memory` bytes, if absent) the table of `prefix`. */
  constructor(owner: object, prefix: string, memory: number, trust: Trust, timeout: number) {
    this.prefix = prefix;
    const bytes = encoder.encode(prefix);
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
    if (table === null) throw tableError(readReport(err), prefix, trust, timeout);
    this.#table = table;
    const info = new Uint32Array(2);
    this.#lib.ferry_group_info(table, info);
    this.capacity = info[GroupInfo.ENTRIES];
    this.memory = info[GroupInfo.TOTAL_SIZE];
    finalizer.register(owner, table, this);
  }

  /** The native table, or a NamespaceClosed error after close(). */
  live(): Deno.PointerObject {
    if (this.closed) throw new FerryError("NamespaceClosed", `namespace '${this.prefix}' is closed`);
    return this.#table;
  }

  /** See Namespace.groupAdd; `expiryMs` as the core takes it. */
  add(group: string, channel: string, lifetime: GroupLifetime, expiryMs: number): boolean {
    const g = encoder.encode(checkName("group name", group));
    const c = encoder.encode(checkName("channel name", channel));
    const st = this.#lib.ferry_group_add(
      this.live(),
      g,
      g.length,
      c,
      c.length,
      BigInt(expiryMs),
      LIFETIME[lifetime],
    );
    if (st === GroupStatus.ADDED) return true;
    if (st === GroupStatus.REFRESHED) return false;
    if (st === GroupStatus.ERR_TABLE_FULL) {
      throw new GroupTableFullError(
        `the group table of namespace '${this.prefix}' is full (${this.capacity} memberships); ` +
          "discard memberships, shorten groupExpiry, or raise groupMemory (fixed when the table was " +
          `created: Namespace.unlinkGroups({ prefix: "${this.prefix}" }) lets the next connect make a new one)`,
      );
    }
    throw this.#statusError(st);
  }

  /** See Namespace.groupDiscard. */
  discard(group: string, channel: string): boolean {
    const g = encoder.encode(checkName("group name", group));
    const c = encoder.encode(checkName("channel name", channel));
    const st = this.#lib.ferry_group_discard(this.live(), g, g.length, c, c.length);
    if (st < 0) throw this.#statusError(st);
    return st === 1;
  }

  /** The member channels of `group` now, sorted. */
  members(group: string): string[] {
    const g = encoder.encode(checkName("group name", group));
    return this.#readMembers((out) =>
      this.#lib.ferry_group_members(this.live(), g, g.length, out, out.length, this.#info)
    )!; // never UNCHANGED
  }

  /**
   * The member channels of the group `watch` follows: `watch.members` itself while they are the
   * same as at the last call (no scan: one atomic load, and one lock test per member another
   * process holds), else a new sorted array, which becomes `watch.members`.
   */
  membersWatched(watch: WatchState): readonly string[] {
    const g = watch.groupBytes;
    const names = this.#readMembers((out) =>
      this.#lib.ferry_group_members_watched(
        this.live(),
        g,
        g.length,
        watch.words,
        watch.words.length,
        out,
        out.length,
        this.#info,
      )
    );
    if (names === undefined) return watch.members;
    // A watch that did not fit stayed empty: the next call scans again, into a larger one.
    const needed = this.#info[MembersInfo.WATCH_WORDS];
    if (needed > watch.words.length) watch.words = new Uint32Array(needed * 2);
    return watch.members = names;
  }

  /**
   * Runs a members call (`read` into the records buffer, grown as needed) and decodes its names;
   * undefined for UNCHANGED.
   */
  #readMembers(read: (out: Uint8Array) => number): string[] | undefined {
    const info = this.#info;
    let st = read(this.#membersOut);
    while (st === Status.NEED_BUFFER) {
      this.#membersOut = new Uint8Array(Math.max(info[MembersInfo.BYTES], this.#membersOut.length * 2));
      st = read(this.#membersOut);
    }
    if (st === GroupStatus.UNCHANGED) return undefined;
    if (st !== Status.OK) throw this.#statusError(st);
    const out = this.#membersOut;
    const names: string[] = [];
    for (let at = 0, i = 0; i < info[MembersInfo.COUNT]; i++) {
      const len = out[at];
      names.push(decoder.decode(out.subarray(at + 1, at + 1 + len)));
      at += 1 + len;
    }
    return names;
  }

  /**
   * The members of `group` with their channels' identities (inode; 0n: no channel): one core
   * call for the identities, a stat of each channel's segment, about a microsecond each.
   */
  membersWithIds(group: string): { names: string[]; ids: BigUint64Array } {
    const names = this.members(group);
    return { names, ids: this.#ids(this.#membersOut, this.#info[MembersInfo.BYTES], names.length) };
  }

  /** The identity of channel `name` now (0n: absent). */
  channelId(name: string): bigint {
    const c = encoder.encode(name);
    const record = new Uint8Array(1 + c.length);
    record[0] = c.length;
    record.set(c, 1);
    return this.#ids(record, record.length, 1)[0];
  }

  /** The identities of the `count` channels named in `records` ([len][name] each). */
  #ids(records: Uint8Array, bytes: number, count: number): BigUint64Array {
    const ids = new BigUint64Array(count);
    if (count === 0) return ids;
    const p = this.#prefixBytes;
    const st = this.#lib.ferry_group_channel_ids(p, p.length, records, bytes, count, ids);
    if (st !== Status.OK) throw this.#statusError(st);
    return ids;
  }

  /** Counts one sendGroup, with the members it skipped and found missing (not after close). */
  noteFanout(skipped: number, missing: number): void {
    if (!this.closed) this.#lib.ferry_group_note_fanout(this.#table, skipped, missing);
  }

  /** See Namespace.groupStat. */
  stat(): GroupStat {
    const s = new BigUint64Array(15);
    this.#lib.ferry_group_stat(this.live(), s);
    const n = (i: number) => Number(s[i]);
    return {
      prefix: this.prefix,
      capacity: n(GroupStatIndex.ENTRIES),
      bytes: n(GroupStatIndex.TOTAL_SIZE),
      live: n(GroupStatIndex.LIVE),
      counters: {
        added: n(GroupStatIndex.ADDED),
        refreshed: n(GroupStatIndex.REFRESHED),
        discarded: n(GroupStatIndex.DISCARDED),
        expired: n(GroupStatIndex.EXPIRED),
        reclaimed: n(GroupStatIndex.RECLAIMED),
        merged: n(GroupStatIndex.MERGED),
        fanouts: n(GroupStatIndex.FANOUTS),
        skipped: n(GroupStatIndex.SKIPPED),
        missing: n(GroupStatIndex.MISSING),
        died: n(GroupStatIndex.DIED),
        closed: n(GroupStatIndex.CLOSED),
      },
      createdAt: new Date(n(GroupStatIndex.CREATED_UNIX_MS)),
    };
  }

  /** Frees the table, which ends the process memberships this handle added. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    finalizer.unregister(this);
    this.#lib.ferry_group_free(this.#table);
  }

  #statusError(st: number): FerryError {
    if (st === Status.ERR_INVALID_NAME) return new InvalidNameError("group or channel name is not valid");
    return new FerryError(
      "Internal",
      `unexpected status ${st} from the ferry core (groups of '${this.prefix}')`,
    );
  }
}
