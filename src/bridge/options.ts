// What a bridge is told: how to reach NATS, which namespace it serves, and its routes. Checked once,
// at start, into plain records the routes use; every mistake is an InvalidOptionError that names the
// route and the field.

import type { ConnectionOptions } from "npm:nats@2.29.3";
import { InvalidNameError, InvalidOptionError, type OpenOptions, type SendMode } from "../../mod.ts";
import { checkBase } from "../patterns/private_channels.ts";

/**
 * Options of the NATS client (npm `nats` 2.29), passed through unchanged: `servers`, `user`/`pass`,
 * `token`, `authenticator` (nkeys, JWT creds), `tls` (`{ caFile, certFile, keyFile }` or
 * `{ ca, cert, key }`), `name`, and reconnect tuning. The bridge defaults to reconnecting forever
 * (`maxReconnectAttempts: -1`) every 250 ms; set them to change that.
 */
export type NatsOptions = ConnectionOptions;

/**
 * Channel options a route may set for the channel it opens (used when the bridge creates it, as
 * with `Channel.open`). The bridge chooses the codec ("raw": it moves bytes), release and mode.
 */
export type RouteChannelOptions = Pick<
  OpenOptions,
  "capacity" | "maxMessageSize" | "expiry" | "permissions" | "create" | "trustedOwners"
>;

/** A local channel forwarded to NATS. */
export interface OutRoute {
  /** The local channel whose messages go out; the bridge is one of its receivers. */
  channel: string;
  /** The NATS subject they are published on (no wildcards). */
  subject: string;
  /**
   * "ack": each message is a NATS request, and it is released on this machine (so the producer's
   * ack-mode `send` resolves) only when the remote bridge replies that a remote receiver released
   * it. "async": each message is published to JetStream and released once the stream stored it.
   */
  mode: SendMode;
  /** Messages this route holds unreleased at once, waiting for NATS (1..1024). Default 32. */
  window?: number;
  /**
   * Ack routes: ms to wait for the remote release, counted from when the bridge received the
   * message. Set it to the longest `timeout` your producers use on this channel (default 5000,
   * ferry's default): a message whose outcome is unknown (no reply) or a remote timeout is held
   * that long, plus a second, so its producer's `send` ends in TimeoutError (a remote receiver's
   * death, an expiry or a refusal end it at once: see the README). Async routes: ms one JetStream
   * publish may take before it is retried. Default 5000.
   */
  timeout?: number;
  /** Async routes: the JetStream stream. Default: the stream that already takes `subject`, else a new file-backed `FERRY_<subject>`. */
  stream?: string;
  /** Options for the local channel (when the bridge creates it). */
  open?: RouteChannelOptions;
}

/** A NATS subject delivered into a local channel. */
export interface InRoute {
  /** The NATS subject to take messages from (wildcards allowed on ack routes). */
  subject: string;
  /** The local channel they are sent into. */
  channel: string;
  /**
   * "ack": answers the origin bridge's requests; each message is sent into the channel in ack mode,
   * and the reply goes back once a local receiver released it (or with the error the send raised).
   * "async": a durable JetStream consumer; each message is sent into the channel in async mode and
   * acknowledged to JetStream once it is in shared memory.
   */
  mode: SendMode;
  /** Messages this route has taken from NATS and not finished at once (1..1024; ack: 1..32). Default 32. */
  window?: number;
  /**
   * Ack routes: the longest ms a local ack send may wait (the origin's remaining time, sent along,
   * caps it). Async routes: ms a local send may wait for room before the message is handed back to
   * JetStream for later; it must be shorter than ackWait. Default 5000 (async: at most half of ackWait).
   */
  timeout?: number;
  /** Async routes: the JetStream stream (default: the one that takes `subject`, else a new `FERRY_<subject>`). */
  stream?: string;
  /** Async routes: the durable consumer's name. Default `ferry_<prefix>_<channel>` (`.` and `!` as `_`). */
  durable?: string;
  /** Async routes: seconds JetStream waits for this bridge's acknowledgement before redelivering. Default 30. */
  ackWait?: number;
  /**
   * Deliver each message wrapped as `{ data, redelivered, deliveries, sender, seq, origin, subject }`
   * (the `Envelope` type): for receivers that want the delivery count and the origin's sender and
   * sequence too (a possible duplicate is marked `msg.redelivered` either way). Needs producers that
   * use the msgpack codec. Default false: the producer's bytes, untouched.
   */
  envelope?: boolean;
  /** Ack routes: the NATS queue group, so several bridges share a subject. Default "ferry". */
  queue?: string;
  /** Options for the local channel (when the bridge creates it). */
  open?: RouteChannelOptions;
}

/**
 * A publish/subscribe topic (ferry's `publish`/`subscribe`) carried across NATS core: at most once,
 * as both are. Values cross as standard msgpack (a Map arrives as an object; see the README), the
 * publisher's headers as NATS headers.
 */
