// The NATS client is loaded when a bridge starts, not when mod.ts is imported: it costs about 65 ms
// to load, which no program that only uses local channels should pay. Everything else in
// src/bridge imports its types only (erased at run time) and takes its values from here.

/** The npm `nats` client's module. */
export type NatsModule = typeof import("npm:nats@2.29.3");

let loaded: NatsModule | undefined;

/** @internal Loads the client once. */
export async function loadNats(): Promise<NatsModule> {
  loaded ??= await import("npm:nats@2.29.3");
  return loaded;
}

/** @internal The loaded client; only called by code that runs after Bridge.start loaded it. */
export function natsModule(): NatsModule {
  if (loaded === undefined) {
    throw new Error("ferry bridge: the NATS client is used before Bridge.start loaded it");
  }
  return loaded;
}
