// Load receiver. Usage: load_receiver.ts <prefix> <name> <outBase>. Receives [tag, i] messages until
// the parent says "drain" (or closes stdin) and a recv then times out. Writes the i of every message
// from sender `tag`, in receive order, to <outBase>.<tag> (u32 little-endian), and prints one JSON
// line: {received, seqViolations, senders: {tag: [pids seen]}}. seqViolations counts messages whose
// msg.seq was not greater than the previous one from the same sender.

import { Channel, TimeoutError } from "../../mod.ts";
import { stdinLines } from "../helpers.ts";

const [prefix, name, outBase] = Deno.args;
const channel = Channel.open(name, { prefix, mode: "async" });

let draining = false;
(async () => {
  for await (const line of stdinLines()) if (line === "drain") break;
  draining = true;
})();

const ids = new Map<number, number[]>();
const pidsByTag = new Map<number, Set<number>>();
const lastSeqBySender = new Map<number, number>();
let received = 0;
let seqViolations = 0;

console.log("ready");
while (true) {
  let message;
  try {
    message = await channel.recv({ timeout: 200 });
  } catch (error) {
    if (error instanceof TimeoutError) {
      if (draining) break;
      continue;
    }
    throw error;
  }
  const [tag, i] = message.data as [number, number];
  const seq = Number(message.seq);
  received++;
  if (!ids.has(tag)) ids.set(tag, []);
  ids.get(tag)!.push(i);
  if (!pidsByTag.has(tag)) pidsByTag.set(tag, new Set());
  pidsByTag.get(tag)!.add(message.sender);
  const lastSeq = lastSeqBySender.get(message.sender);
  if (lastSeq !== undefined && seq <= lastSeq) seqViolations++;
  lastSeqBySender.set(message.sender, seq);
}

for (const [tag, list] of ids) {
  await Deno.writeFile(`${outBase}.${tag}`, new Uint8Array(Uint32Array.from(list).buffer));
}
const senders = Object.fromEntries([...pidsByTag].map(([tag, pids]) => [tag, [...pids]]));
console.log(JSON.stringify({ received, seqViolations, senders }));
channel.close();
Deno.exit(0);
