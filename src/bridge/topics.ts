// A topic route: ferry's publish/subscribe (src/patterns/pubsub) across NATS core subjects, both
// built on their public APIs. Out: the bridge subscribes to a local topic and publishes each message
// on the subject, the publisher's own headers as NATS headers. In: it subscribes to the subject and
// publishes each message on the local topic, the NATS headers (but the bridge's own `Ferry-*`) as
// the message's headers. At most once, as local pub/sub and NATS core both are. A message the
// bridge itself published locally is never sent out again, so routes both ways do not loop.

import type { Msg, NatsConnection, Subscription as NatsSubscription } from "npm:nats@2.29.3";
import { standardMsgpack } from "../codec.ts";
import { type Publisher, publisher } from "../patterns/pubsub/publisher.ts";
import { subscribe, type Subscription } from "../patterns/pubsub/subscription.ts";
import { natsModule } from "./nats.ts";
import type { CheckedTopic } from "./options.ts";
import { text } from "./outbound.ts";
import { newRouteStat, type RouteStat } from "./stat.ts";
import { HEADER } from "./wire.ts";
import { drainWithin } from "./window.ts";

/**
 * Topic values cross NATS as standard msgpack (codec.ts): no namespace's shared shapes, which mean
 * nothing on the far side, and no msgpackr records, which a plain NATS client's library cannot read.
 */
const packer = standardMsgpack();
/** Header names the bridge writes itself: never a user's header on the far side. */
const OWN = /^ferry-/i;

/** @internal */
export class TopicForwarder {
  readonly stat: RouteStat;
  readonly #route: CheckedTopic;
  readonly #prefix: string;
  readonly #nc: NatsConnection;
  #local: Subscription | undefined;
  #remote: NatsSubscription | undefined;
  #publisher: Publisher | undefined;
  #pump: Promise<void> | undefined;

  constructor(route: CheckedTopic, prefix: string, nc: NatsConnection) {
    this.#route = route;
    this.#prefix = prefix;
    this.#nc = nc;
    this.stat = newRouteStat(route.direction, {
      channel: route.topic,
      subject: route.subject,
      mode: "topic",
    });
  }

  start(): void {
    const { topic, subject } = this.#route;
    if (this.#route.direction === "out") {
      this.#local = subscribe(topic, { prefix: this.#prefix });
      this.#pump = this.#forward(this.#local);
    } else {
      this.#publisher = publisher({ prefix: this.#prefix });
      this.#remote = this.#nc.subscribe(subject, {
        callback: (err, m) => err ? this.#fail(err) : this.#deliver(m),
      });
    }
  }

  async #forward(sub: Subscription): Promise<void> {
    const origin = `${this.#prefix}/${this.#route.topic}`;
    try {
      for await (const m of sub) {
        if (m.publisher === Deno.pid) continue; // this bridge's in route published it here
        try {
          const h = natsModule().headers();
          for (const [key, value] of Object.entries(m.headers)) if (!OWN.test(key)) h.set(key, value);
          h.set(HEADER.sender, String(m.publisher));
          h.set(HEADER.origin, origin);
          this.#nc.publish(this.#route.subject, packer.encode(m.data), { headers: h });
          this.stat.forwarded++;
        } catch (e) {
          // A header NATS cannot carry (a key with ':' or spaces), a value that does not encode:
          // this message is dropped, as a full subscriber inbox would drop it.
          this.#fail(e);
        }
      }
    } catch (e) {
      this.#fail(e);
    }
  }

  #deliver(m: Msg): void {
    // Published from this namespace and topic (this route's own out copy, echoed by NATS, or another
    // bridge's of this namespace): its subscribers here had it already.
    if (m.headers?.get(HEADER.origin) === `${this.#prefix}/${this.#route.topic}`) return;
    let value: unknown;
    const headers: Record<string, string> = {};
    try {
      value = packer.decode(m.data, 0, m.data.length);
      for (const key of m.headers?.keys() ?? []) if (!OWN.test(key)) headers[key] = m.headers!.get(key);
    } catch (e) {
      return this.#fail(e); // not msgpack: nothing a subscriber could read
    }
    this.stat.inFlight++;
    this.#publisher!.publish(this.#route.topic, value, { headers })
      .then(() => this.stat.forwarded++, (e) => this.#fail(e))
      .finally(() => this.stat.inFlight--);
  }

  #fail(e: unknown): void {
    this.stat.failed++;
    this.stat.lastError = `topic '${this.#route.topic}' ${this.#route.direction === "out" ? "to" : "from"} ` +
      `'${this.#route.subject}': ${text(e)}`;
  }

  /** Stops: leaves the local topic or the subject; what was taken is finished first. */
  async close(ms: number): Promise<void> {
    this.#local?.close();
    await this.#pump;
    if (this.#remote !== undefined) await drainWithin(this.#remote, ms);
    this.#publisher?.close();
  }
}
