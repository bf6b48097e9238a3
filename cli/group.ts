// `group add|rm|ls|send`: memberships in the namespace's group table, and fan-out to every member.

import { FerryError, type GroupFullPolicy, Namespace } from "../mod.ts";
import { flag, milliseconds, type ParsedArgs, prefixOf, seconds, sendMode, str, trustArgs } from "./args.ts";
import type { Command } from "./command.ts";
import { EXIT, UsageError, usageError } from "./errors.ts";
import { onInterrupt } from "./open.ts";
import { TIMEOUT, withCommon } from "./options.ts";
import { print, printError, toJson } from "./output.ts";
import { argumentValue } from "./values.ts";

async function run(args: ParsedArgs): Promise<number> {
  const [action, name, third, ...rest] = args.positionals;
  const usage = (what: string) => usageError("group", what);
  if (rest.length > 0) throw usage(`unexpected argument '${rest[0]}'`);
  const prefix = prefixOf(args);
  const json = flag(args, "json");
  const hold = flag(args, "hold");
  const expiry = seconds(str(args, "expiry"));
  if ((hold || expiry !== undefined) && action !== "add") throw usage("--hold and --expiry are for add");
  if (hold && expiry !== undefined) throw usage("--hold and --expiry exclude each other");
  const onFull = str(args, "on-full");
  if (onFull !== undefined && action !== "send") throw usage("--on-full is for send");
  if (flag(args, "string") && action !== "send") throw usage("--string is for send");
  if (onFull !== undefined && onFull !== "wait" && onFull !== "skip") {
    throw new UsageError(`--on-full must be "wait" or "skip", not '${onFull}'`);
  }
  // Checked before the namespace is connected: a usage error leaves nothing behind.
  const value = action === "send" && third !== undefined
    ? argumentValue("group send", third, flag(args, "string"))
    : undefined;
  using ns = Namespace.connect({ prefix, ...trustArgs(args) });
  switch (action) {
    case "add":
      if (hold) {
        if (name === undefined || third === undefined) throw usage("add needs <group> <channel>");
        return await holdMembership(ns, name, third, json);
      }
      /* falls through */
    case "rm": {
      if (name === undefined || third === undefined) throw usage(`${action} needs <group> <channel>`);
      const changed = action === "add"
        ? ns.groupAdd(name, third, expiry === undefined ? {} : { expiry })
        : ns.groupDiscard(name, third);
      if (json) print(toJson({ prefix, group: name, channel: third, action, changed }));
      else {
        const what = action === "add"
          ? (changed ? "added to" : "refreshed in")
          : changed
          ? "removed from"
          : "not in";
        print(`'${third}' ${what} group '${name}'`);
      }
      return EXIT.ok;
    }
    case "ls": {
      if (name === undefined || third !== undefined) throw usage("ls needs <group>");
      const members = ns.groupMembers(name);
      if (json) print(toJson({ prefix, group: name, members }));
      else print(members.length === 0 ? `group '${name}' has no members` : members.join("\n"));
      return EXIT.ok;
    }
    case "send": {
      if (name === undefined || third === undefined) throw usage("send needs <group> <json>");
      const mode = sendMode(str(args, "mode"));
      const timeout = milliseconds(str(args, "timeout"));
      const result = await ns.sendGroup(name, value, {
        mode,
        timeout,
        onFull: onFull as GroupFullPolicy | undefined,
      });
      // sendGroup finds nothing to send to as success; for a user who meant to reach someone it
      // is a failure (likely a mistyped group or prefix), said before anything is printed.
      if (result.sent.length + result.skipped.length + result.failed.length === 0) {
        throw new FerryError(
          "GroupEmpty",
          `group '${name}' has no members in namespace '${prefix}': nothing was sent ` +
            "(group add <group> <channel> adds one)",
        );
      }
      if (json) print(toJson({ prefix, mode, ...result }));
      else {
        print(
          `sent to ${result.sent.length} member(s)${result.sent.length ? ": " + result.sent.join(", ") : ""}`,
        );
        if (result.skipped.length) print(`skipped (full): ${result.skipped.join(", ")}`);
        for (const f of result.failed) {
          print(`failed: ${f.channel}: ${f.error instanceof Error ? f.error.message : f.error}`);
        }
      }
      if (result.failed.length > 0) {
        // The result above has each member's error; stderr gets the one line every failure gets.
        const members = result.sent.length + result.skipped.length + result.failed.length;
        const names = result.failed.map((f) => f.channel).join(", ");
        printError(`group send: ${result.failed.length} of ${members} members failed (${names})`);
        return EXIT.runtime;
      }
      return EXIT.ok;
    }
    default:
      throw usage(action === undefined ? "missing add|rm|ls|send" : `unknown action '${action}'`);
  }
}

/**
 * `group add --hold`: a process membership, held until this command is interrupted (Ctrl-C,
 * SIGTERM: it ends the membership and exits 0) or killed (the next look at the group ends it).
 */
async function holdMembership(ns: Namespace, group: string, channel: string, json: boolean): Promise<number> {
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => stop = resolve);
  // Listening before the line is printed: whoever reads it may signal at once.
  const removeListeners = onInterrupt(stop);
  try {
    const changed = ns.groupAdd(group, channel, { lifetime: "process" });
    if (json) {
      print(toJson({ prefix: ns.prefix, group, channel, action: "add", changed, lifetime: "process" }));
    } else print(`'${channel}' held in group '${group}' until this command ends (Ctrl-C)`);
    await stopped;
  } finally {
    removeListeners();
  }
  return EXIT.ok; // the caller's `using` closes the namespace, ending the membership
}

export const group: Command = {
  name: "group",
  usage: "group add|rm <group> <channel> | group ls <group> | group send <group> <json>",
  summary: "group memberships (add, rm, ls) and fan-out to every member (send)",
  about: `Groups live in the namespace's group table. A membership made by add outlives this command: it
expires after --expiry seconds (default 86400) unless added again, or ends with rm. With --hold, add
makes a membership that lasts only while this command runs: it prints one line and waits; Ctrl-C or
SIGTERM ends the membership and exits 0, and if the command is killed the membership ends too (the
next look at the group finds it gone). Run it beside the process that receives on the channel.
send delivers <json> (a JSON value, or with --string the text as a string) as one copy to every
member channel and never creates one: a member without a channel
fails (channel not found). A full member is waited for up to --timeout and then skipped (ack mode,
or whenever --timeout is given), or skipped at once (async mode without --timeout); --on-full
chooses. In ack mode send waits for every copy to be released. Exit 1 if any member failed (one
line on stderr names them), or if the group has no members (nothing is sent).
With --json: one document with what was done (members for ls; sent, skipped, failed for send).`,
  options: withCommon({
    expiry: {
      type: "string",
      arg: "<seconds>",
      help: "for add: seconds the membership lasts (default 86400; 0: forever)",
    },
    hold: { type: "boolean", help: "for add: hold the membership only while this command runs" },
    mode: { type: "string", arg: "ack|async", help: "for send: ack (default) or async" },
    string: { type: "boolean", help: "for send: send <json> as a string instead of JSON" },
    "on-full": {
      type: "string",
      arg: "wait|skip",
      help: "for send: wait for room in a full member (up to --timeout) or skip it",
    },
    timeout: {
      ...TIMEOUT,
      help: "for send: longest wait for room in a full member, then for the acks, in ms (default 5000)",
    },
  }),
  run,
};
