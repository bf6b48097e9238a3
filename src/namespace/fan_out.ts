// sendGroup: one value to every member channel of a group, through channel handles the namespace
// opens on its members (never creating a channel) and keeps between calls while they are used:
// opening one costs tens of microseconds, but each holds one of its channel's 64 seats, so an
// unused handle is closed after `memberIdle`, and one whose channel left the group or was
// replaced is retired (closed once its sends in flight settle). The value is encoded once per
// sendGroup, with the namespace's codec, and the same bytes go to every member (raw handles).

import { Channel } from "../channel/channel.ts";
import { checkChoice, checkMode, type OpenOptions } from "../channel/options.ts";
import { type Codec, makeCodec } from "../codec.ts";
import { trustOf } from "../open.ts";
import { ChannelFullError, ChannelNotFoundError } from "../errors.ts";
import type { GroupSendOptions, GroupSendResult } from "./options.ts";
import type { GroupTable } from "./table.ts";

/** Times a member is opened again when its channel is replaced while it is being opened. */
const OPEN_ATTEMPTS = 3;

/** A channel handle sendGroup opened on a member, kept while it is used. */
interface MemberHandle {
  channel: Channel<Uint8Array>;
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

/** The member handles of one namespace. */
export class MemberHandles<T> {
  #table: GroupTable;
  #channelOptions: OpenOptions<T>;
  #idleMs: number;
  #handles = new Map<string, MemberHandle>();
  /** Handles out of use with sends still in progress: closed when those settle, or by closeAll(). */
  #retiring = new Set<MemberHandle>();
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  /** The namespace's codec: a value is encoded once per sendGroup, whatever the member count. */
  readonly codec: Codec<T>;

  constructor(table: GroupTable, channelOptions: OpenOptions<T>, idleMs: number) {
    this.#table = table;
    this.#channelOptions = channelOptions;
    // The namespace's codec, as its channels have: one encoding names shapes every member reads.
    this.codec = makeCodec(channelOptions.codec, {
      prefix: table.prefix,
      trust: trustOf(channelOptions),
    });
    this.#idleMs = idleMs;
  }

  /** The channel mode sendGroup uses when the call does not say. */
  get mode(): OpenOptions<T>["mode"] {
    return this.#channelOptions.mode;
  }

