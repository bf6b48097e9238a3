// What a service route puts on NATS besides the channel routes' headers (wire.ts): the method, the
// caller's own headers, values as standard msgpack, and a local call's failure as the status the
// callers' side turns back into the caller's own error. Unary calls (services.ts) and streamed
// calls (service_streams.ts) share it, so that a failure crosses the same way in both.

import type { MsgHdrs } from "npm:nats@2.29.3";
import { standardMsgpack } from "../codec.ts";
import { FerryError } from "../errors.ts";
import { type ErrorPayload, errorPayload, RemoteError } from "../patterns/rpc/wire.ts";
import { REPLY_MARGIN_MS } from "./inbound.ts";
import { natsModule } from "./nats.ts";
import { HEADER, replyHeaders } from "./wire.ts";

/**
 * Arguments, results, items and error payloads cross as standard msgpack (codec.ts), which a plain
 * NATS client's msgpack library reads and writes: no namespace's shared shapes, no msgpackr records.
 */
export const packer = standardMsgpack();
/** Header names the bridge writes itself: never a caller's header on the far side. */
const OWN = /^ferry-/i;
/** Status of a reply whose payload is a RemoteError's `{ code, name, message }`. */
export const REMOTE = "Remote";

/** The NATS headers of a call: the caller's own headers, the method and the time left. */
export function callHeaders(own: Record<string, string>, method: string, left: number): MsgHdrs {
  const h = natsModule().headers();
  for (const [key, value] of Object.entries(own)) if (!OWN.test(key)) h.set(key, value);
  h.set(HEADER.method, method);
  h.set(HEADER.timeout, String(left));
  return h;
}

/**
 * The time a call that came in may take, counted from its arrival: the time its caller's side still
 * waits (less a margin for the answer's way back), capped by this route's `timeout`. The local call
 * that answers it gets what is left of that when it starts.
 */
export function localTimeout(h: MsgHdrs | undefined, routeTimeout: number): number {
  const asked = Number(h?.get(HEADER.timeout));
  return asked > 0 ? Math.max(1, Math.min(routeTimeout, asked - REPLY_MARGIN_MS)) : routeTimeout;
}

/** The caller's own headers of a call that came in (the bridge's own left out). */
export function ownHeaders(h: MsgHdrs | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const key of h?.keys() ?? []) if (!OWN.test(key)) headers[key] = h!.get(key);
  return headers;
}

/**
 * A local call's failure as the far side's answer: a RemoteError's payload (status "Remote"), or a
 * ferry error's code as the status (the callers' side turns PeerDied and Timeout into the caller's
 * own errors, any other code into a RemoteError with that code).
 */
export function failureReply(e: unknown): [Uint8Array | undefined, MsgHdrs] {
  if (e instanceof RemoteError) {
    const payload: ErrorPayload = { code: e.remoteCode, name: e.remoteName, message: e.remoteMessage };
    return [packer.encode(payload), replyHeaders(REMOTE)];
  }
  if (e instanceof FerryError) return [undefined, replyHeaders(e.code, e.message)];
  // Arguments or a value that are not msgpack: the caller's RemoteError says what.
  return [packer.encode(errorPayload(e)), replyHeaders(REMOTE)];
}

/** How the callers' side ends a call whose far side answered a status other than "ok" and "Remote". */
export type RelayedFailure =
  /** Rejects the held request so: the caller's own PeerDiedError or TimeoutError. */
  | { outcome: "PeerDied" | "Expired"; why: string }
  /** Answers the caller with this RemoteError. */
  | { error: ErrorPayload };

/** The caller's side of `status` (the far side's ferry error code) and its message `why`. */
export function relayedFailure(status: string, why: string): RelayedFailure {
  // The remote server died holding the call: the caller sees it as a local server's death
  // (PeerDiedError; an idempotent call is sent again).
  if (status === "PeerDied") return { outcome: "PeerDied", why };
  // The far side gave up waiting (TimeoutError there): the caller's TimeoutError.
  if (status === "Timeout" || status === "Expired") return { outcome: "Expired", why };
  // Anything else that kept the call from the far side's service (its request channel full or
  // missing, a header NATS refused) is the caller's RemoteError with that code.
  return { error: { code: status, name: "RemoteError", message: why } };
}

/** Why a call's arguments, result or item cannot cross. */
export const TOO_LARGE = "larger than the NATS server takes (max_payload, with the headers)";

/** The RemoteError a caller gets for arguments, a result or an item that cannot cross. */
export function tooLargePayload(what: string): ErrorPayload {
  return { code: "MessageTooLarge", name: "MessageTooLargeError", message: `${what} is ${TOO_LARGE}` };
}
