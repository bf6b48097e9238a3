// Demultiplexed streams: one channel carries two keyed streams and one nobody asked for.
//
//   deno run --allow-ffi --allow-run --allow-read examples/demux.ts
//
// A sender process interleaves "orders", "users" and "audit" messages on the channel "events". Here,
// a loop reads "orders", a handler takes "users", and the default handler gets the rest; each key
// keeps its order.

import { fileURLToPath } from "node:url";
import { Channel, demux, Namespace } from "../mod.ts";

const prefix = Deno.args[1] ?? `example${Deno.pid}`;

if (Deno.args[0] === "sender") {
  await using events = demux("events", { prefix });
  for (let i = 1; i <= 3; i++) {
    await events.send("orders", { order: i });
    await events.send("users", { user: `u${i}` });
    await events.send("audit", { entry: i });
  }
} else {
  await using events = demux<Record<string, unknown>>("events", { prefix });
  const orders = events.stream("orders")[Symbol.asyncIterator]();
  const first = orders.next(); // the "orders" consumer exists before the first message is read
  events.on("users", (m) => console.log(`users: ${JSON.stringify(m.data)}`));
  events.otherwise((m) => console.log(`other (${m.key}): ${JSON.stringify(m.data)}`));
  await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", fileURLToPath(import.meta.url), "sender", prefix],
  }).output();
  for (let r = await first, n = 0; !r.done; r = await orders.next()) {
    console.log(`orders: ${JSON.stringify(r.value.data)}`);
    if (++n === 3) break;
  }
  events.close();
  Channel.unlink("events", { prefix });
  Namespace.unlinkShapes({ prefix }); // the store of shared msgpack shapes
}
