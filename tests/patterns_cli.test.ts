// The patterns' commands of cli.ts, run as a user would: call a served method, list services,
// subscribe in one process and publish from another.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Namespace, publish } from "../mod.ts";
import { Scope, textLines, within } from "./helpers.ts";

/** Removes the scope's group table (topics live there) when the test ends; Scope removes channels only. */
function groupTableOf(prefix: string): Disposable {
  return { [Symbol.dispose]: () => void Namespace.unlinkGroups({ prefix }) };
}

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", CLI, ...args] }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("cli call prints a method's result; a handler's error exits 1 with its code; services counts servers", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  await s.spawn("rpc_server.ts", "math");
  assert.deepEqual(await cli("call", "math", "add", '{"a": 1, "b": 2}', "--prefix", s.prefix), {
    code: 0,
    stdout: "3\n",
    stderr: "",
  });
  const failed = await cli(
    "call",
    "math",
    "fail",
    '{"code": "Nope", "message": "no way"}',
    "--prefix",
    s.prefix,
  );
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /no way \[Nope\]/);
  assert.equal((await cli("call", "math", "--prefix", s.prefix)).code, 2);

  // Values are read as send reads them: JSON, or the text itself with --string.
  const echoed = await cli("call", "math", "echo", "-1.5", "--prefix", s.prefix);
  assert.deepEqual(JSON.parse(echoed.stdout).value, -1.5);
  assert.equal(
    JSON.parse((await cli("call", "math", "echo", "hi", "--string", "--prefix", s.prefix)).stdout).value,
    "hi",
  );
  const notJson = await cli("call", "math", "add", "{a: 1}", "--prefix", s.prefix);
  assert.equal(notJson.code, 2);
  assert.match(
    notJson.stderr,
    /call: '\{a: 1\}' is not JSON \(.* at column 2\); --string sends text as a string/,
  );
  assert.equal(notJson.stdout, "");

  const listed = JSON.parse((await cli("services", "--json", "--prefix", s.prefix)).stdout);
  assert.deepEqual(listed.services.map((x: { service: string; servers: number }) => [x.service, x.servers]), [
    ["math", 1],
  ]);
});

Deno.test("cli sub prints what cli pub publishes", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  const sub = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "sub", "prices", "--count", "2", "--prefix", s.prefix],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors = textLines(sub.stderr);
  assert.match((await within(errors.next(), "the subscription")).value ?? "", /subscribed to 'prices'/);
  assert.match(
    (await cli("pub", "prices", '{"px": 1.5}', "--prefix", s.prefix)).stdout,
    /published to 1 subscriber/,
  );
  const notJson = await cli("pub", "prices", "hello", "--prefix", s.prefix);
  assert.equal(notJson.code, 2);
  assert.match(notJson.stderr, /pub: 'hello' is not JSON \(unexpected 'h' at column 1\)/);
  assert.match(
    (await cli("pub", "prices", "hello", "--string", "--prefix", s.prefix)).stdout,
    /published to 1 subscriber/,
  );
  const lines = [];
  for await (const line of textLines(sub.stdout)) lines.push(line);
  assert.equal((await within(sub.status, "the subscriber's exit")).code, 0);
  assert.deepEqual(lines, ['{"px":1.5}', '"hello"']);
  for await (const _ of errors) { /* drain */ }
});

Deno.test("cli sub prints a Map as an object, and ends with exit 0 when its reader goes away", async () => {
  await using s = new Scope();
  using _groups = groupTableOf(s.prefix);
  const sub = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "sub", "prices", "--prefix", s.prefix],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors = textLines(sub.stderr);
  assert.match((await within(errors.next(), "the subscription")).value ?? "", /subscribed to 'prices'/);
  const sent = await publish("prices", new Map<string, unknown>([["eur", 1.5], ["usd", 2n]]), {
    prefix: s.prefix,
  });
  assert.equal(sent.delivered, 1);
  // One write of one short line: atomic on a pipe, so one read takes all of it.
  const out = sub.stdout.getReader();
  const first = (await within(out.read(), "the first line")).value;
  assert.equal(new TextDecoder().decode(first), '{"eur":1.5,"usd":2}\n');
  // The reader goes away, as `ferry sub prices | head -n 1` does: cancelling the pipe's own stream
  // closes its read end, so the next line cannot be written.
  await out.cancel();
  await publish("prices", "after", { prefix: s.prefix });
  assert.equal((await within(sub.status, "the subscriber's exit")).code, 0);
  for await (const _ of errors) { /* drain */ }
});
