// `recv <channel> [--count N]`: N messages, each printed as a JSON line and released once printed.
// Also the message line format that tail shares.

import { ChannelClosedError, DecodeError, FerryError, type Message } from "../mod.ts";
import { channelArg, flag, integer, milliseconds, type ParsedArgs, str } from "./args.ts";
import type { Command } from "./command.ts";
import { EXIT } from "./errors.ts";
import { onInterrupt, openArgs, openChannel } from "./open.ts";
import { CREATION, RAW, TIMEOUT, withCommon } from "./options.ts";
import { base64, print, toJson } from "./output.ts";

/** The output section of recv's and tail's help. */
export const RECV_OUTPUT =
  `Output: each message's data as one JSON line (bigint as a number or string, bytes as an array
of numbers, Map as an object). With --json, each message as one JSON line
{"seq", "sender", "redelivered", "data"}. With --raw, data is the encoded payload as base64,
for messages sent with another codec.
A message is released only after its line is written: an ack sender's send resolves then.`;

/** One output line for a message: its data as JSON, or with --json the message with its metadata. */
export function messageLine(message: Message, json: boolean, raw: boolean): string {
  let data: unknown;
  if (raw) {
    data = base64(message.bytes);
  } else {
    try {
      data = message.data;
    } catch (error) {
      if (error instanceof DecodeError) {
        throw new DecodeError(
          `${error.message}; the message was sent with another codec: --raw prints its bytes as base64 ` +
            "(it was not released, so it goes back to the channel)",
        );
      }
      throw error;
    }
  }
  if (!json) return toJson(data);
  return toJson({ seq: message.seq, sender: message.sender, redelivered: message.redelivered, data });
}

async function run(args: ParsedArgs): Promise<number> {
  const name = channelArg("recv", args);
  const count = integer("count", str(args, "count"), 1) ?? 1;
  const timeout = milliseconds(str(args, "timeout"));
  const json = flag(args, "json");
  const raw = flag(args, "raw");
  const channel = openChannel("recv", openArgs("recv", args, name), { autoRelease: false });
  let interrupted = false;
  const removeListeners = onInterrupt(() => {
    interrupted = true;
    channel.close(); // the pending recv rejects with ChannelClosedError
  });
  let received = 0;
  try {
    for (; received < count; received++) {
      let message: Message;
      try {
        message = await channel.recv(timeout === undefined ? {} : { timeout });
      } catch (error) {
        if (interrupted && error instanceof ChannelClosedError) return EXIT.interrupted;
        if (error instanceof FerryError && count > 1) error.message += ` (received ${received} of ${count})`;
        throw error;
      }
      // Released only once printed: an ack sender learns its message reached the output, and one
      // that could not be printed goes back to the channel when it closes.
      print(messageLine(message, json, raw));
      message.release();
    }
  } finally {
    removeListeners();
    channel.close();
  }
  return EXIT.ok;
}

export const recv: Command = {
  name: "recv",
  usage: "recv <channel> [--count N]",
  summary: "receive N messages (default 1), each printed as a JSON line",
  about: `Receives --count messages, waiting up to --timeout ms for each; exits 1 if one does not come.
The channel must exist unless --create is given. Ctrl-C stops it (exit 130).
${RECV_OUTPUT}`,
  options: withCommon({
    count: { type: "string", short: "n", arg: "<n>", help: "messages to receive (default 1)" },
    timeout: TIMEOUT,
    raw: RAW,
    ...CREATION,
  }),
  run,
};
