// `send <channel> [<json> | -]`: one value, or each line of stdin, in ack or async mode.

import { type Channel, FerryError, TimeoutError } from "../mod.ts";
import { channelArg, flag, milliseconds, type ParsedArgs, seconds, sendMode, str } from "./args.ts";
import type { Command } from "./command.ts";
import { EXIT, UsageError, usageError } from "./errors.ts";
import { openArgs, openChannel } from "./open.ts";
import { CREATION, TIMEOUT, withCommon } from "./options.ts";
import { print, toJson } from "./output.ts";
import { argumentValue, stdinValues } from "./values.ts";

async function run(args: ParsedArgs): Promise<number> {
  const name = channelArg("send", args, 1);
  let source = args.positionals[1];
  if (source === undefined) {
    if (Deno.stdin.isTerminal()) {
      throw usageError("send", "give a JSON value (text with --string), or - to send each line of stdin");
    }
    source = "-";
  }
  const mode = sendMode(str(args, "mode"));
  const timeout = milliseconds(str(args, "timeout"));
  const expiry = seconds(str(args, "expiry"));
  const o = openArgs("send", args, name);
  const fromStdin = source === "-";
  const asString = flag(args, "string");
  // Checked before the channel is opened: a bad value must not create one (--create).
  const values = fromStdin
    ? stdinValues("send", asString)
    : [{ line: 0, value: argumentValue("send", source, asString) }];
  const channel = openChannel("send", o, {
    mode,
    ...(timeout === undefined ? {} : { timeout }),
    ...(expiry === undefined ? {} : { expiry }),
  });
  let sent = 0;
  let line = 0;
  try {
    for await (const next of values) {
      line = next.line;
      await channel.send(next.value);
      sent++;
    }
  } catch (error) {
    if (mode === "ack" && error instanceof TimeoutError && !openElsewhere(channel)) {
      // The newcomer's first send: nobody could have received it. Say what to do instead.
      error.message += `; no other process has '${name}' open: start a receiver first (recv or tail), ` +
        "or send with --mode async to leave the message queued";
    }
    // What already left matters to whoever reruns the rest.
    if (fromStdin && error instanceof UsageError) error.message += `; ${sent} sent before it`;
    else if (fromStdin && error instanceof FerryError) {
      error.message += ` (line ${line} of stdin; ${sent} sent before it)`;
    }
    throw error;
  } finally {
    channel.close();
  }
  if (flag(args, "json")) {
    print(toJson({ channel: name, prefix: o.prefix, mode, sent }));
  } else {
    const how = mode === "ack" ? "each released by a receiver" : "queued";
    print(`sent ${sent} message${sent === 1 ? "" : "s"} to '${name}' (${mode}: ${how})`);
  }
  return EXIT.ok;
}

/** Whether a live process other than this one has the channel open (a possible receiver). */
function openElsewhere(channel: Channel): boolean {
  try {
    return channel.stat().participants.some((p) => p.alive && p.pid !== Deno.pid);
  } catch {
    return true; // cannot tell: keep the library's own words
  }
}

export const send: Command = {
  name: "send",
  usage: "send <channel> [<json> | -]",
  summary: "send one JSON value, or each line of stdin with -",
  about: `Sends <json> as one JSON value (42, true, '"hello"', '{"id":1}'); text that is not JSON is a usage
error naming the column where it stops being JSON. With --string the text itself is sent as a string
(hello). With -, or no value and stdin not a terminal, each non-empty line of stdin is one message
(JSON, or a string with --string), sent in turn; a bad line stops there (exit 2), the lines before
it were sent. A value starting with - other than a number needs -- before it.
ack mode waits, per message, until a receiver released it (a message no receiver released
within --timeout is withdrawn: exit 1); async mode until it is queued.
The channel must exist unless --create is given.
Output: "sent N messages to '<channel>'"; with --json {"channel", "prefix", "mode", "sent"}.`,
  options: withCommon({
    mode: {
      type: "string",
      arg: "ack|async",
      help: "ack (default): wait for a receiver to release it; async: queued",
    },
    timeout: {
      ...TIMEOUT,
      help: "longest wait for room, then for the ack, in ms (default 5000; inf: none)",
    },
    expiry: {
      type: "string",
      arg: "<s>",
      help: "seconds before an unreceived message is dropped (default 60; 0: never)",
    },
    string: { type: "boolean", help: "send the value, or each stdin line, as a string instead of JSON" },
    ...CREATION,
  }),
  run,
};
