// Publish/subscribe: two subscriber processes, one publisher.
//
//   deno run --allow-ffi --allow-run --allow-read examples/pubsub.ts
//
// Each subscriber prints the three prices it receives and exits. The publisher waits until both
// have subscribed (they say so on stdout), publishes, and reports how many subscribers got each copy.

import { fileURLToPath } from "node:url";
import { Namespace, publish, subscribe } from "../mod.ts";

const prefix = Deno.args[1] ?? `example${Deno.pid}`;

if (Deno.args[0] === "subscriber") {
  using prices = subscribe<{ sym: string; px: number }>("prices", { prefix, whenFull: "wait" });
  console.log("subscribed");
  let n = 0;
  for await (const m of prices) {
    console.log(`subscriber got ${m.data.sym} ${m.data.px}`);
    if (++n === 3) break;
  }
} else {
  const subscribers = [0, 1].map(() =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", "--allow-read", fileURLToPath(import.meta.url), "subscriber", prefix],
      stdout: "piped",
    }).spawn()
  );
  const readers = subscribers.map((s) => s.stdout.pipeThrough(new TextDecoderStream()).getReader());
  for (const r of readers) await r.read(); // "subscribed"
  for (const px of [1.08, 1.09, 1.1]) {
    const { delivered } = await publish("prices", { sym: "EURUSD", px }, { prefix });
    console.log(`published ${px} to ${delivered} subscribers`);
  }
  let lines = 0;
  for (const r of readers) {
    for (let chunk = await r.read(); !chunk.done; chunk = await r.read()) {
      lines += chunk.value.split("\n").length - 1;
    }
  }
  for (const s of subscribers) await s.status;
  console.log(`${lines} deliveries`);
  Namespace.unlinkGroups({ prefix }); // topics are groups in the namespace's group table
  Namespace.unlinkShapes({ prefix }); // the store of shared msgpack shapes
}
