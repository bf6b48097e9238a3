// What travels with a message across NATS: ferry's metadata as NATS headers (the payload stays the
// producer's encoded bytes, untouched), the ack reply's outcome, and the optional envelope an
// inbound route wraps around a payload so that a local receiver can see what its Message cannot
// carry (the original sender, and whether this copy may be a duplicate).

import type { MsgHdrs } from "npm:nats@2.29.3";
import { natsModule } from "./nats.ts";
import { makeCodec } from "../codec.ts";
import type { Message } from "../../mod.ts";

/** Envelope heads are packed by ferry's own msgpack codec, so a local receiver reads them back as it packs. */
const packer = makeCodec<Record<string, unknown>>("msgpack");

/** Header names; NATS headers are case-insensitive on the wire, ferry writes them in this case. */
export const HEADER = {
  /** Pid of the process that sent the message into the origin channel. */
  sender: "Ferry-Sender",
  /**
   * That sender's sequence number on the origin channel. Streamed calls: an item's number in its
   * stream (from 1), and on the end, how many items the stream had.
   */
  seq: "Ferry-Seq",
  /** `<prefix>/<channel>` the message came from. */
  origin: "Ferry-Origin",
  /** "1" when this copy may have been forwarded before (a redelivery or a retry on the origin side). */
  redelivered: "Ferry-Redelivered",
  /** Ack routes: milliseconds the origin bridge still waits for the reply. */
  timeout: "Ferry-Timeout",
  /** Ack replies: the `code` of the FerryError the remote channel's send raised; absent: "ok". */
  status: "Ferry-Status",
  /** Ack replies that are not "ok": the remote error's message. */
  error: "Ferry-Error",
  /** Service routes: the method called. */
  method: "Ferry-Method",
  /** Streamed calls: on the call, the items its server may send before the first credit. */
  window: "Ferry-Window",
  /** Streamed calls, callers' side to servers' side: that many more items may come (0: still here). */
  credit: "Ferry-Credit",
} as const;

/** The headers an outbound route puts on a message it forwards. */
export function metaHeaders(msg: Message, origin: string, resent: boolean): MsgHdrs {
  const h = natsModule().headers();
  h.set(HEADER.sender, String(msg.sender));
  h.set(HEADER.seq, String(msg.seq));
  h.set(HEADER.origin, origin);
  if (msg.redelivered || resent) h.set(HEADER.redelivered, "1");
  return h;
}

/**
 * The status of an ack reply from an in route that already holds its window of messages: nothing
 * was delivered, so the origin may ask again.
 */
export const BUSY = "Busy";

/** An ack reply: empty payload, the outcome in headers. */
export function replyHeaders(status: string, error?: string): MsgHdrs {
  const h = natsModule().headers();
  h.set(HEADER.status, status);
  // Header values are one line: a multi-line error message would break the frame.
  if (error !== undefined) h.set(HEADER.error, error.replace(/[\r\n]+/g, " "));
  return h;
}

/** What an inbound route knows about a message, for stat and for the envelope. */
export interface Arrival {
  /** The forwarded bytes, as the origin's producer encoded them. */
  payload: Uint8Array;
  /** True when this copy may be a duplicate: JetStream delivered it before, or the origin resent it. */
  redelivered: boolean;
  /** JetStream's delivery count (1 for the first delivery; always 1 on ack routes). */
  deliveries: number;
  sender: number;
  seq: number;
  origin: string;
  subject: string;
}

/** Reads the metadata an outbound route wrote (zeros and "" when a plain NATS client sent it). */
export function arrival(
  payload: Uint8Array,
  h: MsgHdrs | undefined,
  subject: string,
  deliveries: number,
): Arrival {
  const get = (name: string) => h?.get(name) ?? "";
  return {
    payload,
    redelivered: deliveries > 1 || get(HEADER.redelivered) === "1",
    deliveries,
    sender: Number(get(HEADER.sender)) || 0,
    seq: Number(get(HEADER.seq)) || 0,
    origin: get(HEADER.origin),
    subject,
  };
}

/**
 * The envelope a local receiver gets from a route with `envelope: true`: the msgpack object
 * `{ redelivered, deliveries, sender, seq, origin, subject, data }` whose `data` is the producer's
 * value. The payload is never decoded here: the other fields are packed with `data: null` last,
 * and that final nil byte is replaced by the payload's bytes. So it is valid only when producers use
 * the msgpack codec (ferry's default), whose bytes are exactly one msgpack value.
 */
export function envelope(a: Arrival): Uint8Array {
  const head = packer.encode({
    redelivered: a.redelivered,
    deliveries: a.deliveries,
    sender: a.sender,
    seq: a.seq,
    origin: a.origin,
    subject: a.subject,
    data: null,
  });
  const out = new Uint8Array(head.length - 1 + a.payload.length);
  out.set(head.subarray(0, head.length - 1));
  out.set(a.payload, head.length - 1);
  return out;
}

/** The value a route with `envelope: true` delivers: the producer's value and where it came from. */
export interface Envelope<T = unknown> {
  /** The producer's value (decoded by the local channel's msgpack codec). */
  data: T;
  /** True when this copy may be a duplicate of one delivered before (see the README's table). */
  redelivered: boolean;
  /** JetStream's delivery count of this copy (1 on ack routes). */
  deliveries: number;
  /** Pid of the producer on the origin machine (0 if a plain NATS client published it). */
  sender: number;
  /** The producer's sequence number on its channel. */
  seq: number;
  /** `<prefix>/<channel>` on the origin machine. */
  origin: string;
  /** The NATS subject it came through. */
  subject: string;
}
