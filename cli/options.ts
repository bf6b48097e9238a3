// The options several commands share, written once so their help reads the same everywhere.

import type { OptionSpec } from "./args.ts";

export const PREFIX: OptionSpec = {
  type: "string",
  arg: "<prefix>",
  help: 'namespace of the channel (default: $FERRY_PREFIX, else "ferry")',
};
export const JSON_OPT: OptionSpec = { type: "boolean", help: "machine-readable output (see above)" };
export const HELP: OptionSpec = { type: "boolean", short: "h", help: "show this help" };
export const TIMEOUT: OptionSpec = {
  type: "string",
  arg: "<ms>",
  help: 'longest wait for each message, in ms (default 5000; 0: do not wait; "inf": no limit)',
};
export const CREATE: OptionSpec = {
  type: "boolean",
  help: "create the channel if it does not exist (else exit 3)",
};
export const CAPACITY: OptionSpec = {
  type: "string",
  arg: "<n>",
  help: "with --create: messages the channel holds at once (default 100)",
};
export const MAX_SIZE: OptionSpec = {
  type: "string",
  arg: "<bytes>",
  help: "with --create: largest encoded message (default 1048576)",
};
export const PERMISSIONS: OptionSpec = {
  type: "string",
  arg: "<octal>",
  help: "mode of a channel this creates, and the most an existing one may grant (default 600)",
};
export const TRUST: OptionSpec = {
  type: "string",
  arg: "<uid,...>",
  help: "accept channels owned by these users too (besides yours and root's)",
};
export const RAW: OptionSpec = {
  type: "boolean",
  help: "print each payload's bytes as base64 instead of decoding it",
};

/**
 * A command's options with those every command takes around them: --prefix first, then its own,
 * then --permissions, --trust, --json and --help (the order of its help).
 */
export function withCommon(own: Record<string, OptionSpec> = {}): Record<string, OptionSpec> {
  return { prefix: PREFIX, ...own, permissions: PERMISSIONS, trust: TRUST, json: JSON_OPT, help: HELP };
}

/** --create and the creation settings it allows, for commands that open a channel. */
export const CREATION = { create: CREATE, capacity: CAPACITY, "max-message-size": MAX_SIZE };
