// A client's reply channel (`<service>!reply.<pid>.<random>`) and what waits on it: replies and
// stream frames are routed to their call or stream by correlation id. Calls read their reply when
// their request's ack settles; streams need frames as they come, so a pump receives while any is
// open. Credits and cancels go from here to the serving process's control channel.

import { Channel } from "../../channel/channel.ts";
import { ChannelClosedError, ChannelNotFoundError, FerryError, TimeoutError } from "../../errors.ts";
import type { Message } from "../../message.ts";
import { type Frame, FrameKind, FrameWriter, readFrame } from "../headers.ts";
import { openPeer, privateName } from "../private_channels.ts";
import { POLL_MS } from "./wire.ts";

/** What waits for the frames of one correlation id: a call (its reply) or a stream (its frames). */
export interface ReplyWaiter {
  /** A frame for it arrived. */
  deliver(frame: Frame): void;
  /** Something else changed (the client closed): look again. */
  wake?(): void;
}

/** The reply channel of one client. */
export class ReplyInbox {
  /** The channel's name (requests carry it as their reply-to). */
  readonly name: string;
  #prefix: string;
  #channel: Channel<Uint8Array>;
  #writer = new FrameWriter();
  #waiting = new Map<number, ReplyWaiter>();
  #lastId = 0;
  #controls = new Map<string, Channel<Uint8Array>>();
  /** Streams given up before the server said which it is: cancelled when its StreamStart comes. */
  #abandoned = new Set<number>();
  #streams = 0;
  #pumping: Promise<void> | null = null;
  /** The pump's receive in progress: settles once what it took is routed. */
  #round: Promise<boolean> | null = null;
  #closed = false;

  /** Creates the reply channel, `capacity` frames of up to `maxMessageSize` bytes. */
  constructor(service: string, prefix: string, capacity: number, maxMessageSize: number) {
    this.#prefix = prefix;
    this.name = privateName(service, "reply");
    this.#channel = Channel.open<Uint8Array>(this.name, {
      prefix,
      codec: "raw",
      mode: "async",
      capacity,
      maxMessageSize,
    });
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** A correlation id for the next call or stream (1 to 2^32 - 1, then round again). */
  nextId(): number {
    this.#lastId = this.#lastId >= 0xffff_ffff ? 1 : this.#lastId + 1;
    return this.#lastId;
  }

  /** Frames with correlation id `id` go to `waiter` until forget(id). */
  expect(id: number, waiter: ReplyWaiter): void {
    this.#waiting.set(id, waiter);
  }

  /** Frames with correlation id `id` are dropped from now on (the call ended or was given up). */
  forget(id: number): void {
    this.#waiting.delete(id);
  }

  /** Routes every frame queued now to the call or stream it answers. */
  drain(): void {
    if (this.#closed) return;
    for (;;) {
      const batch = this.#channel.tryRecvMany(64);
      if (batch.length === 0) return;
      for (const msg of batch) this.#route(msg.bytes);
    }
  }

  #route(bytes: Uint8Array): void {
    let frame: Frame;
    try {
      frame = readFrame(bytes);
    } catch {
      return; // not ours to read
    }
    const waiter = this.#waiting.get(frame.id);
    if (waiter !== undefined) return waiter.deliver(frame);
    if (frame.kind === FrameKind.StreamStart && this.#abandoned.delete(frame.id)) {
      this.sendControl(frame.data as string, FrameKind.Cancel, frame.id);
    }
    // Else the answer to a call given up on (timeout, abort): dropped.
  }

  /** A stream `id` left before its server said which it is: cancel it when the server does. */
  abandon(id: number): void {
    this.#abandoned.add(id);
  }

  /** A stream started: frames are received as they come until streamClosed(). */
  streamOpened(): void {
    this.#streams++;
    this.#pumping ??= this.#pump();
  }

  /** A stream's server let go of it: no more frames of it will come. */
  streamClosed(): void {
    this.#streams--;
  }

  /** Receives frames for streams while any is open (calls need none: their ack says when). */
  async #pump(): Promise<void> {
    try {
      while (this.#streams > 0 && !this.#closed) {
        this.#round = this.#receiveRound();
        if (!await this.#round) return;
      }
    } finally {
      this.#pumping = null;
      this.#round = null;
    }
  }

  /** One receive of the pump: routes what came; false once the channel is closed. */
  async #receiveRound(): Promise<boolean> {
    let batch: Message<Uint8Array>[];
    try {
      batch = await this.#channel.recvMany(64, { timeout: POLL_MS });
    } catch (error) {
      if (error instanceof TimeoutError) return true;
      if (error instanceof ChannelClosedError) return false;
      throw error;
    }
    for (const msg of batch) this.#route(msg.bytes);
    return true;
  }

  /**
   * Routes every frame that arrived by now: those queued, and those the pump took but has not
   * routed yet (its receive and a request's ack can wake in the same turn, in either order). Waits
   * for the pump's receive in progress, up to POLL_MS: call it only when a frame must be there.
   */
  async settle(): Promise<void> {
    this.drain();
    await this.#round?.catch(() => {});
  }

  /** Sends a credit or cancel to a server's control channel; a server gone is nothing to tell. */
  sendControl(control: string, kind: number, id: number, count?: number): void {
    if (this.#closed) return;
    let ch = this.#controls.get(control);
    try {
      if (ch === undefined) {
        ch = openPeer(control, this.#prefix);
        this.#controls.set(control, ch);
      }
      const bytes = this.#writer.encode({ kind, id, replyTo: this.name, count });
      ch.send(bytes).catch(() => {}); // copied before send returns; a full control channel waits
    } catch (error) {
      if (!(error instanceof FerryError)) throw error;
      if (error instanceof ChannelNotFoundError) this.#controls.delete(control);
    }
  }

  /** Wakes every waiter (they find the inbox closed), closes the handles and removes the channel. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#waiting.values()) waiter.wake?.();
    this.#channel.close();
    for (const ch of this.#controls.values()) ch.close();
    this.#controls.clear();
    Channel.unlink(this.name, { prefix: this.#prefix });
  }
}
