// `tail <channel>`: every message as it comes, until Ctrl-C or SIGTERM (then exit 0).

import { channelArg, flag, type ParsedArgs } from "./args.ts";
import type { Command } from "./command.ts";
import { EXIT } from "./errors.ts";
import { onInterrupt, openArgs, openChannel } from "./open.ts";
import { CREATION, RAW, withCommon } from "./options.ts";
import { print } from "./output.ts";
import { messageLine, RECV_OUTPUT } from "./recv.ts";

async function run(args: ParsedArgs): Promise<number> {
  const name = channelArg("tail", args);
  const json = flag(args, "json");
  const raw = flag(args, "raw");
  const channel = openChannel("tail", openArgs("tail", args, name), { autoRelease: false });
  // Closing ends the for-await below. The listener can only run while the loop awaits the next
  // message: printing and releasing one is synchronous, so nothing printed is handed back.
  const removeListeners = onInterrupt(() => channel.close());
  try {
    for await (const message of channel) {
      print(messageLine(message, json, raw));
      message.release();
    }
  } finally {
    removeListeners();
    channel.close();
  }
  return EXIT.ok;
}

export const tail: Command = {
  name: "tail",
  usage: "tail <channel>",
  summary: "print messages as they come until Ctrl-C",
  about: `Receives and prints every message until Ctrl-C or SIGTERM, then leaves the channel cleanly
and exits 0. The channel must exist unless --create is given.
${RECV_OUTPUT}`,
  options: withCommon({ raw: RAW, ...CREATION }),
  run,
};
