// The README's "Command line" lines, run exactly as written: each line through `sh -c` from the
// repository root with `deno` on PATH, as a newcomer pastes them. FERRY_PREFIX gives the session a
// namespace of its own (the lines use the default one, which other processes on this machine share).
//
// How the session is read: the `tail` line runs in the background (the README's "second terminal")
// and the run waits until it has the channel open, as a person switching terminals would; a line
// whose comment says Ctrl-C first stops that tail with SIGINT; `bench` is not run here (a quick run
// takes 30 s; tests/cli.test.ts checks that it is dispatched). Every other line must exit 0 with
// nothing on stderr, and print what its comment promises.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Channel, ChannelNotFoundError, Namespace } from "../mod.ts";
import { delay, Scope, segmentsOf, STEP_TIMEOUT_MS, textLines, within } from "./helpers.ts";

/** The first shell block of the README's "Command line" section: the lines a newcomer pastes. */
function readmeSession(): string {
  const readme = Deno.readTextFileSync(fileURLToPath(new URL("../README.md", import.meta.url)));
  const section = readme.slice(readme.indexOf("\n## Command line\n"));
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  if (block === null) throw new Error('README.md has no shell block under "## Command line"');
  return block[1];
}

export const README_SESSION = readmeSession();

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** What the foreground lines print on stdout, in order (the ones that print something to check). */
const EXPECTED_STDOUT: [RegExp, RegExp][] = [
  [/send jobs '\{"id": 1\}'/, /^sent 1 message to 'jobs' \(async: queued\)\n$/],
  [/recv jobs/, /^\{"id":1\}\n$/],
  [/send jobs '\{"id": 2\}'/, /^sent 1 message to 'jobs' \(ack: each released by a receiver\)\n$/],
  [/send jobs - --string/, /^sent 2 messages to 'jobs' \(ack: each released by a receiver\)\n$/],
  [/stat jobs/, /^channel +jobs /],
  [/ ls/, /^NAME +STATE [^]*\njobs +ready /],
  [/group add/, /^'jobs' added to group 'audit'\n$/],
  [/group send/, /^sent to 1 member\(s\): jobs\n$/],
  [/rm jobs/, /^removed 'jobs'\n$/],
  [/ gc/, /^nothing to remove under prefix /],
];

/** `deno` on PATH, as the README assumes: a directory holding a link to this test's own Deno. */
async function pathWithDeno(s: Scope): Promise<string> {
  const dir = await s.tempDir();
  await Deno.symlink(Deno.execPath(), `${dir}/deno`);
  return `${dir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`;
}

function shell(line: string, env: Record<string, string>): Deno.Command {
  return new Deno.Command("sh", {
    args: ["-c", line],
    cwd: REPO_ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** The pid of the live process other than this one that has `name` open, once there is one. */
async function opener(name: string, prefix: string): Promise<number> {
  for (const deadline = Date.now() + STEP_TIMEOUT_MS; Date.now() < deadline; await delay(20)) {
    try {
      const alive = Channel.stat(name, { prefix }).participants.filter((p) => p.alive && p.pid !== Deno.pid);
      if (alive.length > 0) return alive[0].pid;
    } catch (error) {
      if (!(error instanceof ChannelNotFoundError)) throw error;
    }
  }
  throw new Error(`nothing opened '${name}' within ${STEP_TIMEOUT_MS} ms`);
}

Deno.test("README: the Command line section's lines work exactly as written", async () => {
  await using s = new Scope();
  const env = { PATH: await pathWithDeno(s), FERRY_PREFIX: s.prefix };
  const lines = README_SESSION.trim().split("\n");
  assert.match(lines[0], /^deno run -A cli\.ts send jobs /, "the session starts with send");
  const decoder = new TextDecoder();
  // The lines name no prefix: unless the CLI honours FERRY_PREFIX they would touch the shared one.
  const where = await shell("deno run -A cli.ts ls --json", env).output();
  assert.equal(JSON.parse(decoder.decode(where.stdout)).prefix, s.prefix, "the CLI reads FERRY_PREFIX");
  let tail:
    | { child: Deno.ChildProcess; pid?: number; stdout: string[]; stderr: string[]; done: Promise<void> }
    | undefined;
  try {
    for (const line of lines) {
      const command = line.replace(/\s+#.*$/, "");
      const comment = line.slice(command.length);
      if (/cli\.ts bench /.test(command)) continue;
      if (/Ctrl-C/.test(comment) && tail !== undefined) {
        Deno.kill(tail.pid!, "SIGINT");
        const status = await within(tail.child.status, "tail's exit after Ctrl-C");
        await tail.done;
        assert.equal(status.code, 0, `tail exits 0 on Ctrl-C; stderr: ${tail.stderr.join("\n")}`);
        assert.deepEqual(tail.stderr, [], "tail wrote to stderr");
      }
      if (/cli\.ts tail /.test(command)) {
        const child = shell(command, env).spawn();
        const [stdout, stderr]: string[][] = [[], []];
        const collect = async (stream: ReadableStream<Uint8Array>, into: string[]) => {
          for await (const text of textLines(stream)) into.push(text);
        };
        const done = Promise.all([collect(child.stdout, stdout), collect(child.stderr, stderr)]).then(
          () => {},
        );
        tail = { child, stdout, stderr, done };
        tail.pid = await opener("jobs", s.prefix);
        continue;
      }
      const out = await within(shell(command, env).output(), line);
      const [stdout, stderr] = [decoder.decode(out.stdout), decoder.decode(out.stderr)];
      assert.equal(out.code, 0, `${line}\nexited ${out.code}; stderr: ${stderr}`);
      assert.equal(stderr, "", `${line}\nwrote to stderr`);
      const expected = EXPECTED_STDOUT.find(([which]) => which.test(command));
      assert.ok(expected, `the test expects something of: ${line}`);
      assert.match(stdout, expected[1], line);
    }
    assert.ok(tail, "the session runs a tail");
    assert.deepEqual(tail.stdout, ['{"id":2}', '"one"', '"two"', '{"x":1}'], "what tail printed");
    assert.deepEqual(segmentsOf(s.prefix), [], "the session leaves no channel behind");
  } finally {
    if (tail !== undefined) {
      const { child, pid } = tail;
      for (const kill of [() => pid && Deno.kill(pid, "SIGKILL"), () => child.kill("SIGKILL")]) {
        try {
          kill();
        } catch {
          // exited already
        }
      }
      await tail.child.status;
      await tail.done;
    }
    Namespace.unlinkGroups({ prefix: s.prefix });
  }
});
