// Message headers: the few fields the patterns route on (kind, correlation id, reply-to, subject,
// stream key, content type, a count) and the caller's own string headers, in a small binary header
// in front of the payload. A receiver reads the header without decoding the payload, which is
// decoded only when asked for (msgpack by default, raw bytes when the content type says so).
//
// Wire (little endian), version 1:
//   u8 version | u8 kind | u16 header length H | u32 correlation id (0: none)
//   then H - 8 bytes of fields, each: u8 tag | u8 length | bytes
//     strings are UTF-8 of at most 255 bytes; the count is a u32 (tag COUNT, length 4)
//   a user header is: u8 tag USER | u8 key length | u16 value length | key | value
//   then the payload, to the end of the message.

import { type Codec, makeCodec } from "../codec.ts";
import { DecodeError, EncodeError } from "../errors.ts";

/** The frame layout version this module writes and reads. */
export const FRAME_VERSION = 1;
const FIXED = 8;

/**
 * What a frame is, for the patterns that route on it. User code sending its own frames uses
 * `FrameKind.Data` (or any value from 64 to 255, which ferry's patterns never use).
 */
export const FrameKind = {
  /** A plain message (demux, pub/sub, pools). */
  Data: 0,
  /** A call waiting for one reply. */
  Request: 1,
  /** A call's value. */
  Reply: 2,
  /** A call's or stream's failure: the payload is `{ code, name, message }`. */
  Error: 3,
  /** A call answered by a stream of items. */
  StreamRequest: 4,
  /** The server took a stream: `replyTo` names its control channel (credits, cancel). */
  StreamStart: 5,
  /** One item of a stream. */
  Item: 6,
  /** The clean end of a stream, or of input (pools): nothing more follows. */
  End: 7,
  /** The receiver of a stream wants no more of it. */
  Cancel: 8,
  /** The receiver of a stream takes `count` more items. */
  Credit: 9,
  /** Several items of a stream, in order: the payload is an array of them. */
  Items: 10,
} as const;

/** The content type under which the payload is the raw bytes, not msgpack. */
export const RAW_CONTENT_TYPE = "application/octet-stream";

/** The routing fields of a frame, and the caller's own string headers. */
export interface FrameHeader {
  /** What the frame is (`FrameKind`); default `FrameKind.Data`. */
  kind?: number;
  /** Correlation id, an integer from 0 to 2^32 - 1 (0: none). */
  id?: number;
  /** Channel the answer goes to. */
  replyTo?: string;
  /** Method (calls) or topic (pub/sub). */
  subject?: string;
  /** Stream key (demux). */
  key?: string;
  /** Absent: the payload is msgpack. `RAW_CONTENT_TYPE`: the payload is the bytes given. */
  contentType?: string;
  /** A count (stream credits, windows), an integer from 0 to 2^32 - 1. */
  count?: number;
  /** The caller's own headers (trace context, idempotency keys): keys up to 255 bytes, values up to 65535. */
  headers?: Record<string, string>;
}

const Tag = { REPLY_TO: 1, SUBJECT: 2, KEY: 3, CONTENT_TYPE: 4, COUNT: 5, USER: 6 } as const;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** Writes `s` at `at`; returns the bytes written. ASCII is copied by hand: measured faster than encodeInto for short strings. */
function writeString(buf: Uint8Array, at: number, s: string): number {
  const n = s.length;
  if (at + n <= buf.length) {
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[at + i] = c;
    }
    if (i === n) return n;
  }
  const bytes = textEncoder.encode(s);
  if (at + bytes.length > buf.length) return -1;
  buf.set(bytes, at);
  return bytes.length;
}

