// Receiving from several channels at once: `merge` two channels fed by two processes.
//
//   deno run --allow-ffi --allow-run examples/select.ts
//
// A "fast" process sends 5 messages and a "slow" one 2; the loop here takes them as they come,
// from whichever channel has one, and stops after all 7.

import { fileURLToPath } from "node:url";
import { Channel, merge, Namespace } from "../mod.ts";

const prefix = Deno.args[2] ?? `example${Deno.pid}`;

if (Deno.args[0] === "feed") {
  const name = Deno.args[1];
  using ch = Channel.open(name, { prefix, mode: "async" });
  for (let i = 1; i <= (name === "fast" ? 5 : 2); i++) await ch.send(`${name} ${i}`);
} else {
  using fast = Channel.open("fast", { prefix, mode: "async" });
  using slow = Channel.open("slow", { prefix, mode: "async" });
  const feeds = ["fast", "slow"].map((name) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", fileURLToPath(import.meta.url), "feed", name, prefix],
    }).output()
  );
  const counts = new Map<string, number>();
  let n = 0;
  for await (const { channel, message } of merge([fast, slow])) {
    counts.set(channel.name, (counts.get(channel.name) ?? 0) + 1);
    if (++n === 7) break;
    void message;
  }
  await Promise.all(feeds);
  console.log(`merged ${n} messages: ${counts.get("fast")} from fast, ${counts.get("slow")} from slow`);
  Channel.unlink("fast", { prefix });
  Channel.unlink("slow", { prefix });
  Namespace.unlinkShapes({ prefix }); // the store of shared msgpack shapes
}
