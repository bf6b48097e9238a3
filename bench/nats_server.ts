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

/**
 * Waits until the server named `name` accepts TCP connections on `port` (its INFO line names it:
 * another server that took the same port would otherwise pass for it). Throws at once when
 * `exited()` says the process is gone: it could not bind the port, most likely.
 */
async function waitAccepting(port: number, name: string, ms: number, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  for (let backoff = 10;; backoff = Math.min(200, backoff * 2)) {
    if (exited()) throw new ServerExited(`nats-server exited before it accepted connections on port ${port}`);
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const info = await infoLine(conn);
        if (info?.server_name === name) return;
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

/**
 * The JSON of the INFO line a NATS server greets a connection with; undefined if it is not one, or
 * if nothing whole came within a second (a program on the port that never writes).
 */
async function infoLine(conn: Deno.Conn): Promise<{ server_name?: string } | undefined> {
  const timer = setTimeout(() => conn.close(), 1000);
  try {
    let text = "";
    const buf = new Uint8Array(4096);
    while (!text.includes("\r\n") && text.length < 65536) {
      const n = await conn.read(buf);
      if (n === null) return undefined;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    if (!text.startsWith("INFO ")) return undefined;
    return JSON.parse(text.slice(5, text.indexOf("\r\n")));
  } finally {
    clearTimeout(timer);
  }
}

/** The server process ended before it served: it could not bind its port, most likely. */
class ServerExited extends Error {}

let servers = 0;

/** One nats-server process (JetStream on, storing in `storeDir`), restartable on the same port. */
export class NatsServer implements AsyncDisposable {
  readonly port: number;
  readonly storeDir: string;
  readonly #path: string;
  readonly #extra: string[];
  #process: Deno.ChildProcess | undefined;
  #ownsDir: boolean;
  /** The server's name (`-n`), which its INFO line must show: unique to this object. */
  readonly #name = `ferry_${Deno.pid}_${++servers}`;

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
    // A port free when picked can be taken before the server binds it (by a test running beside
    // this one): a server that could not bind gets another pick, unless the caller named the port.
    for (let attempt = 1;; attempt++) {
      const server = new NatsServer(
        path,
        options.port ?? freePort(),
        storeDir,
        options.storeDir === undefined,
        options.args ?? [],
      );
      try {
        await server.restart();
        return server;
      } catch (e) {
        if (!(e instanceof ServerExited) || options.port !== undefined || attempt === 3) {
          if (options.storeDir === undefined) {
            await Deno.remove(storeDir, { recursive: true }).catch(() => {});
          }
          throw e;
        }
      }
    }
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts the server again (after kill) with the same port and store. */
  async restart(): Promise<void> {
    const named = this.#extra.indexOf("-n");
    const name = named >= 0 ? this.#extra[named + 1] : this.#name;
    const own = named >= 0 ? [] : ["-n", name];
    const p = new Deno.Command(this.#path, {
      args: ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", this.storeDir, ...own, ...this.#extra],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#process = p;
    let exited = false;
    p.status.then(() => exited = true);
    try {
      await waitAccepting(this.port, name, 10_000, () => exited);
    } catch (e) {
      await this.kill(); // not left running behind a failed start
      throw e;
    }
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