export interface TopicRoute {
  /** The local topic (1 to 64 letters, digits or `. _ -`). */
  topic: string;
  /** The NATS subject (no wildcards). */
  subject: string;
  /**
   * "out": what is published on the local topic is published on the subject (the bridge is one
   * more subscriber). "in": what is published on the subject is published on the local topic.
   */
  direction: "out" | "in";
}

/**
 * A request/response service (ferry's `serve`/`connect`) carried across NATS: unary calls as
 * request/reply, streamed calls (`client.stream`) as a message per item with credits sent back, so
 * the far side runs at most a few windows ahead of the caller. Arguments, results and items cross as
 * standard msgpack (a Map arrives as an object; see the README), the caller's headers as NATS headers.
 */
export interface ServiceRoute {
  /** The service name (1 to 64 letters, digits or `. _ -`). */
  service: string;
  /** The NATS subject its calls travel on (no wildcards). */
  subject: string;
  /**
   * "out" (the callers' side): the bridge serves `service` locally and forwards each call as a NATS
   * request on the subject. "in" (the servers' side): the bridge answers the subject's requests
   * (in a queue group, so several bridges share them) by calling the local `service`.
   */
  direction: "out" | "in";
  /**
   * Longest ms a call may take across, counted from when the bridge took it. "out": set it to the
   * longest `timeout` your callers use (a call still unanswered then ends in TimeoutError); "in":
   * caps the local call (the caller's remaining time, sent along, caps it too). A stream: the
   * longest wait for it to start, and for a word from the other bridge after (at least 3 s; each
   * sends one every second). Default 5000.
   */
  timeout?: number;
  /** Calls (unary or streams) this route has in flight at once (1..32). Default 32. */
  window?: number;
  /** "in": the NATS queue group. Default "ferry". */
  queue?: string;
}

/** What `Bridge.start` takes. */
export interface BridgeOptions {
  /** The NATS connection (see NatsOptions). Default: `nats://127.0.0.1:4222`. */
  nats?: NatsOptions;
  /** The local namespace. Default "ferry". */
  prefix?: string;
  /** Local channels forwarded to NATS. */
  out?: OutRoute[];
  /** NATS subjects delivered into local channels. */
  in?: InRoute[];
  /** Pub/sub topics carried to and from NATS subjects. */
  topics?: TopicRoute[];
  /** Request/response services carried to and from NATS subjects. */
  services?: ServiceRoute[];
  /** ms `close()` waits for messages in flight to finish before handing them back. Default 5000. */
  closeTimeout?: number;
}

/** @internal An out route, checked and with its defaults. */
export type CheckedOut = Required<Omit<OutRoute, "stream" | "open">> & Pick<OutRoute, "stream" | "open">;
/** @internal An in route, checked and with its defaults. */
export type CheckedIn =
  & Required<Omit<InRoute, "stream" | "open" | "durable">>
  & Pick<InRoute, "stream" | "open">
  & { durable: string };

const SUBJECT = /^[^\s*>.]+(\.[^\s*>.]+)*$/;
const SUBJECT_WILD = /^([^\s*>.]+|\*)(\.([^\s*>.]+|\*))*(\.>)?$|^>$/;

function where(dir: string, i: number): string {
  return `bridge ${dir}[${i}]`;
}

function int(what: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(
      `${what} must be an integer from ${min} to ${max}, not ${
        typeof value === "number" ? String(value) : JSON.stringify(value)
      }`,
    );
  }
  return value;
}

function mode(what: string, value: unknown): SendMode {
  if (value !== "ack" && value !== "async") {
    throw new InvalidOptionError(`${what}.mode must be "ack" or "async", not ${JSON.stringify(value)}`);
  }
  return value;
}

function direction(what: string, value: unknown): "out" | "in" {
  if (value !== "out" && value !== "in") {
    throw new InvalidOptionError(`${what}.direction must be "out" or "in", not ${JSON.stringify(value)}`);
  }
  return value;
}

function subject(what: string, value: unknown, wild: boolean): string {
  if (typeof value !== "string" || !(wild ? SUBJECT_WILD : SUBJECT).test(value)) {
    throw new InvalidOptionError(
      `${what}.subject ${JSON.stringify(value)} is not a NATS subject: dot-separated tokens without ` +
        `spaces${wild ? " (`*` for one token, a last `>` for the rest)" : ", no wildcards"}`,
    );
  }
  return value;
}

function channel(what: string, value: unknown): string {
  if (typeof value !== "string" || !/^[A-Za-z0-9._!-]{1,100}$/.test(value)) {
    throw new InvalidNameError(
      `${what}.channel ${JSON.stringify(value)} is not valid: use 1 to 100 letters, digits or . _ - !`,
    );
  }
  return value;
}

