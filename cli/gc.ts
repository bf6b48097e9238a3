// `gc`: removes the channels under a prefix that nobody alive uses and that hold nothing.

import { gc as collect } from "../mod.ts";
import { flag, noPositionals, type ParsedArgs, prefixOf, trustArgs } from "./args.ts";
import type { Command } from "./command.ts";
import { EXIT } from "./errors.ts";
import { withCommon } from "./options.ts";
import { print, toJson } from "./output.ts";

function run(args: ParsedArgs): Promise<number> {
  noPositionals("gc", args);
  const prefix = prefixOf(args);
  const dryRun = flag(args, "dry-run");
  const removed = collect(prefix, { dryRun, ...trustArgs(args) });
  if (flag(args, "json")) {
    print(toJson({ prefix, dryRun, removed }));
  } else if (removed.length === 0) {
    print(`nothing to remove under prefix '${prefix}'`);
  } else {
    const verb = dryRun ? "would remove" : "removed";
    print(
      `${verb} ${removed.length} abandoned channel${removed.length === 1 ? "" : "s"}: ${removed.join(", ")}`,
    );
  }
  return Promise.resolve(EXIT.ok);
}

export const gc: Command = {
  name: "gc",
  usage: "gc [--prefix <prefix>]",
  summary: "remove abandoned channels (every participant dead or gone, nothing held)",
  about: `Removes the channels under the prefix that nobody alive has open and that hold nothing (depth 0,
nothing in flight), and those whose creator died while building them. Channels with queued
messages are kept (queues outlive their senders), and so are channels being built.
With --json: {"prefix", "dryRun", "removed": [names]}.`,
  options: withCommon({ "dry-run": { type: "boolean", help: "only list what would be removed" } }),
  run,
};
