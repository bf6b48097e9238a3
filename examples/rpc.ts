// Request/response and a streamed reply between two processes: a "math" service and its client.
//
//   deno run --allow-ffi --allow-run --allow-read examples/rpc.ts
//
// The server process serves `add` (a value), `fail` (throws) and `count` (an async generator, so
// it streams). The client calls each: the error comes back as a RemoteError with the handler's code,
// and the stream is read with `for await`, the server producing only as fast as the loop consumes.

import { fileURLToPath } from "node:url";
import { Channel, connect, Namespace, RemoteError, requestChannelName, serve } from "../mod.ts";

const prefix = Deno.args[1] ?? `example${Deno.pid}`;

if (Deno.args[0] === "server") {
  await using _server = serve("math", {
    add: ({ a, b }: { a: number; b: number }) => a + b,
    fail: () => {
      throw Object.assign(new Error("division by zero"), { code: "DivByZero" });
    },
    async *count({ n }: { n: number }) {
      for (let i = 1; i <= n; i++) yield i;
    },
  }, { prefix });
  console.log("ready");
  for await (const _ of Deno.stdin.readable) { /* serve until the client closes our stdin */ }
} else {
  const server = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", "--allow-read", fileURLToPath(import.meta.url), "server", prefix],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  await reader.read(); // "ready"

  using math = connect("math", { prefix });
  console.log(`add: 1 + 2 = ${await math.call("add", { a: 1, b: 2 })}`);
  try {
    await math.call("fail");
  } catch (e) {
    if (!(e instanceof RemoteError)) throw e;
    console.log(`fail: RemoteError ${e.remoteCode}`);
  }
  const items: number[] = [];
  for await (const i of math.stream<number>("count", { n: 5 })) items.push(i);
  console.log(`count: ${items.join(" ")}`);

  await server.stdin.close();
  await server.status;
  await reader.cancel();
  Channel.unlink(requestChannelName("math"), { prefix }); // the service's request channel outlives its servers
  Namespace.unlinkShapes({ prefix }); // the store of shared msgpack shapes
}
