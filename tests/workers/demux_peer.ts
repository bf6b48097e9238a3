// A demux peer for the demux tests. Usage: demux_peer.ts <prefix> <channel> <demux options JSON>
// stdin: {"op":"send","items":[[key, value], ...]} sends each in turn and prints "sent";
//        {"op":"hold","key":k} takes the first message of k and holds it (and whatever the reader
//        buffered) forever, printing its value as a JSON line.

import { demux } from "../../mod.ts";
import { stdinLines } from "../helpers.ts";

const [prefix, name, optionsJson = "{}"] = Deno.args;
const d = demux(name, { prefix, ...JSON.parse(optionsJson) });
console.log("ready");
for await (const line of stdinLines()) {
  const command = JSON.parse(line);
  if (command.op === "send") {
    for (const [key, value] of command.items) await d.send(key, value);
    console.log("sent");
  } else if (command.op === "hold") {
    for await (const m of d.stream(command.key)) {
      console.log(JSON.stringify(m.data));
      await new Promise(() => {}); // holds it until killed
    }
  }
}
