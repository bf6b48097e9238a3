// Subscribing: a subscription is a private inbox channel (`<topic>!sub.<pid>.<random>`) made a
// member of its topic's group for as long as it is open and its process lives. Making one also
// removes the inboxes of the topic's subscribers that died. A subscription to a pattern is the
// same, its inbox named after the pattern and a member of the wildcard group (wildcards.ts).

import { Channel } from "../../channel/channel.ts";
import { ChannelClosedError, InvalidOptionError } from "../../errors.ts";
import type { Message } from "../../message.ts";
import { type Frame, readFrame } from "../headers.ts";
import { checkBase, privateName, sweepPrivate } from "../private_channels.ts";
import type { SubscribeOptions, TopicMessage, WhenFull } from "./options.ts";
import { TopicGroups } from "./topics.ts";
import { checkPattern, inboxBase, isPattern, WILDCARDS } from "./wildcards.ts";

const KiB = 1024;

/**
 * Subscribes to `topic`: creates this process's inbox for it, which `close()` removes. `topic` may
 * be a pattern (NATS style): `*` stands for one token (`prices.*` gets `prices.eur`, not
 * `prices.eur.spot`), `>` as the last token for one or more (`prices.>` gets both); tokens are
 * what lies between dots. A bad pattern is InvalidNameError. Each subscription is its own inbox: a
 * process subscribed to `prices.*` and `prices.eur` gets what is published to `prices.eur` twice,
 * once in each; `m.topic` is the topic it was published to.
 */
export function subscribe<T = unknown>(topic: string, options: SubscribeOptions = {}): Subscription<T> {
  return new Subscription<T>(token, topic, options);
}

const token = Symbol("ferry.pubsub.subscription");

/**
 * One process's subscription to a topic: iterate it for the messages published after it was made.
 * `close()` (or `using`) ends the membership and removes the inbox. If the process dies instead,
 * the membership ends with it (SIGKILL included), and the inbox is removed by a publisher that
 * wrote to it and by the next subscribe to the topic.
 */
export class Subscription<T = unknown> implements AsyncIterable<TopicMessage<T>>, Disposable {
  /** The topic, or the pattern, subscribed to. */
  readonly topic: string;
  /** The namespace. */
  readonly prefix: string;
  /** This subscription's inbox channel. */
  readonly inbox: string;
  /** What a full inbox does. */
  readonly whenFull: WhenFull;
  #channel: Channel<Uint8Array>;
  #groups: TopicGroups;
  /** The group key in TopicGroups: the topic, or WILDCARDS for a pattern. */
  #group: string;
  #closed = false;

  /** @internal Use `subscribe()`. */
  constructor(key: symbol, topic: string, options: SubscribeOptions) {
    if (key !== token) throw new TypeError("use subscribe()");
    const wildcard = isPattern(topic);
    this.topic = wildcard ? checkPattern(topic) : checkBase("topic", topic);
    // A pattern's subscribers are members of the wildcard group, its inboxes named after it.
    this.#group = wildcard ? WILDCARDS : topic;
    const base = wildcard ? inboxBase(topic) : topic;
    this.prefix = options.prefix ?? "ferry";
    const whenFull = options.whenFull ?? "drop";
    if (whenFull !== "drop" && whenFull !== "wait") {
      throw new InvalidOptionError(`whenFull must be "drop" or "wait", not ${JSON.stringify(whenFull)}`);
    }
    this.whenFull = whenFull;
    // Inboxes of subscribers that died (their memberships ended with them).
    sweepPrivate(this.prefix, `${base}!sub.`);
    this.inbox = privateName(base, "sub");
    this.#channel = Channel.open<Uint8Array>(this.inbox, {
      prefix: this.prefix,
      codec: "raw",
      mode: "async",
      capacity: options.capacity ?? 256,
      maxMessageSize: options.maxMessageSize ?? 16 * KiB,
    });
    try {
      this.#groups = TopicGroups.acquire(this.prefix);
    } catch (error) {
      this.#channel.close();
      Channel.unlink(this.inbox, { prefix: this.prefix });
      throw error;
    }
    try {
      this.#groups.add(this.#group, whenFull, this.inbox);
    } catch (error) {
      this.#groups.release();
      this.#channel.close();
      Channel.unlink(this.inbox, { prefix: this.prefix });
      throw error;
    }
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
    this.#groups.discard(this.#group, this.whenFull, this.inbox);
    this.#groups.release();
    this.#channel.close();
    Channel.unlink(this.inbox, { prefix: this.prefix });
  }

  /** As `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
