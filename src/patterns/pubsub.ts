// Publish/subscribe over channel groups. A subscription is a private inbox channel
// (`<topic>!sub.<pid>.<random>`) made a member of its topic's group: `<topic>!drop` when a full
// inbox drops what is published to it (counted), `<topic>!wait` when the publisher waits for room.
// A publisher sends one copy to every member inbox. Dead subscribers' inboxes are reclaimed by
// publishers (when an inbox stays full) and by the next subscribe to the topic.
//
// Everything this module asks of groups is in `TopicGroups` below: membership (add, discard, list)
// through `Namespace`, and the fan-out itself, which is done here rather than by `sendGroup` until
// groups can wait for room in async mode, refuse to create missing members and drop the handles of
// members that are gone.

import { Channel } from "../channel/channel.ts";
import { ChannelClosedError, ChannelFullError, FerryError, InvalidOptionError } from "../errors.ts";
import type { Message } from "../message.ts";
import { Namespace } from "../namespace/namespace.ts";
import { type Frame, FrameWriter, readFrame } from "./headers.ts";
import { checkBase, ownerAlive, privateName, reclaimIfOrphaned, sweepPrivate } from "./private_channels.ts";

/** What a subscriber's full inbox does to what is published: drop it (counted), or make the publisher wait. */
export type WhenFull = "drop" | "wait";

/** Options of `subscribe`. */
export interface SubscribeOptions {
  /** Namespace. Default "ferry". */
  prefix?: string;
  /**
   * "drop" (default): a publish that finds this inbox full skips it, and `dropped` counts it; the
   * publisher never waits for this subscriber. "wait": the publisher waits for room (up to its timeout).
   */
  whenFull?: WhenFull;
  /** Messages the inbox holds. Default 256. */
  capacity?: number;
  /** Largest message in bytes; a larger publish is dropped for this subscriber (counted). Default 16 KiB. */
  maxMessageSize?: number;
}

/** Options of a publisher. */
export interface PublisherOptions {
  /** Namespace. Default "ferry". */
  prefix?: string;
  /** Milliseconds a publish waits for room in a "wait" subscriber's inbox. Default 5000. */
  timeout?: number;
}

/** Options of one publish. */
export interface PublishOptions {
  /** Your own headers, handed to subscribers as `headers`. */
  headers?: Record<string, string>;
}

/** What one publish did. */
export interface PublishResult {
  /** Subscribers that got a copy. */
  delivered: number;
  /** Subscribers that did not: a "drop" inbox that was full, or a "wait" inbox still full at the timeout, or a copy too large. */
  dropped: number;
  /** Subscribers found dead (their inboxes were removed) or already gone. */
  reclaimed: number;
}

/** One published message as a subscriber receives it. */
export interface TopicMessage<T = unknown> {
  /** The topic it was published on. */
  topic: string;
  /** The value. */
  data: T;
  /** The publisher's own headers. */
  headers: Record<string, string>;
  /** The publishing process. */
  publisher: number;
}

const KiB = 1024;
const DEFAULT_TIMEOUT = 5000;
/** How often a publisher may look at the owner of an inbox that is full. */
const OWNER_CHECK_MS = 1000;

const groupOf = (topic: string, whenFull: WhenFull) => `${topic}!${whenFull}`;

/** Topic memberships, kept in the namespace's group table. The one place this module uses groups. */
class TopicGroups {
  #ns: Namespace;
  constructor(prefix: string) {
    this.#ns = Namespace.connect({ prefix });
  }
  /** Members forever: a subscription ends by close, or is reclaimed when its owner dies. */
  add(topic: string, whenFull: WhenFull, inbox: string): void {
    this.#ns.groupAdd(groupOf(topic, whenFull), inbox, { expiry: 0 });
  }
  discard(topic: string, inbox: string): void {
    this.#ns.groupDiscard(groupOf(topic, "drop"), inbox);
    this.#ns.groupDiscard(groupOf(topic, "wait"), inbox);
  }
  members(topic: string, whenFull: WhenFull): string[] {
    return this.#ns.groupMembers(groupOf(topic, whenFull));
  }
  close(): void {
    this.#ns.close();
  }
}

/** Subscribes to `topic`: creates this process's inbox for it, which `close()` removes. */
export function subscribe<T = unknown>(topic: string, options: SubscribeOptions = {}): Subscription<T> {
  return new Subscription<T>(token, topic, options);
}

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

const token = Symbol("ferry.pubsub");

