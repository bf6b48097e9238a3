// Shared by the chaos runner (tests/chaos.ts) and its workers: self-describing payloads, the
// binary logs workers write as they go (so a SIGKILL loses nothing already recorded), and the
// commands a worker takes on stdin.
//
// Payload (raw codec), little-endian u32 words: [MAGIC, senderId, seq, byteLength, checksum],
// then a body whose every byte follows from (senderId, seq): a receiver regenerates and compares
// it in full, so a torn, mixed, truncated or foreign payload is always detected, and (senderId,
// seq) names each message exactly.

import { stdinLines } from "../helpers.ts";

export const PAYLOAD_MAGIC = 0xc4a0_5eed;
export const HEADER_BYTES = 20;
const BLOCK_WORDS = 1024;

function hash(a: number, b: number): number {
  let x = (Math.imul(a + 1, 0x9e3779b1) ^ Math.imul(b + 1, 0x85ebca6b)) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) >>> 0;
  return (x ^ (x >>> 12)) >>> 0;
}

function checksum(senderId: number, seq: number, length: number): number {
  return hash(hash(senderId, seq), length ^ 0x5eed);
}

const blocks = new Map<string, Uint8Array>();

/** 4 KiB of body pattern for (senderId, seq); the body repeats it. */
function block(senderId: number, seq: number): Uint8Array {
  const key = `${senderId}:${seq}`;
  let b = blocks.get(key);
  if (b === undefined) {
    const words = new Uint32Array(BLOCK_WORDS);
    const seed = hash(senderId, seq);
    for (let i = 0; i < BLOCK_WORDS; i++) words[i] = hash(seed, i);
    b = new Uint8Array(words.buffer);
    if (blocks.size > 64) blocks.clear();
    blocks.set(key, b);
  }
  return b;
}

/** A payload of `length` (>= HEADER_BYTES) bytes naming (senderId, seq). */
export function makePayload(senderId: number, seq: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const b = block(senderId, seq);
  out.set(b.subarray(0, Math.min(b.length, length)));
  for (let filled = b.length; filled < length; filled *= 2) out.copyWithin(filled, 0, filled);
  const head = new DataView(out.buffer);
  head.setUint32(0, PAYLOAD_MAGIC, true);
  head.setUint32(4, senderId, true);
  head.setUint32(8, seq, true);
  head.setUint32(12, length, true);
  head.setUint32(16, checksum(senderId, seq, length), true);
  return out;
}

export interface Checked {
  ok: boolean;
  senderId: number;
  seq: number;
  why?: string;
}

/** Verifies every byte of a payload; `ok` false says how it is damaged. */
export function checkPayload(bytes: Uint8Array): Checked {
  if (bytes.length < HEADER_BYTES) return { ok: false, senderId: 0, seq: 0, why: `${bytes.length} bytes` };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const senderId = view.getUint32(4, true);
  const seq = view.getUint32(8, true);
  const length = view.getUint32(12, true);
  const bad = (why: string): Checked => ({ ok: false, senderId, seq, why });
  if (view.getUint32(0, true) !== PAYLOAD_MAGIC) return bad("wrong magic");
  if (length !== bytes.length) return bad(`header says ${length} bytes, got ${bytes.length}`);
  if (view.getUint32(16, true) !== checksum(senderId, seq, length)) return bad("header checksum");
  const b = block(senderId, seq);
  for (let at = HEADER_BYTES; at < length;) {
    const off = at % b.length;
    const n = Math.min(b.length - off, length - at);
    for (let i = 0; i < n; i++) {
      if (bytes[at + i] !== b[off + i]) return bad(`body byte ${at + i}`);
    }
    at += n;
  }
  return { ok: true, senderId, seq };
}