function readString(buf: Uint8Array, at: number, len: number): string {
  if (len <= 32) {
    let ascii = true;
    for (let i = 0; i < len; i++) {
      if (buf[at + i] >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, buf.subarray(at, at + len) as unknown as number[]);
  }
  return textDecoder.decode(buf.subarray(at, at + len));
}

/**
 * Encodes frames into one growing buffer it reuses: a frame is valid until the next `encode` on the
 * same writer (channels copy what they send before `send` returns its promise; `slice()` to keep one).
 */
export class FrameWriter {
  #buf = new Uint8Array(4096);
  #view = new DataView(this.#buf.buffer);
  #msgpack: Codec<unknown> = makeCodec("msgpack");

  /** The frame for `header` and `value` (msgpack, or the bytes themselves under `RAW_CONTENT_TYPE`). */
  encode(header: FrameHeader, value?: unknown): Uint8Array {
    let payload: Uint8Array;
    if (header.contentType === RAW_CONTENT_TYPE) {
      if (!(value instanceof Uint8Array)) {
        throw new EncodeError(`a frame with content type ${RAW_CONTENT_TYPE} carries a Uint8Array`);
      }
      payload = value;
    } else {
      payload = value === undefined ? EMPTY : this.#msgpack.encode(value);
    }
    for (;;) {
      const end = this.#write(header, payload);
      if (end >= 0) return this.#buf.subarray(0, end);
      this.#grow(this.#buf.length * 2);
    }
  }

  #grow(size: number) {
    this.#buf = new Uint8Array(size);
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Writes the frame; -1 when the buffer is too small. */
  #write(h: FrameHeader, payload: Uint8Array): number {
    const buf = this.#buf;
    if (buf.length < FIXED + payload.length) return -1;
    buf[0] = FRAME_VERSION;
    buf[1] = h.kind ?? FrameKind.Data;
    this.#view.setUint32(4, h.id ?? 0, true);
    let at = FIXED;
    const field = (tag: number, s: string | undefined): boolean => {
      if (s === undefined) return true;
      if (at + 2 > buf.length) return false;
      const n = writeString(buf, at + 2, s);
      if (n < 0) return false;
      if (n > 255) throw new EncodeError(`frame header field is ${n} bytes; the most is 255`);
      buf[at] = tag;
      buf[at + 1] = n;
      at += 2 + n;
      return true;
    };
    if (
      !field(Tag.REPLY_TO, h.replyTo) || !field(Tag.SUBJECT, h.subject) || !field(Tag.KEY, h.key) ||
      !field(Tag.CONTENT_TYPE, h.contentType)
    ) return -1;
    if (h.count !== undefined) {
      if (at + 6 > buf.length) return -1;
      buf[at] = Tag.COUNT;
      buf[at + 1] = 4;
      this.#view.setUint32(at + 2, h.count, true);
      at += 6;
    }
    if (h.headers !== undefined) {
      for (const key in h.headers) {
        const value = h.headers[key];
        if (typeof value !== "string") {
          throw new EncodeError(`header '${key}' must be a string, not ${typeof value}`);
        }
        if (at + 4 > buf.length) return -1;
        const k = writeString(buf, at + 4, key);
        if (k < 0) return -1;
        const v = writeString(buf, at + 4 + k, value);
        if (v < 0) return -1;
        if (k > 255 || k === 0) throw new EncodeError(`header key '${key}' must be 1 to 255 bytes`);
        if (v > 65535) throw new EncodeError(`header '${key}' is ${v} bytes; the most is 65535`);
        buf[at] = Tag.USER;
        buf[at + 1] = k;
        this.#view.setUint16(at + 2, v, true);
        at += 4 + k + v;
      }
    }
    if (at > 65535) throw new EncodeError(`frame header is ${at} bytes; the most is 65535`);
    this.#view.setUint16(2, at, true);
    if (at + payload.length > buf.length) return -1;
    buf.set(payload, at);
    return at + payload.length;
  }
}

const EMPTY = new Uint8Array(0);

/** One decoder for every Frame: msgpackr keeps state per instance, and one is enough per process. */
let sharedMsgpack: Codec<unknown> | undefined;

/**
 * A received frame: its header fields, read without decoding the payload, and the payload decoded
 * on first use of `data`.
 */
