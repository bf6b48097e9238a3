// Kept only for cli.ts, which imports unlinkIncomplete from here, until the CLI split (branch
// r-cli) imports it from src/channel/observe.ts; then delete this file. The library is in
// src/channel/ and reaches users through mod.ts.

export { unlinkIncomplete } from "./channel/observe.ts";