  /**
   * A handle on member `name` whose channel has identity `id` now: the kept one if it is still on
   * that channel, else a new one, opened with the namespace's channel options and never creating.
   * Throws ChannelNotFoundError for a channel that does not exist.
   */
  member(name: string, id: bigint, group: string): MemberHandle {
    const kept = this.#handles.get(name);
    if (kept !== undefined && kept.id !== id) this.#retire(kept); // removed, maybe created again
    let handle = this.#handles.get(name);
    if (handle === undefined) {
      this.#table.live();
      for (let attempt = 1;; attempt++) {
        if (id === 0n) {
          throw new ChannelNotFoundError(
            `group member '${name}' has no channel in namespace '${this.#table.prefix}' (sendGroup never creates one)`,
          );
        }
        const channel = Channel.open<Uint8Array>(name, {
          ...this.#channelOptions as OpenOptions<Uint8Array>,
          codec: "raw", // the bytes sendGroup encoded once
          zeroCopy: false,
          create: false,
        });
        // The identity before and after the open agree: the handle is on that channel, not on one
        // removed (or created) in between.
        const after = this.#table.channelId(name);
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
  forgetFormer(group: string, members: Set<string>): void {
    for (const [name, handle] of this.#handles) {
      if (!members.has(name) && handle.groups.delete(group) && handle.groups.size === 0) {
        this.#retire(handle);
      }
    }
  }

  /** A send through `handle` settled. */
  done(handle: MemberHandle): void {
    handle.pending--;
    handle.lastUsed = performance.now();
    if (handle.retiring && handle.pending === 0) {
      this.#retiring.delete(handle);
      handle.channel.close();
    }
  }

  /** Closes handles unused for memberIdle; runs while there are handles, never keeping the process. */
  scheduleIdleClose(): void {
    if (this.#idleMs === 0) {
      for (const handle of [...this.#handles.values()]) this.#retire(handle);
      return;
    }
    if (this.#idleTimer !== undefined || this.#handles.size === 0 || this.#idleMs === Infinity) return;
    const sweep = () => {
      this.#idleTimer = undefined;
      if (this.#table.closed) return;
      const now = performance.now();
      for (const handle of [...this.#handles.values()]) {
        if (handle.pending === 0 && now - handle.lastUsed >= this.#idleMs) this.#retire(handle);
      }
      this.scheduleIdleClose();
    };
    // Checked twice per idle period: a handle is closed between memberIdle and 1.5 x memberIdle.
    const timer = setTimeout(sweep, Math.max(this.#idleMs / 2, 10));
    Deno.unrefTimer(timer);
    this.#idleTimer = timer;
  }

  /** Closes every handle (sends still waiting reject with ChannelClosedError). */
  closeAll(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    for (const handle of [...this.#handles.values(), ...this.#retiring]) handle.channel.close();
    this.#handles.clear();
    this.#retiring.clear();
  }

  /** Takes `handle` out of use; closed now, or when its last send settles. */
  #retire(handle: MemberHandle): void {
    if (this.#handles.get(handle.channel.name) === handle) this.#handles.delete(handle.channel.name);
    handle.retiring = true;
    if (handle.pending === 0) handle.channel.close();
    else this.#retiring.add(handle);
  }
}

/** See Namespace.sendGroup. */
export async function sendGroup<T>(
  table: GroupTable,
  handles: MemberHandles<T>,
  group: string,
  value: T,
  options: GroupSendOptions,
): Promise<GroupSendResult> {
  const mode = checkMode(options.mode ?? handles.mode ?? "ack");
  // Ack sends wait by default like any ack send (a handle has one ack slot per channel by
  // default, so back-to-back sendGroups queue rather than skip); async ones when given a timeout.
  const onFull = checkChoice(
    "onFull",
    options.onFull ?? (mode === "ack" || options.timeout !== undefined ? "wait" : "skip"),
    ["wait", "skip"],
    false,
  );
  const { names: members, ids } = table.membersWithIds(group);
  handles.forgetFormer(group, new Set(members));
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
  // Encoded once for every member (a copy of its own: the codec may reuse its buffer while sends
  // wait); a value the codec refuses fails every member with the same EncodeError.
  let bytes: Uint8Array | undefined, refused: unknown;
  try {
    bytes = handles.codec.encode(value).slice();
  } catch (error) {
    refused = error;
  }
  const send = (handle: MemberHandle): void | Promise<void> => {
    if (bytes === undefined) throw refused;
    const channel = handle.channel;
    if (onFull === "skip") return channel.trySend(bytes, sendOptions); // throws ChannelFullError
    return channel.send(bytes, sendOptions); // waits up to timeout, then ChannelFullError
  };
  // Every member is opened and its send started in this turn; only the waits run in parallel.
  const waits: Promise<void>[] = [];
  members.forEach((channel, i) => {
    let handle: MemberHandle | undefined;
    let outcome: void | Promise<void>;
    try {
      handle = handles.member(channel, ids[i], group);
      handle.pending++;
      outcome = send(handle);
    } catch (error) {
      if (handle !== undefined) handles.done(handle);
      return settle(channel, error);
    }
    if (outcome === undefined) {
      handles.done(handle);
      return settle(channel);
    }
    waits.push(
      outcome.then(() => settle(channel), (error) => settle(channel, error ?? "rejected"))
        .finally(() => handles.done(handle)),
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
  table.noteFanout(result.skipped.length, missing);
  handles.scheduleIdleClose();
  return result;
}
