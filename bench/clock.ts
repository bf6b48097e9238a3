// The benchmark's clocks, both public: `performance.now()` for spans inside one process (sub-µs
// resolution in this Deno, measured: steps of ~0.16 µs, about 80 ns a call) and
// `performance.timeOrigin + performance.now()` for spans that start in one process and end in
// another (the 2x2 rows: two receivers, one span). Both are milliseconds as floats.
//
// Round trips shorter than a microsecond are timed two ways, because a stamp costs a quarter of
// one: percentiles from one stamp per round trip (chained: the stamp that ends one trip starts the
// next, so each sample carries one stamp's cost), and the mean from whole batches of round trips
// with no stamp inside the batch (`stampCostUs` measures what a stamp adds, for the report).

/** Milliseconds on this process's monotonic clock. */
export const now: () => number = () => performance.now();

/** Milliseconds since the epoch, comparable between processes on one machine (µs resolution). */
export const wallMs = (): number => performance.timeOrigin + performance.now();

/** What one `performance.now()` costs here, in microseconds: the bias a chained sample carries. */
export function stampCostUs(): number {
  const n = 200_000;
  let sink = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) sink += performance.now();
  const us = (performance.now() - t0) * 1000 / n;
  return sink > 0 ? us : us;
}
