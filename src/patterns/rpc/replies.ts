// A server's side of its clients' reply channels: one handle per client, kept between calls; a
// reply that waits for room in a full channel, checking meanwhile that the client lives; and the
// reclaim of a dead client's channel, which nobody else would ever drain.

import type { Channel } from "../../channel/channel.ts";
import type { ChannelStat } from "../../channel/observe.ts";
import {
  ChannelClosedError,
  ChannelFullError,
  EncodeError,
  FerryError,
  MessageTooLargeError,
} from "../../errors.ts";
import { type Frame, FrameKind, FrameWriter } from "../headers.ts";
import { openPeer, ownerAlive, reclaimIfOrphaned } from "../private_channels.ts";
import { errorPayload, SWEEP_MS } from "./wire.ts";

/** The reply channels a server writes to. */
export class ReplySender {
  #prefix: string;
  #timeout: number;
  #writer = new FrameWriter();
  #channels = new Map<string, Channel<Uint8Array>>();

  /** `timeout`: milliseconds a reply waits for room in a full reply channel before it is dropped. */
  constructor(prefix: string, timeout: number) {
    this.#prefix = prefix;
    this.#timeout = timeout;
  }

  /** Answers the call `frame` with `value`; returns a promise only when it had to wait for room. */
  sendResult(frame: Frame, value: unknown): Promise<void> | undefined {
    const sent = this.send(frame.replyTo!, FrameKind.Reply, frame.id, value);
    return sent instanceof Promise ? sent.then(() => {}) : undefined;
  }

  /** Answers the call or stream `frame` with an error frame for `error`. */
  sendError(frame: Frame, error: unknown): Promise<void> | undefined {
    const sent = this.send(frame.replyTo!, FrameKind.Error, frame.id, errorPayload(error));
    return sent instanceof Promise ? sent.then(() => {}) : undefined;
  }

  /**
   * Sends stream items `values` (two or more) as one Items frame; "split" when that frame would be
   * larger than the client's reply channel takes (send them one by one: each may still fit).
   * Otherwise as `send`.
   */
  sendItems(replyTo: string, id: number, values: unknown[]): boolean | Promise<boolean> | "split" {
    const ch = this.#channel(replyTo);
    if (ch === undefined) return false;
    let bytes: Uint8Array;
    try {
      bytes = this.#writer.encode({ kind: FrameKind.Items, id }, values);
    } catch (error) {
      if (error instanceof EncodeError) return "split"; // the one that cannot be sent is reported alone
      throw error;
    }
    if (bytes.length > ch.maxMessageSize) return "split";
    return this.#write(replyTo, ch, bytes);
  }

  /**
   * Sends one frame to a client's reply channel: true once written, false when the client is gone
   * (its channel removed, or its owner dead and the channel full). A value too large or unencodable
   * is answered with an error frame instead. Returns a promise only when it must wait for room.
   */
  send(replyTo: string, kind: number, id: number, value: unknown): boolean | Promise<boolean> {
    const ch = this.#channel(replyTo);
    if (ch === undefined) return false;
    let bytes: Uint8Array;
    try {
      bytes = this.#writer.encode({ kind, id }, value);
      if (bytes.length > ch.maxMessageSize) {
        throw new MessageTooLargeError(
          `the reply is ${bytes.length} bytes; the client's reply channel takes at most ${ch.maxMessageSize} ` +
            "(connect option replyMaxMessageSize)",
        );
      }
    } catch (error) {
      if (
        kind === FrameKind.Error || !(error instanceof EncodeError || error instanceof MessageTooLargeError)
      ) {
        throw error;
      }
      const code = error instanceof EncodeError ? "Encode" : "ReplyTooLarge";
      bytes = this.#writer.encode({ kind: FrameKind.Error, id }, {
        code,
        name: error.name,
        message: error.message,
      });
    }
    return this.#write(replyTo, ch, bytes);
  }

  /** Writes `bytes` (the writer's buffer) now, or waits for room; false when the client is gone. */
  #write(replyTo: string, ch: Channel<Uint8Array>, bytes: Uint8Array): boolean | Promise<boolean> {
    try {
      ch.trySend(bytes);
      return true;
    } catch (error) {
      if (!(error instanceof ChannelFullError)) return this.#drop(replyTo, error);
    }
    return this.#sendWaiting(replyTo, ch, bytes.slice());
  }

  /** The cached handle on a client's reply channel; undefined once it is gone. */
  #channel(name: string): Channel<Uint8Array> | undefined {
    let ch = this.#channels.get(name);
    if (ch === undefined) {
      try {
        ch = openPeer(name, this.#prefix);
      } catch (error) {
        if (error instanceof FerryError) return undefined; // the client is gone (closed or reclaimed)
        throw error;
      }
      this.#channels.set(name, ch);
    }
    return ch;
  }

  async #sendWaiting(replyTo: string, ch: Channel<Uint8Array>, bytes: Uint8Array): Promise<boolean> {
    const deadline = performance.now() + this.#timeout;
    for (;;) {
      try {
        await ch.send(bytes, { timeout: Math.min(SWEEP_MS, Math.max(0, deadline - performance.now())) });
        return true;
      } catch (error) {
        // Still full when the slice ended (send reports that as ChannelFullError).
        if (!(error instanceof ChannelFullError)) return this.#drop(replyTo, error);
      }
      // Full for a while: a dead client never drains it.
      if (this.reclaim(replyTo) || performance.now() >= deadline) return false;
    }
  }

  #drop(replyTo: string, error: unknown): false {
    if (error instanceof ChannelClosedError || error instanceof FerryError) {
      this.#forget(replyTo);
      return false;
    }
    throw error;
  }

  #forget(name: string): void {
    this.#channels.get(name)?.close();
    this.#channels.delete(name);
  }

  /** Removes a client's reply channel if its owner is dead; true if it did (or it was gone). */
  reclaim(name: string): boolean {
    const ch = this.#channels.get(name);
    let stat: ChannelStat | undefined;
    try {
      stat = ch?.stat();
    } catch {
      stat = undefined;
    }
    if (stat !== undefined && ownerAlive(stat)) return false;
    this.#forget(name);
    reclaimIfOrphaned(name, this.#prefix);
    return true;
  }

  /** Reclaims the reply channels of every client this server holds a handle on that died. */
  sweep(): void {
    for (const name of [...this.#channels.keys()]) this.reclaim(name);
  }

  /** Closes the handles (the channels stay: they are their clients'). */
  close(): void {
    for (const ch of this.#channels.values()) ch.close();
    this.#channels.clear();
  }
}
