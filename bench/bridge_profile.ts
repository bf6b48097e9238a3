// Where a bridged message's CPU goes: runs the bench's five processes (nats-server, bridge A with an
// out route, bridge B with an in route, a consumer on B, a producer on A) and, while the producer
// runs, counts per message in each bridge the CPU time, context switches and the syscalls that
// mark a wake-up or a write (Linux `perf stat -p`, tracepoints). `--record` samples both bridges
// with `perf record` instead (perf.data files in the output directory, for `perf report`).
//   deno run -A bench/bridge_profile.ts [--mode ack|async] [--messages 3000] [--out DIR] [--record]
// Needs nats-server and perf (with access to tracepoints, e.g. as root).

import { parseArgs } from "node:util";
import { NatsServer } from "./nats_server.ts";
import { Peer } from "./proc.ts";
import { Channel } from "../mod.ts";

const EVENTS = [
  "task-clock",
  "context-switches",
  "syscalls:sys_enter_sendto",
  "syscalls:sys_enter_recvfrom",
  "syscalls:sys_enter_write",
  "syscalls:sys_enter_epoll_wait",
  "syscalls:sys_enter_futex",
  "syscalls:sys_enter_futex_waitv",
  "syscalls:sys_enter_sched_yield",
];
const WARM = 100;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    mode: { type: "string", default: "ack" },
    messages: { type: "string", default: "3000" },
    out: { type: "string", default: "/tmp/ferry-bridge-profile" },
    record: { type: "boolean", default: false },
  },
});
const mode = values.mode as "ack" | "async";
const count = Number(values.messages);
const dir = values.out;
Deno.mkdirSync(dir, { recursive: true });

await using server = await NatsServer.start();
const tag = `prof${Deno.pid}`;
const [a, b, subject] = [`profA_${tag}`, `profB_${tag}`, `prof.${tag}`];

async function bridge(prefix: string, route: string[]): Promise<Peer> {
  const args = ["--nats", server.url, "--prefix", prefix, "--json", "--stat-every", "0", ...route];
  const peer = new Peer(new URL("../cli/bridge_run.ts", import.meta.url), args);
  const line = JSON.parse(await peer.line());
  if (line.event !== "ready") throw new Error(`bridge said ${JSON.stringify(line)}`);
  return peer;
}

const peers: Peer[] = [];
try {
  peers.push(await bridge(a, ["--out", `x=${subject}:${mode}`]));
  peers.push(await bridge(b, ["--in", `${subject}=x:${mode}`]));
  const consumer = new Peer(new URL("./bridge_peer.ts", import.meta.url), [
    "consume",
    b,
    `${count}`,
    `${WARM}`,
  ]);
  peers.push(consumer);
  await consumer.expect("ready");
  const perfs = peers.slice(0, 2).map((p, i) => {
    const name = `${dir}/bridge${"AB"[i]}`;
    const args = values.record
      ? ["record", "-F", "2000", "-o", `${name}.perf.data`, "-p", `${p.child.pid}`]
      : ["stat", "-x,", "-o", `${name}.txt`, "-e", EVENTS.join(","), "-p", `${p.child.pid}`];
    return new Deno.Command("perf", { args, stdout: "null", stderr: "inherit" }).spawn();
  });
  const producer = new Peer(new URL("./bridge_peer.ts", import.meta.url), [
    "produce",
    a,
    mode,
    `${count}`,
    `${WARM}`,
  ]);
  peers.push(producer);
  await producer.expect("ready");
  const figures = mode === "ack" ? await producer.line() : await consumer.line();
  for (const p of perfs) {
    p.kill("SIGINT");
    await p.status;
  }
  console.log(`${mode}, ${count + WARM} messages: ${figures}`);
  if (values.record) {
    console.log(`perf report -i ${dir}/bridgeA.perf.data --sort comm,dso (and bridgeB)`);
  } else {
    const per = (file: string) =>
      new Map(
        Deno.readTextFileSync(file).split("\n").filter((l) => /^[\d.]/.test(l)).map((l) => {
          const f = l.split(",");
          return [f[2], Number(f[0]) / (count + WARM)] as const;
        }),
      );
    const [pa, pb] = [per(`${dir}/bridgeA.txt`), per(`${dir}/bridgeB.txt`)];
    console.log(`${"per message".padEnd(34)}${"bridge A".padStart(10)}${"bridge B".padStart(10)}`);
    for (const e of EVENTS) {
      const scale = e === "task-clock" ? 1000 : 1; // ms -> us
      const name = e === "task-clock" ? "CPU (us)" : e.replace("syscalls:sys_enter_", "");
      const f = (m: Map<string, number>) => ((m.get(e) ?? NaN) * scale).toFixed(2).padStart(10);
      console.log(`  ${name.padEnd(32)}${f(pa)}${f(pb)}`);
    }
  }
} finally {
  await Promise.all(peers.map((p) => p.stop()));
  for (const p of [a, b]) {
    try {
      Channel.unlink("x", { prefix: p });
    } catch { /* never created */ }
  }
}
