// `rm <channel>...`: removes channels, all or none, refusing one in use unless --force.

import { Channel, FerryError } from "../mod.ts";
// The one CLI import from inside src/ besides admin.ts: removing an incomplete segment must be
// judged under its init lock, which only the channel module holds.
import { unlinkIncomplete } from "../src/channel/observe.ts";
import { flag, type ParsedArgs, prefixOf, trustArgs } from "./args.ts";
import type { Command } from "./command.ts";
import { EXIT, usageError } from "./errors.ts";
import { withCommon } from "./options.ts";
import { print, toJson, unbuiltText } from "./output.ts";

function run(args: ParsedArgs): Promise<number> {
  const prefix = prefixOf(args);
  const trust = trustArgs(args);
  const names = args.positionals;
  if (names.length === 0) throw usageError("rm", "missing <channel>");
  const force = flag(args, "force");
  const incomplete = new Set<string>();
  // Every channel is checked before any is removed: either all go or none.
  for (const name of names) {
    if (force) {
      // Not required to be a readable ferry channel, but it must exist.
      if (!segmentExists(prefix, name)) Channel.stat(name, { prefix, ...trust }); // throws the right error
      continue;
    }
    const s = Channel.stat(name, { prefix, ...trust });
    if (s.state === "building") {
      throw new FerryError("InUse", `channel '${name}' is ${unbuiltText(s)}; rm --force removes it anyway`);
    }
    if (s.state === "incomplete") {
      incomplete.add(name);
      continue;
    }
    const alive = s.participants.filter((p) => p.alive);
    if (s.depth > 0 || s.inFlight > 0 || alive.length > 0) {
      const what = [];
      if (s.depth > 0) what.push(`${s.depth} queued`);
      if (s.inFlight > 0) what.push(`${s.inFlight} in flight`);
      if (alive.length > 0) what.push(`open in pid ${alive.map((p) => p.pid).join(", ")}`);
      throw new FerryError(
        "InUse",
        `channel '${name}' is in use (${what.join(", ")}); rm --force removes it anyway`,
      );
    }
  }
  // An incomplete one is judged again and removed under its init lock (an opener may have begun
  // rebuilding it since the check above: then it stays).
  const removed = names.filter((name) =>
    incomplete.has(name) ? unlinkIncomplete(name, { prefix, ...trust }) : Channel.unlink(name, { prefix })
  );
  if (flag(args, "json")) print(toJson({ prefix, removed }));
  else for (const name of removed) print(`removed '${name}'`);
  return Promise.resolve(EXIT.ok);
}

function segmentExists(prefix: string, name: string): boolean {
  try {
    Deno.statSync(`/dev/shm/${prefix}.${name}`);
    return true;
  } catch {
    return false;
  }
}

export const rm: Command = {
  name: "rm",
  usage: "rm <channel>...",
  summary: "remove channels",
  about: `Removes the channels' segments. A channel that holds messages, is open in a live process or
is being built by one is refused (exit 1) unless --force; every channel is checked before any is
removed. An incomplete one (its creator died while building it) is removed.
Processes that have it open keep working on the removed segment; new openers get a new one.
With --json: {"prefix", "removed": [names]}.`,
  options: withCommon({
    force: {
      type: "boolean",
      short: "f",
      help: "remove even if in use, holding messages, or not a ferry channel",
    },
  }),
  run,
};
