// `stat <channel>`: what one channel holds now, read without joining it or waiting.

import { Channel } from "../mod.ts";
import { channelArg, flag, type ParsedArgs, prefixOf, trustArgs } from "./args.ts";
import type { Command } from "./command.ts";
import { EXIT } from "./errors.ts";
import { withCommon } from "./options.ts";
import { formatAge, formatBytes, formatTime, print, statJson, toJson, unbuiltText } from "./output.ts";

function run(args: ParsedArgs): Promise<number> {
  const name = channelArg("stat", args);
  const s = Channel.stat(name, { prefix: prefixOf(args), ...trustArgs(args) });
  if (flag(args, "json")) {
    print(toJson(statJson(s), 2));
    return Promise.resolve(EXIT.ok);
  }
  if (s.state !== "ready") {
    print(`${"channel".padEnd(14)}${s.name}  (/dev/shm/${s.prefix}.${s.name})`);
    print(`${"state".padEnd(14)}${unbuiltText(s)}`);
    print(`${"memory".padEnd(14)}${formatBytes(s.bytes)} (the file's size)`);
    print(`${"changed".padEnd(14)}${formatTime(s.createdAt)}  (${formatAge(s.createdAt)})`);
    return Promise.resolve(EXIT.ok);
  }
  const alive = s.participants.filter((p) => p.alive).length;
  const rows: [string, string][] = [
    ["channel", `${s.name}  (/dev/shm/${s.prefix}.${s.name})`],
    ["created", `${formatTime(s.createdAt)}  (${formatAge(s.createdAt)})`],
    ["capacity", `${s.capacity} messages of at most ${formatBytes(s.maxMessageSize)}`],
    [
      "memory",
      `${formatBytes(s.bytes)} reserved, ${formatBytes(s.resident)} resident; ` +
      `messages over 96 B may take ${formatBytes(s.memory)}`,
    ],
    ["depth", `${s.depth} queued, not yet received`],
    ["in flight", `${s.inFlight} received, not yet released`],
    ["sent", `${s.counters.sent}`],
    ["received", `${s.counters.received}`],
    ["released", `${s.counters.released}`],
    ["expired", `${s.counters.expired}`],
    ["full", `${s.counters.full}  (sends that found no room)`],
    ["redelivered", `${s.counters.redelivered}`],
    ["participants", `${s.participants.length} (${alive} alive, ${s.participants.length - alive} dead)`],
  ];
  for (const [key, value] of rows) print(`${key.padEnd(14)}${value}`);
  for (const p of s.participants) {
    const state = (p.alive ? "alive" : "dead").padEnd(7);
    print(
      `  pid ${String(p.pid).padEnd(10)}${state}${
        p.role.padEnd(10)
      }${p.inFlight} of its sent messages in flight`,
    );
  }
  return Promise.resolve(EXIT.ok);
}

export const stat: Command = {
  name: "stat",
  usage: "stat <channel>",
  summary: "depth, counters and participants of one channel",
  about: `Shows what the channel holds now: capacity, memory, depth (queued), in flight (received, not
released), counters (sent, received, released, expired, full, redelivered), creation time and
participants (pid, alive or dead, role, its sent messages in flight), and memory reserved and
resident. Reading it does not join the channel and never waits: a channel another process is
building shows "being built" (with the builder's pid), one whose creator died while building it
"incomplete".
With --json, one JSON document: the library's ChannelStat (createdAt as an ISO string).`,
  options: withCommon(),
  run,
};