export class Frame<T = unknown> {
  /** What the frame is (`FrameKind`). */
  readonly kind: number;
  /** Correlation id (0: none). */
  readonly id: number;
  /** Channel the answer goes to, if any. */
  readonly replyTo: string | undefined;
  /** Method or topic, if any. */
  readonly subject: string | undefined;
  /** Stream key, if any. */
  readonly key: string | undefined;
  /** Content type; undefined means msgpack. */
  readonly contentType: string | undefined;
  /** The count field, if any. */
  readonly count: number | undefined;
  /** The sender's own headers (an empty object when there are none). */
  readonly headers: Record<string, string>;
  /** The encoded payload. */
  readonly payload: Uint8Array;
  #decoded = false;
  #data: T | undefined;

  /** @internal Use `readFrame`. */
  constructor(
    fields: {
      kind: number;
      id: number;
      replyTo?: string;
      subject?: string;
      key?: string;
      contentType?: string;
      count?: number;
      headers: Record<string, string>;
    },
    payload: Uint8Array,
  ) {
    this.kind = fields.kind;
    this.id = fields.id;
    this.replyTo = fields.replyTo;
    this.subject = fields.subject;
    this.key = fields.key;
    this.contentType = fields.contentType;
    this.count = fields.count;
    this.headers = fields.headers;
    this.payload = payload;
  }

  /** The payload's value: msgpack decoded on first use, or the bytes under `RAW_CONTENT_TYPE`. */
  get data(): T {
    if (!this.#decoded) {
      if (this.contentType === RAW_CONTENT_TYPE) this.#data = this.payload as T;
      else if (this.payload.length === 0) this.#data = undefined;
      else {
        sharedMsgpack ??= makeCodec("msgpack");
        this.#data = sharedMsgpack.decode(this.payload, 0, this.payload.length) as T;
      }
      this.#decoded = true;
    }
    return this.#data as T;
  }
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

function damaged(why: string): DecodeError {
  return new DecodeError(`not a ferry frame (${why}): was it sent by a pattern of this ferry version?`);
}

/** Reads the header of a frame; the payload stays encoded until `frame.data` is read. */
export function readFrame<T = unknown>(bytes: Uint8Array): Frame<T> {
  if (bytes.length < FIXED) throw damaged(`${bytes.length} bytes`);
  if (bytes[0] !== FRAME_VERSION) throw damaged(`version ${bytes[0]}`);
  const end = bytes[2] | (bytes[3] << 8);
  if (end < FIXED || end > bytes.length) throw damaged(`header length ${end}`);
  const fields: ConstructorParameters<typeof Frame>[0] = {
    kind: bytes[1],
    id: (bytes[4] | (bytes[5] << 8) | (bytes[6] << 16) | (bytes[7] << 24)) >>> 0,
    headers: NO_HEADERS,
  };
  let at = FIXED;
  while (at < end) {
    const tag = bytes[at];
    if (at + 2 > end) throw damaged("truncated field");
    if (tag === Tag.USER) {
      if (at + 4 > end) throw damaged("truncated header");
      const k = bytes[at + 1], v = bytes[at + 2] | (bytes[at + 3] << 8);
      if (at + 4 + k + v > end) throw damaged("truncated header");
      if (fields.headers === NO_HEADERS) fields.headers = {};
      fields.headers[readString(bytes, at + 4, k)] = readString(bytes, at + 4 + k, v);
      at += 4 + k + v;
      continue;
    }
    const n = bytes[at + 1];
    if (at + 2 + n > end) throw damaged("truncated field");
    switch (tag) {
      case Tag.REPLY_TO:
        fields.replyTo = readString(bytes, at + 2, n);
        break;
      case Tag.SUBJECT:
        fields.subject = readString(bytes, at + 2, n);
        break;
      case Tag.KEY:
        fields.key = readString(bytes, at + 2, n);
        break;
      case Tag.CONTENT_TYPE:
        fields.contentType = readString(bytes, at + 2, n);
        break;
      case Tag.COUNT:
        if (n !== 4) throw damaged("count field");
        fields.count =
          (bytes[at + 2] | (bytes[at + 3] << 8) | (bytes[at + 4] << 16) | (bytes[at + 5] << 24)) >>>
          0;
        break;
      default:
        break; // a field a later version added: skipped, so old readers still route new frames
    }
    at += 2 + n;
  }
  return new Frame<T>(fields, bytes.subarray(end));
}