/** Sends each published value to every subscriber of its topic. */
export class Publisher implements Disposable {
  /** The namespace. */
  readonly prefix: string;
  /** Milliseconds a publish waits for room in a "wait" inbox. */
  readonly timeout: number;
  #groups: TopicGroups;
  #writer = new FrameWriter();
  #inboxes = new Map<string, Channel<Uint8Array>>();
  #checked = new Map<string, number>();
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
    this.#groups = new TopicGroups(this.prefix);
  }

  /**
   * Sends `value` to every subscriber of `topic` now (none: nothing happens). Resolves once every
   * copy is written, or dropped by the subscriber's `whenFull`.
   */
  async publish(topic: string, value: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    checkBase("topic", topic);
    if (this.#closed) throw new FerryError("PublisherClosed", "this publisher is closed");
    const result: PublishResult = { delivered: 0, dropped: 0, reclaimed: 0 };
    const drop = this.#groups.members(topic, "drop");
    const wait = this.#groups.members(topic, "wait");
    if (drop.length + wait.length === 0) return result;
    const bytes = this.#writer.encode({ subject: topic, headers: options.headers }, value);
    for (const name of drop) {
      const inbox = this.#inbox(topic, name, result);
      if (inbox === undefined) continue;
      try {
        inbox.trySend(bytes);
        result.delivered++;
      } catch (error) {
        this.#failed(topic, name, error, result);
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
        if (!(error instanceof ChannelFullError)) this.#failed(topic, name, error, result);
        else {(waiting ??= []).push(
            this.#behind(name, this.#waitForRoom(topic, name, inbox, bytes.slice(), result)),
          );}
      }
    }
    if (waiting !== undefined) await Promise.all(waiting);
    return result;
  }

  /**
   * Publishes `values` on `topic` in order, as `publish` would one by one, but looks up the
   * subscribers once and writes to each inbox in batches: for streams of small messages, where the
   * membership look-up (a scan of the group table) would cost more than the messages.
   */
  async publishMany(
    topic: string,
    values: readonly unknown[],
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    checkBase("topic", topic);
    if (this.#closed) throw new FerryError("PublisherClosed", "this publisher is closed");
    const result: PublishResult = { delivered: 0, dropped: 0, reclaimed: 0 };
    const drop = this.#groups.members(topic, "drop");
    const wait = this.#groups.members(topic, "wait");
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
          this.#failed(topic, name, error, result);
          result.dropped += frames.length - at - 1;
          break;
        }
        result.delivered += sent;
        at += sent;
        if (at < frames.length) {
          // Full: this copy is dropped, the next ones may fit once the subscriber read some.
          this.#failed(topic, name, new ChannelFullError("full"), result);
          at++;
          if (!this.#inboxes.has(name)) break; // found dead and reclaimed
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
          this.#failed(topic, name, error, result);
          continue;
        }
        result.delivered += at;
      }
      // The rest waits for room in order, behind any earlier copy still waiting for this inbox.
      for (let i = at; i < frames.length; i++) {
        const before = this.#queued.get(name) ?? Promise.resolve();
        waiting.push(
          this.#behind(name, before.then(() => this.#waitForRoom(topic, name, inbox, frames[i], result))),
        );
      }
    }
    await Promise.all(waiting);
    return result;
  }

  /** Records `copy` as the last copy waiting for the inbox `name`, until it is sent. */
  #behind(name: string, copy: Promise<void>): Promise<void> {
    this.#queued.set(name, copy);
    copy.finally(() => {
      if (this.#queued.get(name) === copy) this.#queued.delete(name);
    });
    return copy;
  }

  /** Sends to a full "wait" inbox as room comes, checking every second that its owner lives. */
  async #waitForRoom(
    topic: string,
    name: string,
    inbox: Channel<Uint8Array>,
    bytes: Uint8Array,
    result: PublishResult,
  ): Promise<void> {
    const deadline = performance.now() + this.timeout;
    for (;;) {
      const left = deadline - performance.now();
      try {
        await inbox.send(bytes, { timeout: Math.max(0, Math.min(OWNER_CHECK_MS, left)) });
        result.delivered++;
        return;
      } catch (error) {
        // Still full when the slice ended (send reports that as ChannelFullError): look at the owner.
        if (!(error instanceof ChannelFullError)) return this.#failed(topic, name, error, result);
      }
      if (this.#reclaimIfDead(topic, name, inbox, true)) {
        result.reclaimed++;
        return;
      }
      if (performance.now() >= deadline) {
        result.dropped++;
        return;
      }
    }
  }

  #inbox(topic: string, name: string, result: PublishResult): Channel<Uint8Array> | undefined {
    let inbox = this.#inboxes.get(name);
    if (inbox !== undefined) return inbox;
    try {
      inbox = Channel.open<Uint8Array>(name, {
        prefix: this.prefix,
        codec: "raw",
        mode: "async",
        create: false,
      });
    } catch (error) {
      if (!(error instanceof FerryError)) throw error;
      // A membership whose inbox is gone (its subscriber reclaimed meanwhile): end it.
      this.#groups.discard(topic, name);
      result.reclaimed++;
      return undefined;
    }
    this.#inboxes.set(name, inbox);
    return inbox;
  }

  #failed(topic: string, name: string, error: unknown, result: PublishResult): void {
    if (!(error instanceof FerryError)) throw error;
    const inbox = this.#inboxes.get(name);
    if (
      error instanceof ChannelFullError && inbox !== undefined &&
      this.#reclaimIfDead(topic, name, inbox, false)
    ) {
      result.reclaimed++;
      return;
    }
    result.dropped++; // full ("drop"), too large for this inbox, ...
  }

  /** An inbox that is full may belong to a dead subscriber: look (at most once a second per inbox). */
  #reclaimIfDead(topic: string, name: string, inbox: Channel<Uint8Array>, now: boolean): boolean {
    const at = performance.now();
    if (!now && at - (this.#checked.get(name) ?? -Infinity) < OWNER_CHECK_MS) return false;
    this.#checked.set(name, at);
    let alive: boolean;
    try {
      alive = ownerAlive(inbox.stat());
    } catch {
      alive = false;
    }
    if (alive) return false;
    inbox.close();
    this.#inboxes.delete(name);
    this.#checked.delete(name);
    reclaimIfOrphaned(name, this.prefix, () => this.#groups.discard(topic, name));
    return true;
  }

  /** Closes the handles on subscribers' inboxes. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const inbox of this.#inboxes.values()) inbox.close();
    this.#inboxes.clear();
    this.#groups.close();
    for (const [prefix, p] of shared) if (p === this) shared.delete(prefix);
  }

  /** As `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * One process's subscription to a topic: iterate it for the messages published after it was made.
 * `close()` (or `using`) ends the membership and removes the inbox; if the process dies instead,
 * publishers and the next subscriber reclaim it.
 */
export class Subscription<T = unknown> implements AsyncIterable<TopicMessage<T>>, Disposable {
  /** The topic. */
  readonly topic: string;
  /** The namespace. */
  readonly prefix: string;
  /** This subscription's inbox channel. */
  readonly inbox: string;
  /** What a full inbox does. */
  readonly whenFull: WhenFull;
  #channel: Channel<Uint8Array>;
  #groups: TopicGroups;
  #closed = false;

  /** @internal Use `subscribe()`. */
  constructor(key: symbol, topic: string, options: SubscribeOptions) {
    if (key !== token) throw new TypeError("use subscribe()");
    this.topic = checkBase("topic", topic);
    this.prefix = options.prefix ?? "ferry";
    const whenFull = options.whenFull ?? "drop";
    if (whenFull !== "drop" && whenFull !== "wait") {
      throw new InvalidOptionError(`whenFull must be "drop" or "wait", not ${JSON.stringify(whenFull)}`);
    }
    this.whenFull = whenFull;
    this.#groups = new TopicGroups(this.prefix);
    // Inboxes of subscribers that died: removed, and their memberships ended.
    sweepPrivate(this.prefix, `${topic}!sub.`, (name) => this.#groups.discard(topic, name));
    this.inbox = privateName(topic, "sub");
    this.#channel = Channel.open<Uint8Array>(this.inbox, {
      prefix: this.prefix,
      codec: "raw",
      mode: "async",
      capacity: options.capacity ?? 256,
      maxMessageSize: options.maxMessageSize ?? 16 * KiB,
    });
    this.#groups.add(topic, whenFull, this.inbox);
  }

  /** Messages published to this topic that a full inbox dropped so far. */
  get dropped(): number {
    return this.#channel.stat().counters.full;
  }

  #message(msg: Message<Uint8Array>): TopicMessage<T> {
    const frame: Frame<T> = readFrame<T>(msg.bytes);
    return {
      topic: frame.subject ?? this.topic,
      data: frame.data,
      headers: frame.headers,
      publisher: msg.sender,
    };
  }

  /** The next message, waiting up to `timeout` ms (TimeoutError). */
  async recv(options: { timeout?: number } = {}): Promise<TopicMessage<T>> {
    return this.#message(await this.#channel.recv(options));
  }

  /** The next message if one is queued now, else undefined. */
  tryRecv(): TopicMessage<T> | undefined {
    const msg = this.#channel.tryRecv();
    return msg === undefined ? undefined : this.#message(msg);
  }

  /** Messages as they are published, until `close()`. */
  async *[Symbol.asyncIterator](): AsyncGenerator<TopicMessage<T>, void, undefined> {
    while (!this.#closed) {
      let batch: Message<Uint8Array>[];
      try {
        batch = this.#channel.tryRecvMany(64);
        if (batch.length === 0) batch = await this.#channel.recvMany(64, { timeout: Infinity });
      } catch (error) {
        if (error instanceof ChannelClosedError) return;
        throw error;
      }
      for (const msg of batch) yield this.#message(msg);
    }
  }

  /** Ends the subscription: leaves the topic and removes the inbox (messages still in it are dropped). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#groups.discard(this.topic, this.inbox);
    this.#groups.close();
    this.#channel.close();
    Channel.unlink(this.inbox, { prefix: this.prefix });
  }

  /** As `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
