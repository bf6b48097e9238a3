// Receives `count` messages with recvMany and sends their values back in one sendMany on
// "<name>.back". Usage: <prefix> <name> <count>

import { Channel } from "../../mod.ts";

const [prefix, name, count] = Deno.args;
const inbox = Channel.open<number>(name, { prefix, mode: "async" });
const back = Channel.open<number[]>(`${name}.back`, { prefix, mode: "async" });
console.log("ready");
const seen: number[] = [];
while (seen.length < Number(count)) {
  for (const msg of await inbox.recvMany(64, { timeout: 20_000 })) seen.push(msg.data);
}
await back.send(seen);
inbox.close();
back.close();
