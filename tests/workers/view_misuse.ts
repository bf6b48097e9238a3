// Keeps views over shared memory past the point where they stop being valid, the way a careless
// program would, and reports what using them did. Run in a child process: before views were
// detached, each case ended in SIGSEGV (exit 139) or wrote into another sender's message.
// Usage: view_misuse.ts <prefix> <name> <case>; prints one JSON line (and "ready"/"closed" lines
// for the interactive case). The parent queues whatever the case receives before starting it.
//   view-after-close  recv a zero-copy message, keep msg.view, close, read the view
//   loan-after-close  loan, close, write the view, then try to commit it
//   loan-after-gc     loan from a channel that is then dropped and collected, write the view;
//                     then drop the view too and check the channel is collected and its slot
//                     given back (needs --v8-flags=--expose-gc)
//   every-path        one zero-copy message by each receive path, close, read every view
//   transferred       a zero-copy message view and a loan view whose ArrayBuffers the program
//                     moves away with transfer() (out of ferry's reach), then close and use both
//   stale-loan        loan on a capacity-1 channel with a receive parked, close, say "closed",
//                     wait (synchronously: the parked wait keeps the old mapping) until another
//                     process's message sits in the slot the loan had, write the stale view

import { Channel, ChannelFullError } from "../../mod.ts";

const [prefix, name, which] = Deno.args;
const RAW = { prefix, codec: "raw", mode: "async" } as const;

/** What calling `f` threw (a FerryError's code, else the error's name), or "no error". */
function outcome(f: () => unknown): string {
  try {
    f();
    return "no error";
  } catch (e) {
    return (e as { code?: string }).code ?? (e as Error).name;
  }
}

/** Writes `value` into every byte of `view`, both ways a program might: fill, then by index. */
function write(view: Uint8Array, value: number): string {
  const filled = outcome(() => view.fill(value)); // a detached view: TypeError
  for (let i = 0; i < 4096; i++) view[i] = value; // a detached view: ignored
  return filled;
}

/** Reads every byte of `view` (faults if the memory behind it is gone). */
function sum(view: Uint8Array): number {
  let total = 0;
  for (let i = 0; i < view.length; i++) total += view[i];
  return total + (view[0] ?? 0);
}

/** Yields one macrotask, so FinalizationRegistry cleanup tasks queued by gc() can run. */
function turn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

const gc = (globalThis as { gc?: () => void }).gc;

switch (which) {
  case "view-after-close": {
    const rx = Channel.open<Uint8Array>(name, { ...RAW, zeroCopy: true, autoRelease: false });
    const msg = await rx.recv({ timeout: 20_000 });
    const view = msg.view;
    const before = view.length;
    rx.close();
    const read = sum(view);
    console.log(JSON.stringify({
      before,
      after: view.length,
      read,
      view: outcome(() => msg.view),
      bytes: outcome(() => msg.bytes),
      release: outcome(() => msg.release()),
    }));
    break;
  }
  case "loan-after-close": {
    const tx = Channel.open<Uint8Array>(name, RAW);
    const view = tx.loan(4096);
    const before = view.length;
    tx.close();
    const fill = write(view, 7);
    console.log(JSON.stringify({
      before,
      after: view.length,
      fill,
      read: sum(view),
      commit: outcome(() => tx.commit(view)),
      unloan: outcome(() => tx.unloan(view)),
    }));
    break;
  }
  case "loan-after-gc": {
    if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");
    let channel: WeakRef<object> | undefined;
    const lend = () => {
      const tx = Channel.open<Uint8Array>(name, { ...RAW, capacity: 1 });
      channel = new WeakRef(tx);
      return tx.loan(4096); // the handle is dropped here, its loan view kept
    };
    let view: Uint8Array | null = lend();
    for (let i = 0; i < 10; i++) {
      gc();
      await turn();
    }
    const pinned = channel!.deref() !== undefined;
    const fill = write(view, 7);
    const wrote = sum(view);
    // Drop the view as well: now nothing keeps the channel, which is collected, closed and its
    // loaned slot given back, as any dropped handle's is.
    view = null;
    const other = Channel.open<Uint8Array>(name, RAW);
    let slotBack = false;
    for (let i = 0; i < 50 && !slotBack; i++) {
      gc();
      await turn();
      try {
        other.trySend(new Uint8Array(4));
        slotBack = true;
      } catch (e) {
        if (!(e instanceof ChannelFullError)) throw e;
      }
    }
    other.close();
    console.log(JSON.stringify({ pinned, fill, wrote, slotBack }));
    break;
  }
  case "every-path": {
    const rx = Channel.open<Uint8Array>(name, { ...RAW, zeroCopy: true, autoRelease: false });
    const views: Record<string, Uint8Array> = {};
    const noView: string[] = []; // paths that gave no view (recvSync copied before views were kept)
    const keep = (path: string, msg: { view: Uint8Array }) => {
      try {
        views[path] = msg.view;
      } catch {
        noView.push(path);
      }
    };
    keep("recv", await rx.recv({ timeout: 20_000 }));
    keep("tryRecv", rx.tryRecv()!);
    keep("recvSync", rx.recvSync({ timeout: 20_000 }));
    keep("tryRecvMany", rx.tryRecvMany(1)[0]);
    keep("recvMany", (await rx.recvMany(1, { timeout: 20_000 }))[0]);
    keep("recvManySync", rx.recvManySync(1, { timeout: 20_000 })[0]);
    for await (const msg of rx) {
      keep("forAwait", msg);
      break;
    }
    const held = rx.stat().inFlight;
    const before = Object.fromEntries(Object.entries(views).map(([path, v]) => [path, v.length]));
    rx.close();
    const after = Object.fromEntries(Object.entries(views).map(([path, v]) => [path, sum(v) + v.length]));
    console.log(JSON.stringify({ held, noView, before, after }));
    break;
  }
  case "stale-loan": {
    const tx = Channel.open<Uint8Array>(name, { ...RAW, capacity: 1 });
    console.log("ready");
    const view = tx.loan(4);
    // A receive parked on this handle: while its wait is out, the handle cannot be freed, so the
    // segment stays mapped after close() (the hazard: the view still reaches the slot).
    const parked = tx.recv({ timeout: 60_000 }).catch((e) => (e as { code?: string }).code);
    await turn(); // let the receive park
    tx.close(); // gives the loaned slot back to the channel
    console.log("closed");
    // Synchronously, so the parked wait cannot return and unmap: until the parent's message is
    // queued in the one slot this loan had.
    const deadline = Date.now() + 20_000;
    while (Channel.stat(name, { prefix }).depth === 0) {
      if (Date.now() > deadline) throw new Error("no message arrived");
    }
    const fill = write(view, 238);
    console.log(JSON.stringify({ length: view.length, fill, parked: await parked }));
    break;
  }
  case "transferred": {
    const rx = Channel.open<Uint8Array>(name, { ...RAW, zeroCopy: true, autoRelease: false });
    const msg = await rx.recv({ timeout: 20_000 });
    const moved = new Uint8Array((msg.view.buffer as ArrayBuffer).transfer());
    const loaned = new Uint8Array((rx.loan(4096).buffer as ArrayBuffer).transfer());
    rx.close(); // unmaps the segment: the moved buffers still point into it
    const read = sum(moved);
    write(loaned, 9);
    console.log(JSON.stringify({ movedLength: moved.length, read, loanedRead: sum(loaned) }));
    break;
  }
  default:
    throw new Error(`unknown case ${which}`);
}
