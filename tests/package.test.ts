// The package as a user or JSR sees it: every export documented with no private type in a public
// signature (`deno doc --lint`), publishable (`deno publish --dry-run`, offline), and no way to
// build what users should not (a Message comes only from a receive).

import assert from "node:assert/strict";
import { type Channel, Message } from "../mod.ts";
import { Scope } from "./helpers.ts";

const root = new URL("..", import.meta.url);

/** Runs deno with `args` in the repository; its exit code and its output without colours. */
async function deno(...args: string[]): Promise<{ code: number; output: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder();
  return { code, output: text.decode(stdout) + text.decode(stderr) };
}

Deno.test("deno doc --lint mod.ts finds nothing to report", async () => {
  const { code, output } = await deno("doc", "--lint", "mod.ts");
  assert.equal(code, 0, output);
  assert.doesNotMatch(output, /error|warning/i, output);
});

Deno.test("deno publish --dry-run accepts the package", async () => {
  const { code, output } = await deno("publish", "--dry-run", "--allow-dirty");
  assert.equal(code, 0, output);
  assert.match(output, /Dry run complete/, output);
  // The file list names src/errors.ts: only a report line counts.
  assert.doesNotMatch(output, /^\s*(error|warning)/im, output);
});

Deno.test("a Message cannot be constructed outside ferry, and a Channel has no releaseHeld", async () => {
  await using s = new Scope();
  const ch: Channel = s.open("package", { mode: "async" });
  ch.trySend("hello");
  const msg = ch.tryRecv()!;
  assert.ok(msg instanceof Message);
  assert.equal(msg.data, "hello");
  const Constructor = Message as unknown as new (...args: unknown[]) => Message;
  assert.throws(() => new Constructor(Symbol("ferry.message")), TypeError);
  assert.equal("releaseHeld" in ch, false);
});
