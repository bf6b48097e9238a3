// A server of one service for the rpc tests. Usage: rpc_server.ts <prefix> <service> <serve options JSON>
// Its handlers report what they do on the channel "events" (async): the test receives from it to
// know, without sleeping, that a call is being held. stdin: "go" ends every held call, "close" closes
// the server gracefully (prints "closed").

import { Channel, serve } from "../../mod.ts";
import { stdinLines } from "../helpers.ts";

const [prefix, service, optionsJson = "{}"] = Deno.args;
const events = Channel.open("events", { prefix, mode: "async" });
const held: (() => void)[] = [];
const hold = () => new Promise<void>((resolve) => held.push(resolve));

const server = serve(service, {
  add: ({ a, b }: { a: number; b: number }) => a + b,
  whoami: () => Deno.pid,
  mark(tag: unknown) {
    events.trySend({ started: tag });
    return tag;
  },
  sized: ({ n }: { n: number }) => new Uint8Array(n).fill(7),
  echo: (value: unknown, ctx) => ({ value, headers: ctx.headers, attempt: ctx.attempt }),
  fail: ({ code, message }: { code: string; message: string }) => {
    throw Object.assign(new Error(message), { code });
  },
  async hold(_: unknown, ctx) {
    events.trySend({ holding: Deno.pid, attempt: ctx.attempt });
    await hold();
    return Deno.pid;
  },
  async *count({ n }: { n: number }) {
    for (let i = 0; i < n; i++) yield i;
  },
  async *padded({ n, size }: { n: number; size: number }) {
    for (let i = 0; i < n; i++) yield `${i}`.padEnd(size, ".");
  },
  async *produce({ n }: { n: number }) {
    for (let i = 0; i < n; i++) {
      events.trySend({ produced: i });
      yield i;
    }
  },
  async *ticks() {
    try {
      for (let i = 0;; i++) yield i;
    } finally {
      events.trySend({ cancelled: Deno.pid });
    }
  },
  async *holdStream({ n }: { n: number }) {
    for (let i = 0; i < n; i++) yield i;
    events.trySend({ holding: Deno.pid });
    await new Promise(() => {}); // until killed
  },
  async *failStream({ after }: { after: number }) {
    for (let i = 0; i < after; i++) yield i;
    throw Object.assign(new Error("ran dry"), { code: "Dry" });
  },
}, { prefix, ...JSON.parse(optionsJson) });

console.log("ready");
for await (const line of stdinLines()) {
  if (line === "go") { for (const resolve of held.splice(0)) resolve(); }
  if (line === "close") {
    server.close().then(() => console.log("closed")); // "go" may be needed to finish a held call
  }
}
