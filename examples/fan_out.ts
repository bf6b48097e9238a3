// Fan-out with a group: every cache process gets each flush, and a cache that dies leaves the group.
//
//   deno run --allow-ffi --allow-run --allow-read examples/fan_out.ts
//
// Three cache processes each put their own inbox in group "cache.flush" with a process membership
// (`lifetime: "process"`): it lasts while the process runs and ends when it exits or is killed. The
// main process sends three flushes with `sendGroup` in ack mode: each resolves once every member
// released its copy. Then one cache is killed with SIGKILL: the next flush goes to the two that
// are left, and nobody waits for the dead one.

import { fileURLToPath } from "node:url";
import { Channel, Namespace } from "../mod.ts";

if (Deno.args[0] === "cache") {
  const prefix = Deno.args[1];
  using ns = Namespace.connect({ prefix });
  using inbox = Channel.open<{ key: string }>(`cache.${Deno.pid}`, { prefix });
  ns.groupAdd("cache.flush", inbox.name, { lifetime: "process" });
  console.log("ready");
  for await (const msg of inbox) {
    if (msg.data.key === "stop") break;
    // A real cache would drop the key here; the copy is released when this body ends.
  }
} else {
  const prefix = `fanout${Deno.pid}`;
  const caches = [0, 1, 2].map(() =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", fileURLToPath(import.meta.url), "cache", prefix],
      stdout: "piped",
    }).spawn()
  );
  for (const c of caches) {
    const reader = c.stdout.pipeThrough(new TextDecoderStream()).getReader();
    await reader.read(); // "ready": its membership is in the table
    reader.releaseLock();
  }

  using ns = Namespace.connect({ prefix, mode: "ack", timeout: 5000 });
  for (const key of ["user:1", "user:2", "user:3"]) {
    const { sent, skipped, failed } = await ns.sendGroup("cache.flush", { key });
    console.log(
      `flush ${key}: released by ${sent.length}, skipped ${skipped.length}, failed ${failed.length}`,
    );
  }

  caches[0].kill("SIGKILL");
  await caches[0].status;
  const { sent, failed } = await ns.sendGroup("cache.flush", { key: "user:4" });
  console.log(`after a cache was killed, flush user:4: released by ${sent.length}, failed ${failed.length}`);
  console.log(`members now: ${ns.groupMembers("cache.flush").length}`);

  await ns.sendGroup("cache.flush", { key: "stop" });
  for (const c of caches.slice(1)) await c.status;
  for (const name of ns.groupMembers("cache.flush")) Channel.unlink(name, { prefix });
  for (const c of caches) {
    try {
      Channel.unlink(`cache.${c.pid}`, { prefix });
    } catch { /* removed already */ }
  }
  ns.close();
  Namespace.unlinkGroups({ prefix });
  Namespace.unlinkShapes({ prefix }); // the store of shared msgpack shapes
}