/** Payload sizes: mostly small (across the 96-byte inline limit), some medium, a few large. */
export function pickSize(random: () => number, max: number): number {
  const r = random();
  let size;
  if (r < 0.6) size = HEADER_BYTES + Math.floor(random() * 160);
  else if (r < 0.9) size = 1024 + Math.floor(random() * 63 * 1024);
  else size = 256 * 1024 + Math.floor(random() * 768 * 1024);
  return Math.max(HEADER_BYTES, Math.min(size, max));
}

/** A small seeded generator (mulberry32), so a run can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ------------------------------------------------------------------ logs

/** Record kinds, one 16-byte record each: [kind u8, code u8, flags u16, senderId, seq, time u32]. */
export const Rec = { BEGIN: 1, END: 2, GOT: 3 } as const;
/** Outcome codes of an END record. */
export const Outcome = {
  OK: 0,
  PeerDied: 1,
  Expired: 2,
  Timeout: 3,
  ChannelFull: 4,
  Other: 5,
} as const;
export const OutcomeName = ["OK", "PeerDied", "Expired", "Timeout", "ChannelFull", "Other"];
/** flags of BEGIN/END: the send was in ack mode. */
export const F_ACK = 1;
/** flags of GOT: marked redelivered; the payload failed its check; it came out of its lane's order. */
export const F_REDELIVERED = 1;
export const F_TORN = 2;
export const F_ORDER = 4;
export const RECORD_BYTES = 16;

export interface LogRecord {
  kind: number;
  code: number;
  flags: number;
  senderId: number;
  seq: number;
  /** ms since the round's start (the runner's Date.now() passed to the worker). */
  time: number;
}

/**
 * Appends records with one write(2) each: once written, a record survives the process being
 * killed (it is in the kernel's page cache, not a user-space buffer).
 */
export class LogWriter {
  #file: Deno.FsFile;
  #buf = new Uint8Array(RECORD_BYTES);
  #view = new DataView(this.#buf.buffer);
  #t0: number;

  constructor(path: string, t0: number) {
    this.#file = Deno.openSync(path, { write: true, create: true, append: true });
    this.#t0 = t0;
  }

  write(kind: number, code: number, flags: number, senderId: number, seq: number): void {
    const v = this.#view;
    v.setUint8(0, kind);
    v.setUint8(1, code);
    v.setUint16(2, flags, true);
    v.setUint32(4, senderId >>> 0, true);
    v.setUint32(8, seq >>> 0, true);
    v.setUint32(12, Math.max(0, Math.round(Date.now() - this.#t0)) >>> 0, true);
    let written = 0;
    while (written < RECORD_BYTES) written += this.#file.writeSync(this.#buf.subarray(written));
  }

  close(): void {
    this.#file.close();
  }
}

export function readLog(bytes: Uint8Array): LogRecord[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: LogRecord[] = [];
  for (let at = 0; at + RECORD_BYTES <= bytes.byteLength; at += RECORD_BYTES) {
    out.push({
      kind: view.getUint8(at),
      code: view.getUint8(at + 1),
      flags: view.getUint16(at + 2, true),
      senderId: view.getUint32(at + 4, true),
      seq: view.getUint32(at + 8, true),
      time: view.getUint32(at + 12, true),
    });
  }
  return out;
}

/** The outcome code for what a send threw (or OK). */
export function outcomeOf(error: unknown): number {
  const code = (error as { code?: string } | undefined)?.code;
  switch (code) {
    case "PeerDied":
      return Outcome.PeerDied;
    case "Expired":
      return Outcome.Expired;
    case "Timeout":
      return Outcome.Timeout;
    case "ChannelFull":
      return Outcome.ChannelFull;
    default:
      return Outcome.Other;
  }
}

// ------------------------------------------------------------------ commands

/** Lines from stdin, delivered to `onLine` as they come; resolves at EOF. */
export async function readCommands(onLine: (line: string) => void): Promise<void> {
  for await (const line of stdinLines()) onLine(line);
}

/** Lets queued timers and stdin reads run (a worker that blocks its thread calls this between waits). */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
