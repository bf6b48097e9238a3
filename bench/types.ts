// The contract every benchmark driver follows (ferry, unix socket, native core), so that one run
// can put them side by side. A driver runs one workload between two or more real processes and
// reports what it measured; drivers never share code paths with each other's transports.

/** What one measurement does. */
export type WorkloadKind =
  /** One message at a time; the sender waits until the receiver handled (released) it. Blocking APIs. */
  | "ack-sync"
  /** The same with promise APIs (await send / for await; for sockets, async read/write). */
  | "ack-async"
  /** ack-sync with the channel's latency option (`LATENCY_OPTION` in main.ts), when it has one. */
  | "ack-sync-latency"
  /** One sender, one receiver, as fast as possible, up to 16 messages in flight (async mode). */
  | "throughput"
  /** As throughput, raw, the receiver copying into one reused buffer (`recvSync({ into })`). */
  | "throughput-into"
  /** As throughput, through the promise API: `await send` on an async handle, `for await`. */
  | "throughput-promise"
  /** Two senders and two receivers, each sender `count` messages. */
  | "throughput-2x2"
  /** As throughput, through batch APIs (ferry: sendMany/recvMany; sockets: coalesced writes). */
  | "throughput-batch"
  /** As throughput, raw: the sender copies its bytes into a loaned slot once, the receiver reads a view. */
  | "throughput-zerocopy";

/**
 * "msgpack" is ferry's default codec (shapes shared through the namespace); "msgpack-plain" the
 * standalone one, every message carrying its keys (the default before shapes were shared).
 */
export type PayloadCodec = "raw" | "msgpack" | "msgpack-plain";

export interface Workload {
  kind: WorkloadKind;
  /** Payload bytes for raw; ignored for msgpack, which sends SMALL_OBJECT. */
  size: number;
  codec: PayloadCodec;
  /** Messages per sender (round trips for ack-*). */
  count: number;
  /** Untimed messages (round trips) first, per sender: the JIT, caches and page faults settle. */
  warm: number;
  /** Extra Channel.open options for every ferry handle of the row (the latency option). */
  openExtra?: Record<string, unknown>;
}

export interface Result {
  /** Messages per second: round trips per second for ack-*, received per second for throughput. */
  msgsPerSec: number;
  /** Payload bytes per second (encoded bytes for msgpack). */
  mbPerSec: number;
  /** Round-trip latency percentiles in microseconds (ack-* only). */
  p50us?: number;
  p99us?: number;
  p999us?: number;
  meanUs?: number;
  /** Why a driver measured nothing (then every figure is NaN and the row shows the note). */
  note?: string;
}

/** The realistic small object of the msgpack rows (about 100 bytes encoded). */
export const SMALL_OBJECT = {
  id: 123456,
  user: "alice@example.com",
  action: "resize",
  tags: ["img", "thumb"],
  ts: 1_700_000_000_000,
  ok: true,
  score: 0.75,
  path: "/uploads/2026/11/cat.png",
};

/** Raw payload of `size` bytes with a recognisable pattern. */
export function rawPayload(size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

/** Latency summary of round-trip samples in milliseconds (performance.now differences). */
export function latency(samplesMs: ArrayLike<number>): Pick<Result, "p50us" | "p99us" | "p999us" | "meanUs"> {
  const sorted = Float64Array.from(samplesMs).sort();
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] * 1000;
  let sum = 0;
  for (const v of sorted) sum += v;
  return { p50us: at(0.5), p99us: at(0.99), p999us: at(0.999), meanUs: sum / sorted.length * 1000 };
}

/** A result for a driver that could not run here: NaN figures and why. */
export function skipped(note: string): Result {
  return { msgsPerSec: NaN, mbPerSec: NaN, note };
}
