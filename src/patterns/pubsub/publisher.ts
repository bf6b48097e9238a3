// Publishing: a publisher sends one copy of each value to every inbox subscribed to its topic,
// through one handle per inbox, and removes the inboxes of subscribers that died once it sees them
// leave the topic. It keeps each topic's subscribers between publishes, with a GroupWatch that says
// when they changed (a join, a leave, a death), so an unchanged topic costs no scan of the table.
// Wildcard subscribers are watched the same way, in their own group (wildcards.ts): a publish also
// reaches the ones whose pattern matches its topic, found once per topic and change.
//
// The fan-out is written here rather than with Namespace.sendGroup, for two reasons. A channel
// keeps order per sender handle (each has its own lane), so one publisher must write to an inbox
// through one handle: publishMany writes batches (one membership look-up per batch), which
// sendGroup cannot, and would need a second handle. And sends that wait for room on one handle
// keep no order among themselves, so a "wait" copy queues behind the earlier one still waiting
// for that inbox (#queued), without holding up the other inboxes as serialising whole sendGroups
// would.

import type { Channel } from "../../channel/channel.ts";
import { ChannelClosedError, ChannelFullError, FerryError, InvalidOptionError } from "../../errors.ts";
import type { GroupWatch } from "../../namespace/watch.ts";
import { FrameWriter } from "../headers.ts";
import { checkBase, openPeer, reclaimIfOrphaned } from "../private_channels.ts";
import type { PublisherOptions, PublishOptions, PublishResult } from "./options.ts";
import { TopicGroups } from "./topics.ts";
import { isWildcardInbox, WILDCARDS, WildcardSubscribers } from "./wildcards.ts";

const DEFAULT_TIMEOUT = 5000;
/** How often a publish waiting for room in an inbox looks whether its subscriber is still there. */
const MEMBERSHIP_CHECK_MS = 1000;

/** A publisher that keeps its handles on subscribers' inboxes between publishes: close it when done. */
export function publisher(options: PublisherOptions = {}): Publisher {
  return new Publisher(token, options);
}

/** The publisher `publish()` uses, one per namespace, for the life of the process. */
const shared = new Map<string, Publisher>();

/**
 * Publishes `value` on `topic` to every subscriber now, through a publisher kept for the process
 * (see `publisher()` to choose its options or close it).
 */
export function publish(
  topic: string,
  value: unknown,
  options: PublishOptions & { prefix?: string } = {},
): Promise<PublishResult> {
  const prefix = options.prefix ?? "ferry";
  let p = shared.get(prefix);
  if (p === undefined) shared.set(prefix, p = publisher({ prefix }));
  return p.publish(topic, value, options);
}

const token = Symbol("ferry.pubsub.publisher");

/** A topic's subscribers as a publisher last saw them, by what their full inbox does. */
interface Subscribed {
  dropWatch: GroupWatch;
  waitWatch: GroupWatch;
  drop?: readonly string[];
  wait?: readonly string[];
  /** Those with the wildcard subscribers matching the topic, as of `wildcards` (WildcardSubscribers.version). */
  all?: { drop: readonly string[]; wait: readonly string[] };
  wildcards?: number;
}

/** Sends each published value to every subscriber of its topic. */
export class Publisher implements Disposable {
  /** The namespace. */
  readonly prefix: string;
  /** Milliseconds a publish waits for room in a "wait" inbox. */
  readonly timeout: number;
  #groups: TopicGroups;
  #writer = new FrameWriter();
  /**
   * The handles on the inboxes this publisher wrote to: one per inbox, for its order (a wildcard
   * inbox gets the topics it matches through the one handle).
   */
  #inboxes = new Map<string, Channel<Uint8Array>>();
  /** Per topic published to, its subscribers as last seen, and the watches that say when they change. */
  #subscribed = new Map<string, Subscribed>();
  #wildcards: WildcardSubscribers;
  /** Per "wait" inbox, the last copy still waiting for room (later copies queue behind it). */
  #queued = new Map<string, Promise<void>>();
  #closed = false;

