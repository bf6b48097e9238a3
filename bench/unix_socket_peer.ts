// One process of the Unix-socket baseline (bench/unix_socket.ts starts these). A sender connects,
// a receiver listens; both print "ready" on stdout once the connection can be made, the sender
// starts on "go" from stdin, and each prints one JSON line with what it measured.
//   unix_socket_peer.ts recv <socket path> <kind> <codec> <size> <count> <warm>
//   unix_socket_peer.ts send <socket path> <kind> <codec> <size> <count> <warm> <per-message|coalesced>
// `warm` untimed messages go first; `count` are measured after them.
//
// Wire format: frames of a 4-byte little-endian payload length and the payload. The payload is
// the raw bytes (raw rows) or the msgpackr encoding of SMALL_OBJECT (msgpack rows), with the same
// Packr/Unpackr options as ferry's msgpack codec (src/codec.ts; built here, not imported, so the
// baseline shares no code with ferry's own path). For the round trip the receiver answers every
// message with one byte after it decoded it.

import { now, wallMs } from "./clock.ts";
import { Packr, Unpackr } from "msgpackr";
import { latency, type PayloadCodec, rawPayload, SMALL_OBJECT, type WorkloadKind } from "./types.ts";

/** Largest coalesced write. */
export const COALESCE_BYTES = 64 * 1024;
/** Byte a receiver answers a round-trip message with. */
const ACK_BYTE = 6;
/** A frame at least this long that is not yet complete is read straight into its own buffer. */
const DIRECT_READ_MIN = 16 * 1024;
/** Initial read buffer; reads ask for at least MIN_READ bytes of room. */
const READ_BUFFER = 256 * 1024;
const MIN_READ = 16 * 1024;

export type Variant = "per-message" | "coalesced";

/** What a receiver prints, for the messages after the warm-up. */
export interface ReceiverReport {
  received: number;
  /** Payload bytes received (encoded bytes for msgpack). */
  bytes: number;
  /** performance.timeOrigin + performance.now() at the first message: comparable across processes. */
  firstMs: number;
  elapsedMs: number;
  /** Folded from every decoded value so that no decode can be skipped. */
  sink: number;
}

/** What a sender prints: for ack-* the round trips, for throughput only how many it sent. */
export interface SenderReport {
  sent: number;
  bytes: number;
  msgsPerSec?: number;
  p50us?: number;
  p99us?: number;
  p999us?: number;
  meanUs?: number;
}

function isRoundTrip(kind: WorkloadKind): boolean {
  return kind === "ack-sync" || kind === "ack-async";
}

/** Writes all of `bytes`, however many calls the socket takes. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = await conn.write(bytes);
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

function putLength(b: Uint8Array, at: number, len: number): void {
  b[at] = len & 0xff;
  b[at + 1] = (len >>> 8) & 0xff;
  b[at + 2] = (len >>> 16) & 0xff;
  b[at + 3] = len >>> 24;
}

/**
 * Frames out of a byte stream. Complete frames are handed out as offsets into one read buffer
 * (no copy, no per-byte work); bytes of an unfinished frame move to the front only when the
 * buffer runs out of room, so each byte is moved at most once. A long frame that is not complete
 * is read straight into a buffer of its own, which the caller keeps as the message.
 */
class FrameReader {
  buf = new Uint8Array(READ_BUFFER);
  /** Start of the first unconsumed byte, and end of the bytes read. */
  pos = 0;
  end = 0;
  /** End of the payload `take` returned last. */
  frameEnd = 0;
  /** Bytes the frame at `pos` needs in all (header included), once known. */
  need = 4;

  constructor(private conn: Deno.Conn) {}

