// One of several processes racing to open the same brand-new channel.
// Usage: opener.ts <prefix> <name>. Prints "ready", waits for "go" on stdin, opens the channel, sends
// {pid} in async mode, prints "sent", then stays open until stdin closes.

import { Channel } from "../../mod.ts";
import { stdinLines } from "../helpers.ts";

const [prefix, name] = Deno.args;
const commands = stdinLines();

console.log("ready");
if ((await commands.next()).value !== "go") Deno.exit(2);
try {
  const channel = Channel.open(name, { prefix, mode: "async", capacity: 32 });
  await channel.send({ pid: Deno.pid });
  console.log("sent");
  await commands.next();
  channel.close();
} catch (error) {
  console.log(`failed: ${(error as Error).name}: ${(error as Error).message}`);
}
