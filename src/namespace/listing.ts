// Administration over a whole namespace: list the channels under a prefix and remove the abandoned
// ones. Both read /dev/shm (segments are `/dev/shm/<prefix>.<name>`), so they need --allow-read
// there (and --allow-ffi for the core); gc also unlinks. Each channel is read as Channel.stat does,
// which observes without joining (listing never shows up as a participant) and never waits: a
// channel being built, or left unfinished by a dead creator, is listed with that state.

import * as channel from "../channel/observe.ts";
import type { ChannelStat } from "../channel/observe.ts";
import { checkPrefix, NAME_PATTERN } from "../channel/options.ts";
import {
  ChannelNotFoundError,
  FerryError,
  IncompatibleChannelError,
  PermissionDeniedError,
} from "../errors.ts";
import type { TrustOptions } from "../open.ts";

const SHM_DIR = "/dev/shm";

/** A segment under the prefix that is not a channel this ferry can read. */
export interface SkippedSegment {
  /** Channel name: the segment is `/dev/shm/<prefix>.<name>`. */
  name: string;
  /**
   * The error's code: "IncompatibleChannel" (not ferry's, another layout version, truncated, damaged
   * while in use), "ForeignSegment" (another user's file, more access than `permissions`, a link)
   * or "PermissionDenied".
   */
  code: string;
  /** Why, as the error said it. */
  reason: string;
}

/** Everything found under one prefix: readable channels and the segments that could not be read. */
export interface ChannelScan {
  /** The namespace scanned. */
  prefix: string;
  /** The stat of each channel, sorted by name. */
  channels: ChannelStat[];
  /** Segments under the prefix that are not channels this process can read. */
  skipped: SkippedSegment[];
}

/** Options of scanChannels and listChannels: which segments to trust (as for Channel.open). */
export type ScanOptions = TrustOptions;

/** Options of gc. */
export interface GcOptions extends ScanOptions {
  /** Report what would be removed, remove nothing. Default false. */
  dryRun?: boolean;
}

/** Channel names under `prefix` in /dev/shm, sorted; entries whose rest is not a valid name are left out. */
function namesUnder(prefix: string): string[] {
  const start = `${prefix}.`;
  const names: string[] = [];
  for (const entry of Deno.readDirSync(SHM_DIR)) {
    if (!entry.isFile || !entry.name.startsWith(start)) continue;
    const name = entry.name.slice(start.length);
    if (NAME_PATTERN.test(name)) names.push(name);
  }
  return names.sort();
}

/**
 * Every channel under `prefix` with its stat (channels being built or left unfinished included,
 * with their `state`), and the segments that are not readable ferry channels (foreign files, other
 * layout versions, other users' segments). Segments that vanish while being read are left out.
 * Never waits for one channel.
 */
export function scanChannels(prefix = "ferry", options: ScanOptions = {}): ChannelScan {
  checkPrefix(prefix);
  const trust = { permissions: options.permissions, trustedOwners: options.trustedOwners };
  const channels: ChannelStat[] = [];
  const skipped: SkippedSegment[] = [];
  for (const name of namesUnder(prefix)) {
    try {
      channels.push(channel.stat(name, { prefix, ...trust }));
    } catch (error) {
      if (error instanceof ChannelNotFoundError) continue; // removed since readDir
      if (error instanceof IncompatibleChannelError || error instanceof PermissionDeniedError) {
        skipped.push({ name, code: error.code, reason: error.message });
        continue;
      }
      throw error;
    }
  }
  return { prefix, channels, skipped };
}

/**
 * The stat of every channel under `prefix`, sorted by name. Segments that are not ferry channels
 * (or not readable by this user) and segments removed meanwhile are skipped; `scanChannels` reports them.
 */
export function listChannels(prefix = "ferry", options: ScanOptions = {}): ChannelStat[] {
  return scanChannels(prefix, options).channels;
}

/**
 * True when nobody can still use the channel and it holds nothing: what gc removes. A channel left
 * unfinished by a dead creator is abandoned; one being built is not.
 */
export function isAbandoned(stat: ChannelStat): boolean {
  if (stat.state !== "ready") return stat.state === "incomplete";
  return stat.depth === 0 && stat.inFlight === 0 && stat.participants.every((p) => !p.alive);
}

/**
 * Removes the channels under `prefix` whose participants are all dead or gone and that hold nothing
 * (depth 0 and nothing in flight), and those whose creator died while building them (state
 * "incomplete"); returns their names, sorted. A channel with a live participant, a queued message
 * or an unreleased one is never removed, nor one being built by a live process, nor a segment that
 * is not a ferry channel (or not trusted: see ScanOptions).
 *
 * Each built channel is checked just before it is unlinked; a process that opens it in between
 * keeps working on the removed segment while later openers get a new one (the core has no atomic
 * "unlink if idle"). An incomplete one is checked and unlinked under its init lock, which any
 * process rebuilding it holds, so no builder is left building a segment nobody can find.
 */
export function gc(prefix = "ferry", options: GcOptions = {}): string[] {
  const trust = { permissions: options.permissions, trustedOwners: options.trustedOwners };
  const removed: string[] = [];
  for (const stat of scanChannels(prefix, trust).channels) {
    if (options.dryRun) {
      if (isAbandoned(stat)) removed.push(stat.name);
      continue;
    }
    try {
      if (stat.state === "incomplete") {
        // Judged again and removed under the segment's init lock: an opener that started
        // rebuilding it since holds that lock, and then it stays.
        if (channel.unlinkIncomplete(stat.name, { prefix, ...trust })) removed.push(stat.name);
        continue;
      }
      if (stat.state !== "ready") continue;
      // Undo what dead participants left first (an ack outcome whose sender died counts as in
      // flight until someone does), then judge the channel as it is now.
      channel.recover(stat.name, { prefix, ...trust });
      const now = channel.stat(stat.name, { prefix, ...trust });
      if (now.state === "ready" && isAbandoned(now) && channel.unlink(stat.name, { prefix })) {
        removed.push(stat.name);
      }
    } catch (error) {
      if (error instanceof FerryError) continue; // gone or changed: not ours to judge now
      throw error;
    }
  }
  return removed;
}
