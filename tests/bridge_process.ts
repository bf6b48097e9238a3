// A bridge as a child process (`cli.ts bridge --json`, through tests/workers/bridge.ts), for the
// bridge's tests: started and read line by line, stopped with SIGTERM or killed with SIGKILL.

import assert from "node:assert/strict";
import type { BridgeStat } from "../mod.ts";
import { NatsServer } from "../bench/nats_server.ts";
import { Child, Scope, within } from "./helpers.ts";

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

/**
 * Two "machines" as the bridge tests set them up: a nats-server on a loopback port, a namespace
 * each (A and B), and a bridge each started with its arguments; removed in the reverse order.
 */
export class TwoSides implements AsyncDisposable {
  private constructor(
    readonly server: NatsServer,
    readonly a: Scope,
    readonly b: Scope,
    readonly bridgeA: BridgeProcess,
    readonly bridgeB: BridgeProcess,
  ) {}

  /**
   * Starts both bridges (A's with `argsA`, B's with `argsB`) and waits until both are ready;
   * `serverArgs` go to nats-server.
   */
  static async start(argsA: string[], argsB: string[], serverArgs: string[] = []): Promise<TwoSides> {
    const server = await NatsServer.start({ args: serverArgs });
    const a = new Scope(), b = new Scope();
    const sides = new TwoSides(
      server,
      a,
      b,
      new BridgeProcess(server.url, a.prefix, argsA),
      new BridgeProcess(server.url, b.prefix, argsB),
    );
    try {
      await within(Promise.all([sides.bridgeA.ready, sides.bridgeB.ready]), "both bridges start");
    } catch (e) {
      await sides[Symbol.asyncDispose]();
      throw e;
    }
    return sides;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.bridgeB[Symbol.asyncDispose]();
    await this.bridgeA[Symbol.asyncDispose]();
    await this.b[Symbol.asyncDispose]();
    await this.a[Symbol.asyncDispose]();
    await this.server[Symbol.asyncDispose]();
  }
}
