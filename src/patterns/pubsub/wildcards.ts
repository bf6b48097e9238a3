// Wildcard subscriptions (NATS style: `*` one token, `>` one or more trailing tokens). A wildcard
// subscription's inbox is a process member of one namespace-wide group per `whenFull`, and its name
// carries its pattern, so a publisher learns every live pattern from two GroupWatches: one atomic
// load each per publish while no wildcard subscription came or went, and one read of the two groups
// (and a match of each pattern against the topics it publishes to) when one did.

import { InvalidNameError } from "../../errors.ts";
import type { GroupWatch } from "../../namespace/watch.ts";
import type { WhenFull } from "./options.ts";
import type { TopicGroups } from "./topics.ts";

/**
 * Where wildcard inboxes are members, passed to TopicGroups as a topic (groups `!wildcards!drop`
 * and `!wildcards!wait`): no topic can be named so, as topics have no `!`.
 */
export const WILDCARDS = "!wildcards";

/** Same limit as a topic, so that the inbox name fits the 100-character channel name. */
const MAX_PATTERN = 64;
const TOKEN = /^[A-Za-z0-9_-]+$/;
/** The private suffix of an inbox name (see privateName), with what precedes it. */
const INBOX = /^(.*)!sub\.\d+\.[0-9a-f]{8}$/;

/** Whether `name` is meant as a pattern: one of its `.`-separated tokens is `*` or `>`. */
export function isPattern(name: unknown): boolean {
  return typeof name === "string" && name.split(".").some((t) => t === "*" || t === ">");
}

/**
 * Checks a wildcard pattern: tokens separated by `.`, each `*`, `>` (last only) or letters,
 * digits, `_` and `-`; at most 64 characters. Returns the pattern.
 */
export function checkPattern(pattern: string): string {
  const fail = (why: string): never => {
    throw new InvalidNameError(
      `pattern ${JSON.stringify(pattern)} is not valid: ${why} (a pattern is tokens separated by ".", ` +
        'each "*" for one token, ">" for the rest (last only), or letters, digits, _ -)',
    );
  };
  if (pattern.length > MAX_PATTERN) fail(`it is longer than ${MAX_PATTERN} characters`);
  const tokens = pattern.split(".");
  tokens.forEach((token, at) => {
    if (token === "") fail("a token is empty");
    if (token === ">" && at !== tokens.length - 1) fail('">" is not the last token');
    if (token !== "*" && token !== ">" && !TOKEN.test(token)) fail(`token ${JSON.stringify(token)}`);
  });
  return pattern;
}

/**
 * The base of a wildcard inbox's name: the pattern with `*` written `!` and `>` written `!!`
 * (channel names have neither), so `prices.*` has inboxes `prices.!!sub.<pid>.<random>`.
 */
export function inboxBase(pattern: string): string {
  return pattern.split(".").map((t) => t === "*" ? "!" : t === ">" ? "!!" : t).join(".");
}

/** The pattern tokens an inbox name says it subscribes to, or undefined for a name that is not one. */
export function patternOf(inbox: string): string[] | undefined {
  const m = INBOX.exec(inbox);
  if (m === null) return undefined;
  const tokens = m[1].split(".").map((t) => t === "!" ? "*" : t === "!!" ? ">" : t);
  return tokens.some((t) => t.includes("!")) ? undefined : tokens;
}

/** Whether `inbox` is a wildcard subscription's (its name holds a `*` or `>` token). */
export function isWildcardInbox(inbox: string): boolean {
  return patternOf(inbox)?.some((t) => t === "*" || t === ">") ?? false;
}

/** Whether the tokens of a topic match those of a pattern. */
export function matches(pattern: readonly string[], topic: readonly string[]): boolean {
  for (let at = 0; at < pattern.length; at++) {
    if (pattern[at] === ">") return topic.length > at;
    if (at >= topic.length || (pattern[at] !== "*" && pattern[at] !== topic[at])) return false;
  }
  return topic.length === pattern.length;
}

/** Wildcard inboxes matching one topic, by what their full inbox does. */
export interface Matching {
  drop: readonly string[];
  wait: readonly string[];
}

const NONE: readonly string[] = [];

/** A publisher's view of the wildcard subscriptions: which inboxes match each topic it publishes to. */
export class WildcardSubscribers {
  /** Changes each time the wildcard subscriptions did: a topic's cached match is stale then. */
  version = 0;
  #dropWatch: GroupWatch;
  #waitWatch: GroupWatch;
  #drop: readonly string[] = NONE;
  #wait: readonly string[] = NONE;
  #patterns: { inbox: string; tokens: string[]; whenFull: WhenFull }[] = [];
  #byTopic = new Map<string, Matching>();

  constructor(groups: TopicGroups) {
    this.#dropWatch = groups.watch(WILDCARDS, "drop");
    this.#waitWatch = groups.watch(WILDCARDS, "wait");
  }

  /**
   * Looks whether a wildcard subscription came or went (an atomic load per group when none did);
   * returns the inboxes that left since the last look (closed, or their process died).
   */
  refresh(): readonly string[] {
    const drop = this.#dropWatch.members();
    const wait = this.#waitWatch.members();
    if (drop === this.#drop && wait === this.#wait) return NONE;
    const now = new Set([...drop, ...wait]);
    const left = [...this.#drop, ...this.#wait].filter((name) => !now.has(name));
    this.#drop = drop;
    this.#wait = wait;
    this.#patterns = [];
    for (const [names, whenFull] of [[drop, "drop"], [wait, "wait"]] as const) {
      for (const inbox of names) {
        const tokens = patternOf(inbox);
        if (tokens !== undefined) this.#patterns.push({ inbox, tokens, whenFull });
      }
    }
    this.#byTopic.clear();
    this.version++;
    return left;
  }

  /** The wildcard inboxes whose pattern matches `topic`, as of the last refresh(). */
  matching(topic: string): Matching {
    let found = this.#byTopic.get(topic);
    if (found !== undefined) return found;
    const tokens = topic.split(".");
    const drop: string[] = [];
    const wait: string[] = [];
    for (const p of this.#patterns) {
      if (matches(p.tokens, tokens)) (p.whenFull === "drop" ? drop : wait).push(p.inbox);
    }
    this.#byTopic.set(topic, found = { drop, wait });
    return found;
  }
}
