// Opening the channel a command works on, and stopping on Ctrl-C. Without --create the channel
// must exist: a mistyped name would otherwise create a new, empty channel and wait on it.

import { Channel, ChannelNotFoundError, type TrustOptions } from "../mod.ts";
import { flag, integer, type ParsedArgs, prefixOf, str, trustArgs } from "./args.ts";
import { UsageError } from "./errors.ts";

export interface OpenArgs {
  name: string;
  prefix: string;
  create: boolean;
  capacity?: number;
  maxMessageSize?: number;
  trust: TrustOptions;
}

/** --prefix, --create and its settings, --permissions and --trust, checked before anything opens. */
export function openArgs(command: string, args: ParsedArgs, name: string): OpenArgs {
  const capacity = integer("capacity", str(args, "capacity"), 1);
  const maxMessageSize = integer("max-message-size", str(args, "max-message-size"), 0);
  const create = flag(args, "create");
  if (!create && (capacity !== undefined || maxMessageSize !== undefined)) {
    throw new UsageError(
      `${command}: --capacity and --max-message-size only apply with --create (an existing channel keeps its own)`,
    );
  }
  return { name, prefix: prefixOf(args), create, capacity, maxMessageSize, trust: trustArgs(args) };
}

/** Opens the channel; without --create it must exist already (else ChannelNotFoundError: exit 3). */
export function openChannel(
  command: string,
  o: OpenArgs,
  options: Parameters<typeof Channel.open>[1] = {},
): Channel {
  if (!o.create) {
    try {
      const { state } = Channel.stat(o.name, { prefix: o.prefix, ...o.trust });
      if (state === "incomplete") {
        throw new ChannelNotFoundError(
          `channel '${o.name}' was never finished: the process creating it died while building it`,
        );
      }
    } catch (error) {
      if (error instanceof ChannelNotFoundError) {
        throw new ChannelNotFoundError(`${error.message} (${command} --create makes it)`);
      }
      throw error;
    }
  }
  return Channel.open(o.name, {
    ...options,
    ...o.trust,
    prefix: o.prefix,
    ...(o.capacity === undefined ? {} : { capacity: o.capacity }),
    ...(o.maxMessageSize === undefined ? {} : { maxMessageSize: o.maxMessageSize }),
  });
}

/** Calls `stop` on Ctrl-C and SIGTERM until the returned function removes the listeners. */
export function onInterrupt(stop: () => void): () => void {
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  return () => {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
  };
}
