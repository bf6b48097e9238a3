// What clients and servers of a service agree on: the channels' names and sizes, the timings of
// their loops, and how an error crosses from a handler to its caller (RemoteError).

import { FerryError } from "../../errors.ts";
import { type Frame, FrameKind } from "../headers.ts";
import { sweepPrivate } from "../private_channels.ts";

const KiB = 1024;
/** Request channel, if a server or client creates it: 128 calls queued or in progress, 64 KiB each (8 MiB). */
export const REQUEST_CAPACITY = 128;
export const REQUEST_MAX_SIZE = 64 * KiB;
/** Reply channel per client: 64 replies or stream items of up to 64 KiB (4 MiB of /dev/shm). */
export const REPLY_CAPACITY = 64;
export const REPLY_MAX_SIZE = 64 * KiB;
/** Control channel per server: credits and cancels, a few dozen bytes each (64 KiB). */
export const CONTROL_CAPACITY = 64;
export const CONTROL_MAX_SIZE = KiB;
/** How often an idle receive loop looks up from its wait (to stop when nothing needs it). */
export const POLL_MS = 250;
/** How often a server checks that the clients it holds reply channels of are alive. */
export const SWEEP_MS = 1000;

/** The channel a service's calls arrive on. */
export function requestChannelName(service: string): string {
  return `${service}!call`;
}

/** Removes the reply and control channels of `service` whose owners died. */
export function sweepService(prefix: string, service: string): void {
  sweepPrivate(prefix, `${service}!reply.`);
  sweepPrivate(prefix, `${service}!ctl.`);
}

/** A request expires when its caller stops waiting, so no server runs a call nobody awaits. */
export function expiryOf(timeoutMs: number): number {
  return timeoutMs === Infinity ? 0 : Math.max(0.001, timeoutMs / 1000);
}

/**
 * A handler threw, or the server could not run the call: `remoteCode` is the thrown error's `code`
 * (or its name), `message` its message. Codes ferry itself sends: "UnknownMethod", "StreamingMethod"
 * (use `stream()`), "ReplyTooLarge", "Encode" (the result cannot be sent), "ServerClosed".
 */
export class RemoteError extends FerryError {
  /** The error's code on the server: its `code` property if it had one, else its name. */
  readonly remoteCode: string;
  /** The error's class name on the server. */
  readonly remoteName: string;
  /** The error's own message on the server (`message` adds the service, method and code). */
  readonly remoteMessage: string;
  /** Service and method of the call. */
  readonly service: string;
  /** The method called. */
  readonly method: string;
  /** @internal Built by the client from an error frame. */
  constructor(service: string, method: string, remote: { code?: string; name?: string; message?: string }) {
    super(
      "Remote",
      `${service}.${method} failed on the server: ${remote.message ?? "(no message)"} [${
        remote.code ?? remote.name
      }]`,
    );
    this.remoteCode = String(remote.code ?? remote.name ?? "Error");
    this.remoteName = String(remote.name ?? "Error");
    this.remoteMessage = String(remote.message ?? "");
    this.service = service;
    this.method = method;
  }
}

/** An error as an error frame carries it: what RemoteError is built from on the other side. */
export interface ErrorPayload {
  code: string;
  name: string;
  message: string;
}

/** `error` (anything a handler threw) as an error frame's payload. */
export function errorPayload(error: unknown): ErrorPayload {
  if (typeof error === "object" && error !== null) {
    const { code, name, message } = error as { code?: unknown; name?: unknown; message?: unknown };
    const named = typeof name === "string" ? name : "Error";
    return {
      code: typeof code === "string" ? code : named,
      name: named,
      message: typeof message === "string" ? message : String(error),
    };
  }
  return { code: "Error", name: "Error", message: String(error) };
}

/** A reply or stream frame's value; an error frame throws its RemoteError. */
export function resultOf(frame: Frame, service: string, method: string): unknown {
  if (frame.kind === FrameKind.Error) throw new RemoteError(service, method, frame.data as ErrorPayload);
  return frame.data;
}
