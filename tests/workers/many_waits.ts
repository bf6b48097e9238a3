// A process that waits on many channels at once, reporting what that costs it. Usage:
//   many_waits.ts <prefix> <name> <count>
// Opens <name>.0 .. <name>.<count-1> and prints "ready". On "wait" it starts a for-await loop on
// every channel, lets them all park, then prints {before, after, parks, cpuMs, wallMs}: the
// process's threads (/proc/self/status) before the loops and after they parked, how many parks the
// promise waits made and the process's CPU time over an idle stretch. Each loop then takes one
// message and ends; the process prints {received} when all have.

import process from "node:process";
import { Channel } from "../../mod.ts";
import { waitStats } from "../../src/channel/wait.ts";
import { stdinLines } from "../helpers.ts";

const [prefix, name, countArg] = Deno.args;
const count = Number(countArg);
const channels = Array.from(
  { length: count },
  (_, i) => Channel.open(`${name}.${i}`, { prefix, timeout: 60_000 }),
);

function threads(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/^Threads:\s+(\d+)$/m.exec(status)![1]);
}
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

console.log("ready");
const lines = stdinLines();
await lines.next(); // "wait"
const before = threads();
let received = 0;
const loops = channels.map(async (ch) => {
  for await (const _ of ch) {
    received++;
    break;
  }
});
await delay(300); // every loop has spun its few microseconds and parked
const parksBefore = waitStats.parks;
const cpu0 = cpuMs(), wall0 = performance.now();
await delay(1000);
const report = {
  before,
  after: threads(),
  parks: waitStats.parks - parksBefore,
  cpuMs: cpuMs() - cpu0,
  wallMs: performance.now() - wall0,
};
console.log(JSON.stringify(report));
await Promise.all(loops);
console.log(JSON.stringify({ received }));
for (const ch of channels) ch.close();
Deno.exit(0); // stdin stays open: leave without waiting for it
