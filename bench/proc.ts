// Benchmark peers: spawn a Deno script as a child process and talk to it in lines.

import { fileURLToPath } from "node:url";

export class Peer {
  readonly child: Deno.ChildProcess;
  #lines: ReadableStreamDefaultReader<string>;
  #buffered = "";
  #stdin: WritableStreamDefaultWriter<Uint8Array>;

  /** Runs `script` with `args`; `env` adds to this process's environment. */
  constructor(script: URL, args: string[], env: Record<string, string> = {}) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", fileURLToPath(script), ...args],
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#lines = this.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stdin = this.child.stdin.getWriter();
  }

  async line(): Promise<string> {
    while (!this.#buffered.includes("\n")) {
      const { value, done } = await this.#lines.read();
      if (done) throw new Error("a benchmark peer exited early");
      this.#buffered += value;
    }
    const at = this.#buffered.indexOf("\n");
    const line = this.#buffered.slice(0, at);
    this.#buffered = this.#buffered.slice(at + 1);
    return line;
  }

  async expect(text: string): Promise<void> {
    const got = await this.line();
    if (got !== text) throw new Error(`benchmark peer said ${JSON.stringify(got)}, expected ${text}`);
  }

  async say(text: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(text + "\n"));
  }

  async json<T>(): Promise<T> {
    return JSON.parse(await this.line()) as T;
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch { /* already exited */ }
    await this.child.status;
    await this.#stdin.close().catch(() => {});
    await this.#lines.cancel().catch(() => {});
  }
}
