// `ls`: every channel under a prefix as one table; unreadable segments listed after it, never fatal.

import { scanChannels } from "../mod.ts";
import { flag, noPositionals, type ParsedArgs, prefixOf, trustArgs } from "./args.ts";
import type { Command } from "./command.ts";
import { EXIT } from "./errors.ts";
import { withCommon } from "./options.ts";
import { formatBytes, formatParticipants, formatTime, print, statJson, table, toJson } from "./output.ts";

const HEADER = [
  "NAME",
  "STATE",
  "DEPTH",
  "IN-FLIGHT",
  "CAPACITY",
  "SENT",
  "RECEIVED",
  "RELEASED",
  "EXPIRED",
  "FULL",
  "REDELIVERED",
  "MEMORY",
  "CREATED",
  "PARTICIPANTS",
];
/** The numbers and the memory column read better right-aligned. */
const RIGHT = HEADER.map((_, i) => i >= 2 && i <= 11);

function run(args: ParsedArgs): Promise<number> {
  noPositionals("ls", args);
  const scan = scanChannels(prefixOf(args), trustArgs(args));
  if (flag(args, "json")) {
    print(toJson({ prefix: scan.prefix, channels: scan.channels.map(statJson), skipped: scan.skipped }, 2));
    return Promise.resolve(EXIT.ok);
  }
  if (scan.channels.length === 0) {
    print(`no channels under prefix '${scan.prefix}'`);
  } else {
    const rows = scan.channels.map((s) =>
      s.state === "ready"
        ? [
          s.name,
          s.state,
          ...[s.depth, s.inFlight, s.capacity].map(String),
          ...[s.counters.sent, s.counters.received, s.counters.released].map(String),
          ...[s.counters.expired, s.counters.full, s.counters.redelivered].map(String),
          formatBytes(s.bytes),
          formatTime(s.createdAt),
          formatParticipants(s),
        ]
        : [
          s.name,
          s.state,
          ...Array(9).fill("-"),
          formatBytes(s.bytes),
          formatTime(s.createdAt),
          s.builder ? `${s.builder}(builder)` : "-",
        ]
    );
    for (const line of table(HEADER, rows, RIGHT)) print(line);
  }
  for (const s of scan.skipped) print(`skipped ${s.name}: ${s.reason.replace(/\s*\n\s*/g, " ")}`);
  return Promise.resolve(EXIT.ok);
}

export const ls: Command = {
  name: "ls",
  usage: "ls [--prefix <prefix>]",
  summary: "every channel under a prefix, as a table",
  about: `Lists the channels under the prefix (/dev/shm/<prefix>.*) with state, depth, counters, memory,
creation time and participants ("(dead)" after a dead one's pid). STATE is "ready", "building"
(another process is making it: never waited for) or "incomplete" (its creator died while making
it; gc removes it). Segments there that are not readable ferry channels (another user's file, a
mode wider than --permissions, not ferry's) are listed after the table as "skipped".
With --json, one JSON document: {"prefix", "channels": [ChannelStat...], "skipped": [{"name", "code", "reason"}]}.`,
  options: withCommon(),
  run,
};
