// Topics as groups: a topic's subscribers are the members of its group, `<topic>!drop` or
// `<topic>!wait` by what their full inbox does. A membership lasts as long as its subscriber's
// process (a group "process" membership): a subscriber that dies leaves its topic at the next look
// at the group, SIGKILL included, with no liveness check here.

import { Namespace } from "../../namespace/namespace.ts";
import type { GroupWatch } from "../../namespace/watch.ts";
import type { WhenFull } from "./options.ts";

const groupOf = (topic: string, whenFull: WhenFull) => `${topic}!${whenFull}`;

/**
 * Topic memberships, kept in the namespace's group table: the one place pub/sub uses groups. One
 * per process and namespace, shared by its subscriptions and publishers, and closed with the last
 * of them (a Namespace holding process memberships is kept reachable until closed, so it must not
 * outlive its users). One Namespace per subscription would work as well, its close ending the
 * membership, but would open the table (a descriptor and a mapping) per subscription; shared, a
 * process opens it once, and each subscription ends its own membership with a discard.
 */
export class TopicGroups {
  static #shared = new Map<string, TopicGroups>();
  #prefix: string;
  #ns: Namespace;
  #users = 0;

  private constructor(prefix: string) {
    this.#prefix = prefix;
    this.#ns = Namespace.connect({ prefix });
  }

  /** The process's TopicGroups of `prefix`; release() it when done. */
  static acquire(prefix: string): TopicGroups {
    let groups = TopicGroups.#shared.get(prefix);
    if (groups === undefined) TopicGroups.#shared.set(prefix, groups = new TopicGroups(prefix));
    groups.#users++;
    return groups;
  }

  release(): void {
    if (--this.#users > 0) return;
    TopicGroups.#shared.delete(this.#prefix);
    this.#ns.close();
  }

  /** Until discard(), or until this process dies (SIGKILL included). */
  add(topic: string, whenFull: WhenFull, inbox: string): void {
    this.#ns.groupAdd(groupOf(topic, whenFull), inbox, { lifetime: "process" });
  }

  discard(topic: string, whenFull: WhenFull, inbox: string): void {
    this.#ns.groupDiscard(groupOf(topic, whenFull), inbox);
  }

  /** The inboxes subscribed now; the memberships of dead subscribers end on this look. */
  members(topic: string, whenFull: WhenFull): string[] {
    return this.#ns.groupMembers(groupOf(topic, whenFull));
  }

  /** A watch on the inboxes subscribed (see GroupWatch), valid until the last release(). */
  watch(topic: string, whenFull: WhenFull): GroupWatch {
    return this.#ns.watchGroup(groupOf(topic, whenFull));
  }
}