function optionalName(what: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !/^[A-Za-z0-9_-]{1,200}$/.test(value)) {
    throw new InvalidOptionError(`${what} must be letters, digits, _ or -, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** @internal */
export function checkOut(r: OutRoute, i: number): CheckedOut {
  const w = where("out", i);
  const m = mode(w, r?.mode);
  return {
    channel: channel(w, r.channel),
    subject: subject(w, r.subject, false),
    mode: m,
    window: int(`${w}.window`, r.window, 32, 1, 1024),
    timeout: int(`${w}.timeout`, r.timeout, 5000, 1, 0x7fff_ffff),
    stream: optionalName(`${w}.stream`, r.stream),
    open: r.open,
  };
}

/** @internal */
export function checkIn(r: InRoute, i: number, prefix: string): CheckedIn {
  const w = where("in", i);
  const m = mode(w, r?.mode);
  const name = channel(w, r.channel);
  if (r.envelope !== undefined && typeof r.envelope !== "boolean") {
    throw new InvalidOptionError(`${w}.envelope must be true or false`);
  }
  const ackWait = int(`${w}.ackWait`, r.ackWait, 30, 1, 86400);
  return {
    subject: subject(w, r.subject, m === "ack"),
    channel: name,
    mode: m,
    // An ack route's local sends each hold one of its channel handle's slots (at most 32).
    window: int(`${w}.window`, r.window, 32, 1, m === "ack" ? 32 : 1024),
    // An async route's local send must give up before JetStream's ack wait runs out.
    timeout: int(
      `${w}.timeout`,
      r.timeout,
      m === "ack" ? 5000 : Math.min(5000, ackWait * 500),
      1,
      0x7fff_ffff,
    ),
    stream: optionalName(`${w}.stream`, r.stream),
    durable: optionalName(`${w}.durable`, r.durable) ?? `ferry_${prefix}_${name.replace(/[.!]/g, "_")}`,
    ackWait,
    envelope: r.envelope ?? false,
    queue: optionalName(`${w}.queue`, r.queue) ?? "ferry",
    open: r.open,
  };
}

/** @internal A topic route, checked. */
export type CheckedTopic = Required<TopicRoute>;

/** @internal */
export function checkTopic(r: TopicRoute, i: number): CheckedTopic {
  const w = where("topics", i);
  const dir = direction(w, r?.direction);
  return {
    topic: checkBase(`${w}.topic`, r.topic),
    subject: subject(w, r.subject, false),
    direction: dir,
  };
}

/** @internal A service route, checked and with its defaults. */
export type CheckedService = Required<ServiceRoute>;

/** @internal */
export function checkService(r: ServiceRoute, i: number): CheckedService {
  const w = where("services", i);
  const dir = direction(w, r?.direction);
  return {
    service: checkBase(`${w}.service`, r.service),
    subject: subject(w, r.subject, false),
    direction: dir,
    timeout: int(`${w}.timeout`, r.timeout, 5000, 1, 0x7fff_ffff),
    window: int(`${w}.window`, r.window, 32, 1, 32),
    queue: optionalName(`${w}.queue`, r.queue) ?? "ferry",
  };
}

/**
 * @internal A service is carried one way per bridge: out and in together would send its calls
 * round through NATS back to the bridge itself.
 */
export function checkServicesDistinct(services: CheckedService[]): void {
  const seen = new Map<string, string>();
  for (const r of services) {
    const before = seen.get(r.service);
    if (before !== undefined) {
      throw new InvalidOptionError(
        before === r.direction
          ? `bridge services lists service '${r.service}' twice "${r.direction}": give it one route`
          : `bridge services lists service '${r.service}' both "out" and "in": its calls would loop ` +
            "through NATS back to this bridge",
      );
    }
    seen.set(r.service, r.direction);
  }
}

/** @internal A list of routes (`out`, `in`, `topics`, `services`): absent, or an array. */
export function routeList<T>(what: string, value: T[] | undefined): T[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new InvalidOptionError(`bridge ${what} must be an array of routes, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** Whether NATS subject `subject` is one that `pattern` (tokens, `*` for one, `>` for the rest) takes. */
function takes(pattern: string, subject: string): boolean {
  const p = pattern.split("."), t = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return t.length > i;
    if (i >= t.length || (p[i] !== "*" && p[i] !== t[i])) return false;
  }
  return p.length === t.length;
}

/** @internal Each local channel is served by one route per direction at most: two would compete. */
export function checkDistinct(out: CheckedOut[], inn: CheckedIn[], topics: CheckedTopic[] = []): void {
  for (const o of out) {
    for (const i of inn) {
      if (o.channel === i.channel && takes(i.subject, o.subject)) {
        throw new InvalidOptionError(
          `bridge routes channel '${o.channel}' out to '${o.subject}' and in from '${i.subject}': every ` +
            "message would come back into the channel it left, round and round",
        );
      }
    }
  }
  for (const [list, dir] of [[out, "out"], [inn, "in"]] as const) {
    const seen = new Set<string>();
    for (const r of list) {
      if (seen.has(r.channel)) {
        throw new InvalidOptionError(`bridge ${dir} lists channel '${r.channel}' twice: give each one route`);
      }
      seen.add(r.channel);
    }
  }
  const seen = new Set<string>();
  for (const r of topics) {
    const key = `${r.direction} ${r.topic}`;
    if (seen.has(key)) {
      throw new InvalidOptionError(
        `bridge topics lists topic '${r.topic}' twice "${r.direction}": each would forward every message`,
      );
    }
    seen.add(key);
  }
}
