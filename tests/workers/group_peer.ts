// A channel receiver that manages its own channel's group memberships, driven over stdin like peer.ts:
// one JSON command per line, one JSON reply per line.
// Usage: group_peer.ts <prefix> <channel> <options as JSON>
//   options: the channel's open options, plus {join: group, joinExpiry: seconds, joinLifetime:
//   "expiry"|"process"} to join before "ready"
//   {"op":"join","group":g,"expiry":s,"lifetime":l} -> {added}: groupAdd(g, <channel>, {expiry, lifetime})
//   {"op":"leave","group":g}            -> {removed}: groupDiscard(g, <channel>)
//   {"op":"recv","timeout":ms}          -> {seq, sender, redelivered, data}; held if autoRelease is off
//   {"op":"take","count":n,"timeout":ms} -> {data: [n values]}: n receives in a row
//   {"op":"release"}                    -> {released}: releases every held message
//   {"op":"ping"}                       -> {}
//   {"op":"exit"}                       -> {} and exits 0 after closing its Namespace (its expiring
//                                          memberships stay behind, its process ones end)
// A failed command answers {error: <class name>, code, message}.

import { Channel, type GroupLifetime, Namespace } from "../../mod.ts";
import { stdinLines } from "../helpers.ts";

type Message = NonNullable<ReturnType<Channel["tryRecv"]>>;

const [prefix, name, optionsJson = "{}"] = Deno.args;
const { join, joinExpiry, joinLifetime, ...options } = JSON.parse(optionsJson);
const channel = Channel.open(name, { ...options, prefix });
const namespace = Namespace.connect({ prefix });
const held: Message[] = [];

async function run(command: Record<string, unknown>): Promise<object> {
  switch (command.op) {
    case "ping":
      return {};
    case "join":
      return {
        added: namespace.groupAdd(command.group as string, name, {
          expiry: command.expiry as number | undefined,
          lifetime: command.lifetime as GroupLifetime | undefined,
        }),
      };
    case "leave":
      return { removed: namespace.groupDiscard(command.group as string, name) };
    case "recv": {
      const message = await channel.recv({ timeout: command.timeout as number | undefined });
      if (options.autoRelease === false) held.push(message);
      return {
        seq: Number(message.seq),
        sender: message.sender,
        redelivered: message.redelivered,
        data: message.data,
      };
    }
    case "take": {
      const data: unknown[] = [];
      while (data.length < (command.count as number)) {
        data.push((await channel.recv({ timeout: command.timeout as number | undefined })).data);
      }
      return { data };
    }
    case "release": {
      const count = held.length;
      for (const message of held.splice(0)) message.release();
      return { released: count };
    }
    case "exit":
      return {};
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

if (join !== undefined) namespace.groupAdd(join, name, { expiry: joinExpiry, lifetime: joinLifetime });
console.log("ready");
for await (const line of stdinLines()) {
  const command = JSON.parse(line);
  try {
    console.log(JSON.stringify(await run(command)));
  } catch (error) {
    const { name, message, code } = error as Error & { code?: string };
    console.log(JSON.stringify({ error: name, code, message }));
  }
  if (command.op === "exit") break;
}
namespace.close();
channel.close();
