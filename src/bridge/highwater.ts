// An async in route's memory of how far its consumer has delivered, kept on the NATS server so
// that it outlives the bridge process.
//
// Why: JetStream can deliver a message a second time as a *first* delivery (deliveryCount 1), so
// the count alone does not reveal the repeat. nats-server before 2.10.14 rewinds a pull consumer's
// delivery cursor by one when a due redelivery finds only pull requests whose client is gone
// (nats-server#5305, "delivery count going backwards"), and a SIGKILLed bridge leaves exactly
// such requests behind. The message under the rewound cursor, the highest stream sequence
// delivered so far, then comes again with deliveryCount 1, often to the bridge process that
// replaced the dead one, which never saw the first copy. The server's own record
// (`delivered.stream_seq`) is rewound with the cursor, so it cannot tell either.
//
// So each route records, in a KV bucket, a bound at or above every stream sequence any of its
// processes sent into the local channel: it raises the bound before sending a message above it
// (a step ahead, so the write is one round trip per `step` messages, not per message), and a
// process that starts marks every first delivery at or below the bound it found as `redelivered`.
// The cost: after a restart, up to `step` messages that were never delivered before are marked
// too (marking a copy that turns out to be the only one is allowed; an unmarked duplicate is not).

import type { JetStreamClient, KV } from "npm:nats@2.29.3";
import { JetStreamError } from "./errors.ts";
import { text } from "./outbound.ts";

/** The KV bucket that holds every async in route's bound, one key per stream and consumer. */
export const HIGH_WATER_BUCKET = "ferry_bridge";
/** JetStream's API error for an update whose expected revision is not the key's last one. */
const WRONG_LAST_SEQUENCE = 10071;

/** @internal Opens (creating if absent) the bucket; JetStreamError when the server refuses. */
export async function openHighWaterBucket(js: JetStreamClient): Promise<KV> {
  try {
    return await js.views.kv(HIGH_WATER_BUCKET, { history: 1 });
  } catch (e) {
    throw new JetStreamError(
      `opening the KV bucket '${HIGH_WATER_BUCKET}' (async in routes keep their delivery bound there): ${
        text(e)
      }`,
      { cause: e },
    );
  }
}

/** @internal One route's bound. */
export class HighWater {
  readonly #kv: KV;
  readonly #key: string;
  readonly #step: number;
  /** The bound as this process last read or wrote it: every sequence it sends is at or below it. */
  #covered = 0;

  constructor(kv: KV, stream: string, durable: string, step: number) {
    this.#kv = kv;
    this.#key = `${stream}.${durable}`;
    this.#step = step;
  }

  /** The bound now (0 when no process recorded one): what earlier processes may have delivered. */
  async read(): Promise<number> {
    const e = await this.#kv.get(this.#key);
    const bound = e === null || e.operation !== "PUT" ? 0 : Number(e.string()) || 0;
    this.#covered = Math.max(this.#covered, bound);
    return bound;
  }

  /** Whether `seq` is at or below the bound this process recorded or found (no `cover` needed). */
  covers(seq: number): boolean {
    return seq <= this.#covered;
  }

  /**
   * Makes sure the recorded bound is at least `seq`; resolves once it is stored. Concurrent
   * bridges on the same consumer raise it with compare-and-set, so it never goes down.
   */
  async cover(seq: number): Promise<void> {
    if (seq <= this.#covered) return;
    const want = seq + this.#step;
    for (;;) {
      const e = await this.#kv.get(this.#key);
      const bound = e === null || e.operation !== "PUT" ? 0 : Number(e.string()) || 0;
      if (bound >= seq) {
        this.#covered = bound;
        return;
      }
      try {
        await this.#kv.put(this.#key, String(want), { previousSeq: e === null ? 0 : e.revision });
        this.#covered = want;
        return;
      } catch (err) {
        // Another bridge raised it meanwhile: read it again.
        if ((err as { api_error?: { err_code?: number } })?.api_error?.err_code !== WRONG_LAST_SEQUENCE) {
          throw err;
        }
      }
    }
  }
}
