// A real nats-server for the bridge's tests, example test and benchmark: on a loopback port nobody uses, with
// JetStream storing in a directory that outlives a kill, so a test can kill and restart it.

/** The nats-server binary on PATH (or in the sbin directories Debian installs it to), if any. */
export function natsServerPath(): string | undefined {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      if (Deno.statSync(`${dir}/nats-server`).isFile) return `${dir}/nats-server`;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A loopback port free now (the kernel's pick; a race with other programs is possible but rare). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Waits until something accepts TCP connections on `port` and sends NATS's INFO line. */
async function waitAccepting(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (let backoff = 10;; backoff = Math.min(200, backoff * 2)) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const buf = new Uint8Array(4);
        const n = await conn.read(buf);
        if (n === 4 && new TextDecoder().decode(buf) === "INFO") return;
      } finally {
        conn.close();
      }
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`nats-server on port ${port} did not start within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, backoff));
  }
}

/** One nats-server process (JetStream on, storing in `storeDir`), restartable on the same port. */
export class NatsServer implements AsyncDisposable {
  readonly port: number;
  readonly storeDir: string;
  readonly #path: string;
  readonly #extra: string[];
  #process: Deno.ChildProcess | undefined;
  #ownsDir: boolean;

  private constructor(path: string, port: number, storeDir: string, ownsDir: boolean, extra: string[]) {
    this.#path = path;
    this.port = port;
    this.storeDir = storeDir;
    this.#ownsDir = ownsDir;
    this.#extra = extra;
  }

  /** Starts a server and waits until it accepts connections. */
  static async start(
    options: { storeDir?: string; port?: number; args?: string[] } = {},
  ): Promise<NatsServer> {
    const path = natsServerPath();
    if (path === undefined) throw new Error("nats-server is not installed (apt-get install nats-server)");
    const storeDir = options.storeDir ?? await Deno.makeTempDir({ prefix: "ferry_nats_" });
    const server = new NatsServer(
      path,
      options.port ?? freePort(),
      storeDir,
      options.storeDir === undefined,
      options.args ?? [],
    );
    await server.restart();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts the server again (after kill) with the same port and store. */
  async restart(): Promise<void> {
    this.#process = new Deno.Command(this.#path, {
      args: ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", this.storeDir, ...this.#extra],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitAccepting(this.port, 10_000);
  }

  /** Kills the server (SIGKILL by default: nothing flushed on the way out) and waits for it. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    const p = this.#process;
    if (p === undefined) return;
    this.#process = undefined;
    try {
      p.kill(signal);
    } catch {
      // already gone
    }
    await p.status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
    if (this.#ownsDir) await Deno.remove(this.storeDir, { recursive: true }).catch(() => {});
  }
}
