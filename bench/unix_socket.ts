// The Unix-socket baseline: Deno processes doing ferry's benchmark work over Unix domain stream
// sockets, with length-prefixed frames and the same codec (bench/unix_socket_peer.ts does the
// sending and receiving). This module only starts the processes, coordinates their start and
// turns their reports into a Result; it never measures in its own process.
//
// - ack-sync: Deno has no blocking socket API, so it runs exactly the ack-async code (the report
//   shows the same measurement in both rows).
// - ack-async: one message at a time; the sender waits for a one-byte reply that the receiver
//   writes after it decoded the message. Round trips are timed by the sender with performance.now().
// - throughput: one sender, one receiver; the receiver decodes every message into its own value
//   and reports the time from its first to its last message.
// - throughput-2x2: two sender processes and two receiver processes. A stream socket is point to
//   point, so this is two independent connections (sender A -> receiver A, sender B -> receiver B)
//   started together; msgs/s is everything received over the span from the first receiver's first
//   message to the last receiver's last.
// Variants: "per-message" writes once per send (as when every message must leave now: the
// like-for-like comparison with ferry); "coalesced" gathers frames into 64 KiB writes (context).

import { fileURLToPath } from "node:url";
import type { Result, Workload } from "./types.ts";
import type { ReceiverReport, SenderReport, Variant } from "./unix_socket_peer.ts";

const PEER = fileURLToPath(new URL("./unix_socket_peer.ts", import.meta.url));
/** The repository root: peers run there so that deno.json (the msgpackr mapping) applies. */
const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** A whole run, start to last report, may take this long before its processes are killed. */
const RUN_TIMEOUT_MS = 180_000;

/** A peer process and the lines it prints. */
class Peer {
  readonly child: Deno.ChildProcess;
  exited = false;
  private lines: ReadableStreamDefaultReader<string>;
  private buffered = "";

  constructor(args: string[], private withStdin: boolean) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", PEER, ...args],
      cwd: ROOT,
      stdin: withStdin ? "piped" : "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.child.status.then(() => this.exited = true);
    this.lines = this.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  async line(): Promise<string> {
    while (!this.buffered.includes("\n")) {
      const { value, done } = await this.lines.read();
      if (done) throw new Error("unix socket benchmark: a peer exited early");
      this.buffered += value;
    }
    const at = this.buffered.indexOf("\n");
    const line = this.buffered.slice(0, at);
    this.buffered = this.buffered.slice(at + 1);
    return line;
  }

  async expect(what: string): Promise<void> {
    const got = await this.line();
    if (got !== what) throw new Error(`unix socket benchmark: peer said ${JSON.stringify(got)}, not ${what}`);
  }

  async say(text: string): Promise<void> {
    const w = this.child.stdin.getWriter();
    await w.write(new TextEncoder().encode(text + "\n"));
    w.releaseLock();
  }

  async stop(): Promise<void> {
    if (!this.exited) {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // It exited between the check and the kill.
      }
    }
    await this.lines.cancel().catch(() => {});
    if (this.withStdin) await this.child.stdin.close().catch(() => {});
    await this.child.status;
  }
}

function deadline(ms: number): { promise: Promise<never>; cancel: () => void } {
  let id: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<never>((_, reject) => {
    id = setTimeout(() => reject(new Error(`unix socket benchmark: no result within ${ms} ms`)), ms);
  });
  return { promise, cancel: () => clearTimeout(id) };
}

/** Runs one workload over Unix sockets between real processes. */
export async function runUnixSocket(w: Workload, variant: Variant): Promise<Result> {
  const pairs = w.kind === "throughput-2x2" ? 2 : 1;
  const dir = await Deno.makeTempDir({ prefix: "ferry-uds-" });
  const peers: Peer[] = [];
  const limit = deadline(RUN_TIMEOUT_MS);
  try {
    const run = async () => {
      const common = (i: number) => [
        `${dir}/s${i}.sock`,
        w.kind,
        w.codec,
        String(w.size),
        String(w.count),
        String(w.warm),
      ];
      const receivers: Peer[] = [];
      for (let i = 0; i < pairs; i++) peers.push(receivers[i] = new Peer(["recv", ...common(i)], false));
      // A receiver says "ready" once it listens; a sender once it is connected.
      await Promise.all(receivers.map((p) => p.expect("ready")));
      const senders: Peer[] = [];
      for (let i = 0; i < pairs; i++) {
        peers.push(senders[i] = new Peer(["send", ...common(i), variant], true));
      }
      await Promise.all(senders.map((p) => p.expect("ready")));
      await Promise.all(senders.map((p) => p.say("go")));
      const sent = await Promise.all(senders.map(async (p) => JSON.parse(await p.line()) as SenderReport));
      const got = await Promise.all(receivers.map(async (p) => JSON.parse(await p.line()) as ReceiverReport));
      return { sent, got };
    };
    const running = run();
    running.catch(() => {}); // after a timeout its rejection (peers killed) is expected
    const { sent, got } = await Promise.race([running, limit.promise]);
    for (const r of got) {
      if (r.received !== w.count) {
        throw new Error(`unix socket benchmark: ${r.received} of ${w.count} received`);
      }
    }
    if (w.kind === "ack-sync" || w.kind === "ack-async") {
      const s = sent[0];
      const msgsPerSec = s.msgsPerSec!;
      return {
        msgsPerSec,
        mbPerSec: msgsPerSec * (s.bytes / s.sent) / 1e6,
        p50us: s.p50us,
        p99us: s.p99us,
        p999us: s.p999us,
        meanUs: s.meanUs,
      };
    }
    const seconds = spanSeconds(got);
    let received = 0;
    let bytes = 0;
    for (const r of got) {
      received += r.received;
      bytes += r.bytes;
    }
    return { msgsPerSec: received / seconds, mbPerSec: bytes / seconds / 1e6 };
  } finally {
    limit.cancel();
    await Promise.all(peers.map((p) => p.stop()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** From the earliest first message to the latest last message over all receivers (wall clock). */
function spanSeconds(got: ReceiverReport[]): number {
  const start = Math.min(...got.map((r) => r.firstMs));
  const end = Math.max(...got.map((r) => r.firstMs + r.elapsedMs));
  return (end - start) / 1000;
}