  /** The payload start of the next complete frame in `buf` (end in `frameEnd`), or -1. */
  take(): number {
    const p = this.pos;
    const avail = this.end - p;
    if (avail < 4) {
      this.need = 4;
      return -1;
    }
    const b = this.buf;
    const len = (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
    if (avail - 4 < len) {
      this.need = 4 + len;
      return -1;
    }
    this.pos = this.frameEnd = p + 4 + len;
    return p + 4;
  }

  /** After `take` gave -1: true when the pending frame is long and should be read with `readOwned`. */
  pendingIsLong(): boolean {
    return this.need - 4 >= DIRECT_READ_MIN;
  }

  /** Reads the pending (long) frame into its own buffer and returns it. */
  async readOwned(): Promise<Uint8Array> {
    const len = this.need - 4;
    const own = new Uint8Array(len);
    let off = this.end - (this.pos + 4);
    own.set(this.buf.subarray(this.pos + 4, this.end));
    this.pos = this.end = 0;
    this.need = 4;
    while (off < len) {
      const n = await this.conn.read(own.subarray(off));
      if (n === null) throw new Error("unix socket peer: stream ended inside a frame");
      off += n;
    }
    return own;
  }

  /** Reads more bytes; false at the end of the stream. */
  async fill(): Promise<boolean> {
    if (this.pos === this.end) this.pos = this.end = 0;
    if (this.pos + this.need > this.buf.length || this.buf.length - this.end < MIN_READ) {
      const pending = this.end - this.pos;
      if (this.need > this.buf.length) {
        let size = this.buf.length;
        while (size < this.need) size *= 2;
        const grown = new Uint8Array(size);
        grown.set(this.buf.subarray(this.pos, this.end));
        this.buf = grown;
      } else if (this.pos > 0) {
        this.buf.copyWithin(0, this.pos, this.end);
      }
      this.pos = 0;
      this.end = pending;
    }
    const n = await this.conn.read(this.buf.subarray(this.end));
    if (n === null) return false;
    this.end += n;
    return true;
  }
}

/** Accepts one connection on `path`, receives `count` messages, decoding each into its own value. */
export async function receive(
  path: string,
  kind: WorkloadKind,
  codec: PayloadCodec,
  count: number,
  warm: number,
  onListening: () => void,
): Promise<ReceiverReport> {
  const listener = Deno.listen({ transport: "unix", path });
  onListening();
  const conn = await listener.accept();
  listener.close();
  try {
    const unpackr = new Unpackr({ moreTypes: true });
    const reader = new FrameReader(conn);
    const ack = Uint8Array.of(ACK_BYTE);
    const roundTrip = isRoundTrip(kind);
    let received = 0;
    let bytes = 0;
    let sink = 0;
    let firstMs = 0;
    let seen = 0;
    while (seen < warm + count) {
      let value: Uint8Array | typeof SMALL_OBJECT;
      let len: number;
      const s = reader.take();
      if (s >= 0) {
        len = reader.frameEnd - s;
        // The application's own value: a copy for raw, the decoded object for msgpack.
        value = codec === "raw"
          ? reader.buf.slice(s, reader.frameEnd)
          : unpackr.unpack(reader.buf, { start: s, end: reader.frameEnd }) as typeof SMALL_OBJECT;
      } else if (reader.pendingIsLong()) {
        const own = await reader.readOwned();
        len = own.length;
        value = codec === "raw" ? own : unpackr.unpack(own) as typeof SMALL_OBJECT;
      } else {
        if (!(await reader.fill())) throw new Error(`unix socket peer: stream ended after ${received}`);
        continue;
      }
      if (seen++ === warm) firstMs = wallMs();
      if (seen > warm) {
        received++;
        bytes += len;
      }
      sink = (sink + (value instanceof Uint8Array ? value[value.length - 1] : value.id)) | 0;
      if (roundTrip) await writeAll(conn, ack);
    }
    const elapsedMs = wallMs() - firstMs;
    return { received, bytes, firstMs, elapsedMs, sink };
  } finally {
    conn.close();
  }
}

/**
 * Sends `count` messages over `conn`. Per message: one write per send. Coalesced: frames gathered
 * into a 64 KiB buffer written when the next frame does not fit and at the end (a frame longer
 * than the buffer goes out alone, so 64 KiB and 1 MiB payloads behave as per message). For ack-*
 * each message waits for the receiver's answer, so both variants write once per message there.
 */
export async function send(
  conn: Deno.Conn,
  kind: WorkloadKind,
  codec: PayloadCodec,
  size: number,
  count: number,
  warm: number,
  variant: Variant,
): Promise<SenderReport> {
  const packr = new Packr({ moreTypes: true });
  const raw = codec === "raw" ? rawPayload(size) : undefined;
  const roundTrip = isRoundTrip(kind);
  const samples = roundTrip ? new Float64Array(warm + count) : undefined;
  const ackBuf = new Uint8Array(16);
  let frame = new Uint8Array(4 + (raw ? raw.length : 256));
  const batch = variant === "coalesced" && !roundTrip ? new Uint8Array(COALESCE_BYTES) : undefined;
  let batched = 0;
  let bytes = 0;
  for (let i = 0; i < warm + count; i++) {
    const t0 = roundTrip ? now() : 0;
    // As an application would hand it over: a value to encode (msgpack) or bytes (raw).
    const payload = raw ?? packr.pack(SMALL_OBJECT);
    const len = payload.length;
    if (i >= warm) bytes += len;
    if (batch && 4 + len <= batch.length) {
      if (batched + 4 + len > batch.length) {
        await writeAll(conn, batch.subarray(0, batched));
        batched = 0;
      }
      putLength(batch, batched, len);
      batch.set(payload, batched + 4);
      batched += 4 + len;
    } else {
      if (batched > 0) {
        await writeAll(conn, batch!.subarray(0, batched));
        batched = 0;
      }
      if (frame.length < 4 + len) frame = new Uint8Array(4 + len);
      putLength(frame, 0, len);
      frame.set(payload, 4);
      await writeAll(conn, frame.subarray(0, 4 + len));
    }
    if (samples) {
      const n = await conn.read(ackBuf);
      if (n !== 1 || ackBuf[0] !== ACK_BYTE) throw new Error("unix socket peer: bad or missing reply");
      samples[i] = now() - t0;
    }
  }
  if (batched > 0) await writeAll(conn, batch!.subarray(0, batched));
  if (!samples) return { sent: count, bytes };
  const timed = samples.subarray(warm);
  let totalMs = 0;
  for (const v of timed) totalMs += v;
  return { sent: count, bytes, msgsPerSec: count / (totalMs / 1000), ...latency(timed) };
}

async function readLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  return text.split("\n")[0];
}

async function main(args: string[]) {
  const [role, path, kind, codec, sizeArg, countArg, warmArg, variant] = args;
  const size = Number(sizeArg);
  const count = Number(countArg);
  const warm = Number(warmArg);
  if (role === "recv") {
    const report = await receive(
      path,
      kind as WorkloadKind,
      codec as PayloadCodec,
      count,
      warm,
      () => console.log("ready"),
    );
    console.log(JSON.stringify(report));
  } else if (role === "send") {
    const conn = await Deno.connect({ transport: "unix", path });
    try {
      console.log("ready");
      if ((await readLine(Deno.stdin.readable)) !== "go") throw new Error("unix socket peer: no go");
      const report = await send(
        conn,
        kind as WorkloadKind,
        codec as PayloadCodec,
        size,
        count,
        warm,
        variant as Variant,
      );
      console.log(JSON.stringify(report));
    } finally {
      conn.close();
    }
  } else {
    throw new Error(`unix socket peer: unknown role ${role}`);
  }
}

if (import.meta.main) await main(Deno.args);
