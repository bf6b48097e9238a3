// A channel participant driven by the test over stdin: one JSON command per line, one JSON reply per
// line on stdout. Usage: peer.ts <prefix> <name> <open options as JSON>
//   {"op":"ping"}                          -> {}
//   {"op":"recv","timeout":ms}             -> {seq, sender, redelivered, data, size}; held if autoRelease is off
//   {"op":"release"}                       -> {released}: releases every held message
//   {"op":"reject","outcome":o}            -> {rejected}: msg.reject(o) on the oldest held message
//   {"op":"trySend","n":n}                 -> {sent, error}: trySend {from: pid, i} n times, stopping at an error
//   {"op":"send","values":[..],"opts":{}}  -> {sent}: awaits send of each value in turn
//   {"op":"sendMany","values":[..],"opts":{}} -> {sent}: awaits one sendMany of the values
//   {"op":"close"}                         -> {}: closes the channel; the process lives on
// A failed command answers {error: <class name>, code, message}.

import { Channel } from "../../mod.ts";
import { stdinLines } from "../helpers.ts";

type Message = NonNullable<ReturnType<Channel["tryRecv"]>>;

const [prefix, name, optionsJson = "{}"] = Deno.args;
const options = JSON.parse(optionsJson);
const channel = Channel.open(name, { ...options, prefix });
const held: Message[] = [];

async function run(command: Record<string, unknown>): Promise<object> {
  switch (command.op) {
    case "ping":
      return {};
    case "recv": {
      const message = await channel.recv({ timeout: command.timeout as number | undefined });
      if (options.autoRelease === false) held.push(message);
      return {
        seq: Number(message.seq),
        sender: message.sender,
        redelivered: message.redelivered,
        data: message.data,
        size: message.bytes.byteLength,
      };
    }
    case "release": {
      const count = held.length;
      for (const message of held.splice(0)) message.release();
      return { released: count };
    }
    case "reject": {
      const message = held[0];
      if (message === undefined) throw new Error("no message is held");
      message.reject(command.outcome as Parameters<Message["reject"]>[0]);
      held.shift();
      return { rejected: 1 };
    }
    case "trySend": {
      let sent = 0;
      try {
        for (; sent < (command.n as number); sent++) channel.trySend({ from: Deno.pid, i: sent });
      } catch (error) {
        return { sent, error: (error as Error).name };
      }
      return { sent, error: null };
    }
    case "send": {
      const values = command.values as unknown[];
      for (const value of values) await channel.send(value, command.opts as Parameters<Channel["send"]>[1]);
      return { sent: values.length };
    }
    case "sendMany": {
      const values = command.values as unknown[];
      await channel.sendMany(values, command.opts as Parameters<Channel["sendMany"]>[1]);
      return { sent: values.length };
    }
    case "close":
      channel.close();
      return {};
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

console.log("ready");
for await (const line of stdinLines()) {
  try {
    console.log(JSON.stringify(await run(JSON.parse(line))));
  } catch (error) {
    const { name, message, code } = error as Error & { code?: string };
    console.log(JSON.stringify({ error: name, code, message }));
  }
}
channel.close();
