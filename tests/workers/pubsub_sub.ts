// A subscriber for the pub/sub tests. Usage: pubsub_sub.ts <prefix> <topic> <subscribe options JSON>
// Prints "ready" then its inbox name; reads nothing until told. stdin: "read N" receives N messages
// and prints each {topic, data, headers} as a JSON line.

import { subscribe } from "../../mod.ts";
import { stdinLines } from "../helpers.ts";

const [prefix, topic, optionsJson = "{}"] = Deno.args;
using sub = subscribe(topic, { prefix, ...JSON.parse(optionsJson) });
console.log("ready");
console.log(sub.inbox);
for await (const line of stdinLines()) {
  const [op, n] = line.split(" ");
  if (op === "read") {
    for (let i = 0; i < Number(n); i++) {
      const m = await sub.recv({ timeout: Infinity });
      console.log(JSON.stringify({ topic: m.topic, data: m.data, headers: m.headers }));
    }
  }
}
