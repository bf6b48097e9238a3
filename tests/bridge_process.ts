// A bridge as a child process (`cli.ts bridge --json`, through tests/workers/bridge.ts), for the
// bridge's tests: started and read line by line, stopped with SIGTERM or killed with SIGKILL.

import assert from "node:assert/strict";
import type { BridgeStat } from "../mod.ts";
import { Child } from "./helpers.ts";

/** A bridge process (`cli.ts bridge --json`), started and read line by line. */
export class BridgeProcess implements AsyncDisposable {
  #child: Child;
  readonly ready: Promise<BridgeStat>;

  constructor(url: string, prefix: string, args: string[]) {
    this.#child = new Child("bridge.ts", [
      "--nats",
      url,
      "--prefix",
      prefix,
      "--json",
      "--stat-every",
      "0",
      ...args,
    ]);
    this.ready = this.#event("ready");
  }

  async #event(name: string): Promise<BridgeStat> {
    const line = JSON.parse(await this.#child.line(`the bridge's "${name}" line`));
    assert.equal(line.event, name, JSON.stringify(line));
    return line as BridgeStat;
  }

  /** SIGKILL: the bridge dies wherever it is. */
  kill(): Promise<Deno.CommandStatus> {
    return this.#child.kill();
  }

  /** SIGTERM: the bridge finishes what is in flight, closes, and prints its last stat. */
  async stop(): Promise<BridgeStat> {
    Deno.kill(this.#child.pid, "SIGTERM");
    const stat = await this.#event("closed");
    assert.equal((await this.#child.status).code, 0);
    return stat;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#child[Symbol.asyncDispose]();
  }
}
