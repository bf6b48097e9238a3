// What a bridge reports: per route, what it moved, what it holds, what failed, what may be a duplicate.

import type { SendMode } from "../../mod.ts";

/** One route's counters since the bridge started. */
export interface RouteStat {
  /** "out": local channel (or topic) to NATS; "in": NATS to local channel (or topic). */
  direction: "out" | "in";
  /** The local channel; for a topic route, the topic; for a service route, the service. */
  channel: string;
  /** The NATS subject. */
  subject: string;
  /**
   * "ack" (NATS request/reply), "async" (JetStream), "topic" (pub/sub over NATS core) or "service"
   * (request/response over NATS request/reply).
   */
  mode: SendMode | "topic" | "service";
  /**
   * Messages finished: out, released locally after NATS confirmed them (JetStream stored it, or the
   * remote receiver released it); in, sent into the local channel and confirmed back to NATS.
   */
  forwarded: number;
  /** Messages taken and not finished now (at most the route's window). */
  inFlight: number;
  /**
   * Out ack routes: messages the remote side did not confirm (its receiver died or was slow, no
   * reply came in time); in ack routes: local sends that failed and were answered with the error;
   * in async routes: local sends that failed (the message went back to JetStream).
   */
  failed: number;
  /** Out ack routes: failed messages held now until their producer's ack wait is over. */
  held: number;
  /**
   * Copies that may be duplicates: out, local messages that came marked `redelivered` (a bridge
   * died holding them) and resends after a publish whose outcome was unknown; in, messages that
   * JetStream delivered again or that came marked as resent.
   */
  redelivered: number;
  /** Attempts repeated: no responder yet (ack), a publish retried, a message handed back to JetStream. */
  retries: number;
  /** The last failure's text, if any. */
  lastError?: string;
}

/** The bridge's connection and routes. */
export interface BridgeStat {
  /** The local namespace. */
  prefix: string;
  /** True while connected to a NATS server (the client reconnects on its own). */
  connected: boolean;
  /** The server it is connected to (or was last). */
  server: string;
  /** Times the connection was lost. */
  disconnects: number;
  /** Times the client re-established it. */
  reconnects: number;
  /** Each route, out routes first, in the order given. */
  routes: RouteStat[];
}

/** @internal A route's live counters. */
export function newRouteStat(
  direction: "out" | "in",
  r: { channel: string; subject: string; mode: RouteStat["mode"] },
): RouteStat {
  return {
    direction,
    channel: r.channel,
    subject: r.subject,
    mode: r.mode,
    forwarded: 0,
    inFlight: 0,
    failed: 0,
    held: 0,
    redelivered: 0,
    retries: 0,
  };
}
