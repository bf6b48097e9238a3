// Kept only for cli.ts, which imports gc and scanChannels from here, until the CLI split (branch
// r-cli) imports them from mod.ts; then delete this file. Listing and cleanup live in
// src/namespace/listing.ts.

export { gc, scanChannels } from "./namespace/listing.ts";
