// The bridge's own failures, as FerryErrors with stable codes. Failures of the channels it forwards
// keep their channel errors (TimeoutError, PeerDiedError, ...): the bridge reports those codes
// across NATS instead of inventing new ones.

import { FerryError } from "../../mod.ts";

/** The NATS server could not be reached, refused the credentials, or the connection ended for good. */
export class NatsConnectionError extends FerryError {
  /** `cause` is the NATS client's own error. */
  constructor(message: string, options?: ErrorOptions) {
    super("NatsConnection", message, options);
  }
}

/**
 * JetStream refused what an async route needs: it is not enabled on the server (`nats-server -js`),
 * or a stream or consumer could not be found or created as configured.
 */
export class JetStreamError extends FerryError {
  /** `cause` is the NATS client's own error. */
  constructor(message: string, options?: ErrorOptions) {
    super("JetStream", message, options);
  }
}