  /** @internal Use `publisher()`. */
  constructor(key: symbol, options: PublisherOptions) {
    if (key !== token) throw new TypeError("use publisher()");
    this.prefix = options.prefix ?? "ferry";
    const timeout = options.timeout ?? DEFAULT_TIMEOUT;
    if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout < 0) {
      throw new InvalidOptionError(`timeout must be milliseconds >= 0 (or Infinity), not ${timeout}`);
    }
    this.timeout = timeout;
    this.#groups = TopicGroups.acquire(this.prefix);
    this.#wildcards = new WildcardSubscribers(this.#groups);
  }

  /**
   * Sends `value` to every subscriber of `topic` now (none: nothing happens). Resolves once every
   * copy is written, or dropped by the subscriber's `whenFull`.
   */
  async publish(topic: string, value: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    const { drop, wait, result } = this.#subscribers(topic);
    if (drop.length + wait.length === 0) return result;
    const bytes = this.#writer.encode({ subject: topic, headers: options.headers }, value);
    for (const name of drop) {
      const inbox = this.#inbox(topic, name, result);
      if (inbox === undefined) continue;
      try {
        inbox.trySend(bytes);
        result.delivered++;
      } catch (error) {
        this.#failed(error, result);
      }
    }
    let waiting: Promise<void>[] | undefined;
    for (const name of wait) {
      const inbox = this.#inbox(topic, name, result);
      if (inbox === undefined) continue;
      const before = this.#queued.get(name);
      if (before !== undefined) {
        // An earlier publish still waits for room here: go after it, so this inbox keeps the order.
        const copy = bytes.slice();
        (waiting ??= []).push(
          this.#behind(name, before.then(() => this.#waitForRoom(topic, name, inbox, copy, result))),
        );
        continue;
      }
      try {
        inbox.trySend(bytes);
        result.delivered++;
      } catch (error) {
        if (!(error instanceof ChannelFullError)) this.#failed(error, result);
        else {(waiting ??= []).push(
            this.#behind(name, this.#waitForRoom(topic, name, inbox, bytes.slice(), result)),
          );}
      }
    }
    if (waiting !== undefined) await Promise.all(waiting);
    return result;
  }

  /**
   * Publishes `values` on `topic` in order, as `publish` would one by one, but checks the
   * subscribers once and writes to each inbox in batches: for streams of small messages, where the
   * per-publish costs (the membership check, a promise, a core call per inbox) would cost more than
   * the messages.
   */
  async publishMany(
    topic: string,
    values: readonly unknown[],
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    const { drop, wait, result } = this.#subscribers(topic);
    if (drop.length + wait.length === 0 || values.length === 0) return result;
    const frames = values.map((v) =>
      this.#writer.encode({ subject: topic, headers: options.headers }, v).slice()
    );
    for (const name of drop) {
      const inbox = this.#inbox(topic, name, result);
      if (inbox === undefined) continue;
      for (let at = 0; at < frames.length;) {
        let sent: number;
        try {
          sent = inbox.trySendMany(at === 0 ? frames : frames.slice(at));
        } catch (error) {
          this.#failed(error, result);
          result.dropped += frames.length - at - 1;
          break;
        }
        result.delivered += sent;
        at += sent;
        if (at < frames.length) {
          // Full: this copy is dropped, the next ones may fit once the subscriber read some.
          result.dropped++;
          at++;
        }
      }
    }
    const waiting: Promise<void>[] = [];
    for (const name of wait) {
      const inbox = this.#inbox(topic, name, result);
      if (inbox === undefined) continue;
      let at = 0;
      if (!this.#queued.has(name)) {
        try {
          at = inbox.trySendMany(frames);
        } catch (error) {
          this.#failed(error, result);
          continue;
        }
        result.delivered += at;
      }
      // The rest waits for room in order, behind any earlier copy still waiting for this inbox.
      if (at < frames.length) {
        const before = this.#queued.get(name) ?? Promise.resolve();
        waiting.push(
          this.#behind(
            name,
            before.then(() => this.#waitForRoomMany(topic, name, inbox, frames, at, result)),
          ),
        );
      }
    }
    await Promise.all(waiting);
    return result;
  }

  /**
   * Sends `frames` from `from` on to a full "wait" inbox, in order: waits for room for one, then
   * writes as many as fit at once, so a batch waits once per time its subscriber catches up rather
   * than once per copy. Once one copy is not sent (the subscriber left, or the timeout passed), the
   * rest count the same way.
   */
  async #waitForRoomMany(
    topic: string,
    name: string,
    inbox: Channel<Uint8Array>,
    frames: Uint8Array[],
    from: number,
    result: PublishResult,
  ): Promise<void> {
    for (let at = from; at < frames.length;) {
      const { delivered, reclaimed } = result;
      await this.#waitForRoom(topic, name, inbox, frames[at++], result);
      if (result.delivered === delivered) {
        if (result.reclaimed > reclaimed) result.reclaimed += frames.length - at;
        else result.dropped += frames.length - at;
        return;
      }
      try {
        const sent = inbox.trySendMany(frames.slice(at));
        result.delivered += sent;
        at += sent;
      } catch (error) {
        if (!(error instanceof FerryError)) throw error;
        // It left meanwhile, or refuses a copy (too large): the next wait sends one or says which.
      }
    }
  }

  /**
   * The subscribers of `topic` now, by what their full inbox does, with the wildcard subscribers
   * whose pattern matches it. Inboxes this publisher wrote to that are no longer among them (or no
   * longer wildcard subscribers) have left: their handles are closed, and the inboxes of those that
   * died are removed (counted in `result.reclaimed`).
   */
  #subscribers(topic: string): { drop: readonly string[]; wait: readonly string[]; result: PublishResult } {
    if (this.#closed) throw new FerryError("PublisherClosed", "this publisher is closed");
    let seen = this.#subscribed.get(topic);
    if (seen === undefined) {
      checkBase("topic", topic);
      seen = { dropWatch: this.#groups.watch(topic, "drop"), waitWatch: this.#groups.watch(topic, "wait") };
      this.#subscribed.set(topic, seen);
    }
    const result: PublishResult = { delivered: 0, dropped: 0, reclaimed: 0 };
    for (const name of this.#wildcards.refresh()) if (this.#leave(name)) result.reclaimed++;
    // The same arrays as last time while no membership changed (and no subscriber died): then no
    // inbox this publisher writes to can have left.
    const drop = seen.dropWatch.members();
    const wait = seen.waitWatch.members();
    if (drop !== seen.drop || wait !== seen.wait) {
      const now = new Set([...drop, ...wait]);
      for (const name of [...(seen.drop ?? []), ...(seen.wait ?? [])]) {
        if (!now.has(name) && this.#leave(name)) result.reclaimed++;
      }
      seen.drop = drop;
      seen.wait = wait;
      seen.all = undefined;
    }
    if (seen.all === undefined || seen.wildcards !== this.#wildcards.version) {
      const wild = this.#wildcards.matching(topic);
      seen.all = {
        drop: wild.drop.length === 0 ? drop : [...drop, ...wild.drop],
        wait: wild.wait.length === 0 ? wait : [...wait, ...wild.wait],
      };
      seen.wildcards = this.#wildcards.version;
    }
    return { drop: seen.all.drop, wait: seen.all.wait, result };
  }

  /** The group key (see TopicGroups) an inbox subscribed through: its topic's, or the wildcards'. */
  #groupOf(topic: string, name: string): string {
    return isWildcardInbox(name) ? WILDCARDS : topic;
  }

  /** Records `copy` as the last copy waiting for the inbox `name`, until it is sent. */
  #behind(name: string, copy: Promise<void>): Promise<void> {
    this.#queued.set(name, copy);
    copy.finally(() => {
      if (this.#queued.get(name) === copy) this.#queued.delete(name);
    });
    return copy;
  }

  /**
   * Sends to a full "wait" inbox as room comes. Every MEMBERSHIP_CHECK_MS still full, it looks
   * whether the subscriber is still subscribed: one that died (or closed) has left its topic.
   */
  async #waitForRoom(
    topic: string,
    name: string,
    inbox: Channel<Uint8Array>,
    bytes: Uint8Array,
    result: PublishResult,
  ): Promise<void> {
    const deadline = performance.now() + this.timeout;
    for (;;) {
      if (this.#inboxes.get(name) !== inbox) {
        result.reclaimed++; // it left while this copy waited (the handle was closed)
        return;
      }
      const left = deadline - performance.now();
      try {
        await inbox.send(bytes, { timeout: Math.max(0, Math.min(MEMBERSHIP_CHECK_MS, left)) });
        result.delivered++;
        return;
      } catch (error) {
        if (error instanceof ChannelClosedError) continue; // left meanwhile: seen at the loop's top
        // Still full when the slice ended (send reports that as ChannelFullError).
        if (!(error instanceof ChannelFullError)) return this.#failed(error, result);
      }
      if (!this.#groups.members(this.#groupOf(topic, name), "wait").includes(name)) {
        this.#leave(name);
        result.reclaimed++;
        return;
      }
      if (performance.now() >= deadline) {
        result.dropped++;
        return;
      }
    }
  }

  /** This publisher's handle on the inbox `name` (subscribed to `topic`), opened on first use. */
  #inbox(topic: string, name: string, result: PublishResult): Channel<Uint8Array> | undefined {
    let inbox = this.#inboxes.get(name);
    if (inbox !== undefined) return inbox;
    try {
      inbox = openPeer(name, this.prefix);
    } catch (error) {
      if (!(error instanceof FerryError)) throw error;
      // A membership whose inbox is gone: its subscriber died and the inbox was removed between
      // the look-up and now, or it is a membership no process holds (left by an older ferry).
      const group = this.#groupOf(topic, name);
      this.#groups.discard(group, "drop", name);
      this.#groups.discard(group, "wait", name);
      result.reclaimed++;
      return undefined;
    }
    this.#inboxes.set(name, inbox);
    return inbox;
  }

  /** A copy that could not be written: full ("drop"), too large for this inbox, ... */
  #failed(error: unknown, result: PublishResult): void {
    if (!(error instanceof FerryError)) throw error;
    result.dropped++;
  }

  /**
   * Forgets an inbox that left its topic (or the wildcard subscriptions): closes this publisher's
   * handle on it (a copy still waiting there ends) and removes the inbox if its subscriber is dead.
   * True if it removed it.
   */
  #leave(name: string): boolean {
    const inbox = this.#inboxes.get(name);
    if (inbox === undefined) return false;
    this.#inboxes.delete(name);
    inbox.close();
    return reclaimIfOrphaned(name, this.prefix);
  }

  /** Closes the handles on subscribers' inboxes. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const inbox of this.#inboxes.values()) inbox.close();
    this.#inboxes.clear();
    this.#subscribed.clear();
    this.#groups.release();
    for (const [prefix, p] of shared) if (p === this) shared.delete(prefix);
  }

  /** As `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
