// The public types of publish/subscribe: options, what a publish did, what a subscriber receives.

/** What a subscriber's full inbox does to what is published: drop it (counted), or make the publisher wait. */
export type WhenFull = "drop" | "wait";

/** Options of `subscribe`. */
export interface SubscribeOptions {
  /** Namespace. Default "ferry". */
  prefix?: string;
  /**
   * "drop" (default): a publish that finds this inbox full skips it, and `dropped` counts it; the
   * publisher never waits for this subscriber. "wait": the publisher waits for room (up to its timeout).
   */
  whenFull?: WhenFull;
  /** Messages the inbox holds. Default 256. */
  capacity?: number;
  /** Largest message in bytes; a larger publish is dropped for this subscriber (counted). Default 16 KiB. */
  maxMessageSize?: number;
}

/** Options of a publisher. */
export interface PublisherOptions {
  /** Namespace. Default "ferry". */
  prefix?: string;
  /** Milliseconds a publish waits for room in a "wait" subscriber's inbox. Default 5000. */
  timeout?: number;
}

/** Options of one publish. */
export interface PublishOptions {
  /** Your own headers, handed to subscribers as `headers`. */
  headers?: Record<string, string>;
}

/** What one publish did. */
export interface PublishResult {
  /** Subscribers that got a copy. */
  delivered: number;
  /** Subscribers that did not: a "drop" inbox that was full, or a "wait" inbox still full at the timeout, or a copy too large. */
  dropped: number;
  /**
   * Subscribers that left the topic since this publisher last wrote to them, having died (their
   * inboxes were removed), or that left while a copy waited for room in their inbox.
   */
  reclaimed: number;
}

/** One published message as a subscriber receives it. */
export interface TopicMessage<T = unknown> {
  /** The topic it was published on. */
  topic: string;
  /** The value. */
  data: T;
  /** The publisher's own headers. */
  headers: Record<string, string>;
  /** The publishing process. */
  publisher: number;
}
