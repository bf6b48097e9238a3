// The public options and handler types of request/response, their defaults, and the checks every
// option value goes through before a channel is opened.

import { InvalidOptionError } from "../../errors.ts";

/** Default per-call timeout, and how long a reply waits for room, in milliseconds. */
export const DEFAULT_TIMEOUT = 5000;
/** Stream items a client lets a server send ahead of what it consumed. */
export const DEFAULT_WINDOW = 32;
/** The largest stream `window` (a bridge checks the windows that come across against it too). */
export const MAX_WINDOW = 65536;

/** What a handler gets besides its argument. */
export interface CallContext {
  /** The service name. */
  readonly service: string;
  /** The method called. */
  readonly method: string;
  /** The caller's own headers (trace context, idempotency keys). */
  readonly headers: Record<string, string>;
  /** Aborted when the caller cancels a stream or the server closes: stop work then. */
  readonly signal: AbortSignal;
  /** Times this call was sent before: 0, or the retries of an idempotent call whose servers died. */
  readonly attempt: number;
}

/**
 * A method: returns a value (or a promise of one), or is an async generator (or returns an async
 * iterable), which makes it a streamed method for `client.stream()`.
 */
// deno-lint-ignore no-explicit-any
export type Handler = (args: any, ctx: CallContext) => unknown;

/** Options of `serve`. */
export interface ServeOptions {
  /** Namespace. Default "ferry". */
  prefix?: string;
  /**
   * Calls (unary or streams) this server runs at once; it takes the next call only when it has a
   * free place, so servers that are busy leave calls to those that are not. Default 1.
   */
  concurrency?: number;
  /** Capacity of the request channel, if this call creates it. Default 128. */
  capacity?: number;
  /** Largest request in bytes, if this call creates the request channel. Default 64 KiB. */
  maxMessageSize?: number;
  /** Milliseconds a reply waits for room in a full reply channel before it is dropped. Default 5000. */
  replyTimeout?: number;
  /**
   * Most items of a stream sent in one message (1..256). Default 1: each item is written before
   * its generator runs on, so what the generator does after a `yield` (log, acknowledge, signal)
   * happens after that item is in the client's reply channel, and a server that dies there has
   * delivered it. Above 1, items the generator has ready (it yields the next one within a few
   * microtask turns) go out together, up to this many and within the client's window: several times
   * the items per second for small items, but a server that dies may take with it items its
   * generator yielded and ran on from (the client still gets PeerDiedError, never a clean end).
   */
  streamBatch?: number;
}

/** Options of `connect`. */
export interface ConnectOptions {
  /** Namespace. Default "ferry". */
  prefix?: string;
  /** Default per-call timeout in milliseconds (Infinity: none). Default 5000. */
  timeout?: number;
  /** Calls this client has in flight at once (1..32); more wait for one to finish. Default 32. */
  concurrency?: number;
  /** Capacity of the request channel, if this call creates it. Default 128. */
  capacity?: number;
  /** Largest request in bytes, if this call creates the request channel. Default 64 KiB. */
  maxMessageSize?: number;
  /** Capacity of this client's reply channel. Default 64. */
  replyCapacity?: number;
  /** Largest reply or stream item in bytes. Default 64 KiB (the reply channel reserves capacity x this). */
  replyMaxMessageSize?: number;
}

/** Options of one call. */
export interface CallOptions {
  /** Milliseconds to wait for the reply (Infinity: no limit). Default: the client's timeout. */
  timeout?: number;
  /** Aborting rejects the call with the signal's reason; the server is not told (it may still run it). */
  signal?: AbortSignal;
  /** The call may run twice: if the server holding it dies, send it again (up to `retries` times). */
  idempotent?: boolean;
  /** Resends after server deaths for an idempotent call. Default 2. */
  retries?: number;
  /** Your own headers, handed to the handler as `ctx.headers`. */
  headers?: Record<string, string>;
}

/** Options of one stream. */
export interface StreamOptions {
  /** Milliseconds a server may take to start the stream (Infinity: no limit). Default: the client's timeout. */
  timeout?: number;
  /** Aborting ends the iteration with the signal's reason and cancels the generator on the server. */
  signal?: AbortSignal;
  /** Items the server may send ahead of what the loop consumed (backpressure window). Default 32. */
  window?: number;
  /** Your own headers, handed to the handler as `ctx.headers`. */
  headers?: Record<string, string>;
}

/** `value` (or `fallback`), checked to be an integer from `min` to `max`. */
export function checkCount(
  what: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(`${what} must be an integer from ${min} to ${max}, not ${v}`);
  }
  return v;
}

/** `value` (or `fallback`), checked to be milliseconds >= 0 or Infinity. */
export function checkTimeout(what: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || Number.isNaN(v) || v < 0) {
    throw new InvalidOptionError(`${what} must be milliseconds >= 0 (or Infinity), not ${v}`);
  }
  return v;
}

/** Whether a handler returned a stream (an async generator or iterable). */
export function isAsyncIterable(x: unknown): x is AsyncIterable<unknown> {
  return typeof x === "object" && x !== null && Symbol.asyncIterator in x;
}

/** Whether a handler returned a promise (or any thenable). */
export function isThenable(x: unknown): x is PromiseLike<unknown> {
  return typeof x === "object" && x !== null && typeof (x as { then?: unknown }).then === "function";
}
