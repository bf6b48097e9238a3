// A client of one service for the rpc tests. Usage: rpc_client.ts <prefix> <service>
// Prints "ready <reply channel>"-less "ready", then its reply channel's name; stdin commands (JSON):
//   {"op":"start","method":m,"args":a}  starts a call without waiting for it, prints "started"

import { connect } from "../../mod.ts";
import { stdinLines } from "../helpers.ts";

const [prefix, service] = Deno.args;
const client = connect(service, { prefix, timeout: Infinity });
console.log("ready");
console.log(client.replyChannel);
for await (const line of stdinLines()) {
  const command = JSON.parse(line);
  if (command.op === "start") {
    client.call(command.method, command.args).catch(() => {});
    console.log("started");
  }
}
