// Private channels of the patterns (reply channels, server control channels, subscription inboxes):
// one reader each, named `<base>!<role>.<pid>.<random>` so that anyone can tell whose it is, and
// reclaimed without gc by whoever notices that the owner named in it is dead.

import { Channel } from "../channel/channel.ts";
import type { OpenOptions } from "../channel/options.ts";
import type { ChannelStat } from "../channel/observe.ts";
import { ChannelNotFoundError, FerryError, InvalidNameError } from "../errors.ts";

const SHM_DIR = "/dev/shm";
/**
 * A private channel with no participant of its owner's pid may be one whose owner is between
 * creating it and joining it: it is judged only once it is this old.
 */
const CREATION_GRACE_MS = 2000;
/** Pattern names (services, topics) leave room for the private suffix within the 100-char limit. */
const BASE_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** Checks a service or topic name: 1 to 64 letters, digits or `. _ -` (`!` marks private channels). */
export function checkBase(what: string, value: unknown): string {
  if (typeof value !== "string" || !BASE_PATTERN.test(value)) {
    throw new InvalidNameError(
      `${what} ${JSON.stringify(value)} is not valid: use 1 to 64 letters, digits or . _ - ` +
        '("!" is kept for the channels ferry makes for it)',
    );
  }
  return value;
}

/** A fresh private channel name for this process: `<base>!<role>.<pid>.<8 hex>`. */
export function privateName(base: string, role: string): string {
  return `${base}!${role}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}`;
}

/** The pid a private channel's name says owns it, or undefined for a name that is not private. */
export function ownerOf(name: string): number | undefined {
  const m = /!\w+\.(\d+)\.[0-9a-f]{8}$/.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Whether the owner of a private channel may still use it: it has a live participant of the pid
 * its name gives. A channel none of whose participants has that pid is judged dead only after a
 * grace period (its owner may be between creating and joining it).
 */
export function ownerAlive(stat: ChannelStat): boolean {
  const pid = ownerOf(stat.name);
  if (pid === undefined) return true;
  const mine = stat.participants.filter((p) => p.pid === pid);
  if (mine.some((p) => p.alive)) return true;
  if (mine.length > 0) return false;
  // Its participant is gone (closed, or dead and already recovered), or not there yet.
  if (Date.now() - stat.createdAt.getTime() >= CREATION_GRACE_MS) return false;
  return processExists(pid);
}

/** Whether a process `pid` exists now; true when this process may not look (--allow-read /proc). */
function processExists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (error) {
    return !(error instanceof Deno.errors.NotFound);
  }
}

/**
 * Opens `name` if it exists (taking its creation settings), else creates it with `creation`. Pattern
 * channels are created small rather than with the channel defaults (100 x 1 MiB), and a later opener
 * must not fail because it would have chosen other sizes.
 */
export function openShared<T>(
  name: string,
  options: OpenOptions<T>,
  creation: { capacity: number; maxMessageSize: number },
): Channel<T> {
  try {
    return Channel.open<T>(name, { ...options, create: false });
  } catch (error) {
    if (!(error instanceof ChannelNotFoundError)) throw error;
  }
  return Channel.open<T>(name, { ...options, ...creation });
}

/**
 * A handle for writing frames to another process's private channel (a reply channel, a control
 * channel, an inbox), which must exist: its owner made it, and a missing one means the owner is
 * gone (ChannelNotFoundError, or another FerryError). It may have the most messages written and
 * not yet released that a sender can (32, against 16 by default): a publisher or a streaming
 * server writes bursts to one reader, and waits for room each time it gets that far ahead.
 */
export function openPeer(name: string, prefix: string): Channel<Uint8Array> {
  return Channel.open<Uint8Array>(name, { prefix, codec: "raw", mode: "async", slots: 32, create: false });
}

/**
 * Removes the private channels under `prefix` whose names start with `start` and whose owner is
 * dead. Returns their names. Needs read access to /dev/shm: without it nothing is swept (the other
 * reclaimers, servers and publishers, still are).
 */
export function sweepPrivate(prefix: string, start: string): string[] {
  const reclaimed: string[] = [];
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync(SHM_DIR);
  } catch {
    return reclaimed; // no --allow-read: leave it to the reclaimers that hold handles
  }
  const head = `${prefix}.${start}`;
  for (const entry of entries) {
    if (!entry.name.startsWith(head)) continue;
    const name = entry.name.slice(prefix.length + 1);
    if (ownerOf(name) === undefined) continue;
    if (reclaimIfOrphaned(name, prefix)) reclaimed.push(name);
  }
  return reclaimed;
}

/** Removes the private channel `name` if its owner is dead; true if it did. */
export function reclaimIfOrphaned(name: string, prefix: string): boolean {
  try {
    if (ownerAlive(Channel.stat(name, { prefix }))) return false;
    return Channel.unlink(name, { prefix });
  } catch (error) {
    if (error instanceof FerryError) return false; // gone already, or not ours to judge
    throw error;
  }
}
