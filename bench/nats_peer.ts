// The far side of the NATS rows, in its own process as every other transport's peer is:
//   nats_peer.ts reply <url> <subject>          answers every request with its payload
//   nats_peer.ts sub <url> <subject> <count> <warm>   counts messages, times the last `count`
// Prints "ready" once subscribed (and flushed: the server knows the interest); `sub` ends with
// one JSON line { count, firstMs, lastMs } (wall milliseconds, comparable between processes).

import { connect } from "npm:nats@2.29.3";
import { wallMs } from "./clock.ts";

const [role, url, subject, countArg, warmArg] = Deno.args;
const nc = await connect({ servers: url });
if (role === "reply") {
  nc.subscribe(subject, { callback: (_e, m) => m.respond(m.data) });
  await nc.flush();
  console.log("ready");
  await nc.closed(); // killed by the driver
} else if (role === "sub") {
  const count = Number(countArg), warm = Number(warmArg);
  const done = Promise.withResolvers<void>();
  let seen = 0, firstMs = 0, sink = 0;
  nc.subscribe(subject, {
    callback: (_e, m) => {
      sink += m.data.length;
      if (seen === warm) firstMs = wallMs();
      if (++seen === warm + count) done.resolve();
    },
  });
  await nc.flush();
  console.log("ready");
  await done.promise;
  console.log(JSON.stringify({ count, firstMs, lastMs: wallMs(), sink: sink > 0 }));
  await nc.close();
} else {
  throw new Error(`nats bench peer: unknown role ${role}`);
}
