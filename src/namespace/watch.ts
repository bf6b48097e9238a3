// GroupWatch: one group's members for a caller that needs them before every message (a publisher
// fanning out by hand). The group table reports them again only after a membership changed, which
// costs one atomic load instead of a scan of the table (core/src/group/watch.rs).

import type { GroupTable, WatchState } from "./table.ts";
import { watchState } from "./table.ts";

const token = Symbol("ferry.namespace.watch");

/** Makes a GroupWatch; only Namespace.watchGroup calls it. */
export function newGroupWatch(table: GroupTable, group: string): GroupWatch {
  return new GroupWatch(token, table, group);
}

/**
 * The members of one group, read again only when they may have changed: made by
 * {@linkcode Namespace.watchGroup}, valid until its namespace closes.
 *
 * @example Send to every member, looking up the members before each message
 * ```ts
 * import { Channel, Namespace } from "@ferry/ferry";
 *
 * using ns = Namespace.connect();
 * const watch = ns.watchGroup("events");
 * let members: readonly string[] = [];
 * let channels: Channel[] = [];
 * for (const event of ["start", "stop"]) {
 *   if (watch.members() !== members) { // changed: open the new members' channels
 *     members = watch.members();
 *     for (const ch of channels) ch.close();
 *     channels = members.map((name) => Channel.open(name, { create: false, mode: "async" }));
 *   }
 *   for (const ch of channels) ch.trySend(event);
 * }
 * for (const ch of channels) ch.close();
 * ```
 */
export class GroupWatch {
  /** The group. */
  readonly group: string;
  #table: GroupTable;
  #state: WatchState;

  /** @internal Use `Namespace.watchGroup`. */
  constructor(key: symbol, table: GroupTable, group: string) {
    if (key !== token) throw new TypeError("use Namespace.watchGroup()");
    this.#state = watchState(group);
    this.group = group;
    this.#table = table;
  }

  /**
   * The member channels of the group now, sorted, as `Namespace.groupMembers` gives them, but the
   * same array as the last call's (`===`) while no membership was made or ended: then the call
   * costs an atomic load and, per member held by another process (`lifetime: "process"`), one
   * lock test that tells whether that process lives. A member whose process died is ended here.
   */
  members(): readonly string[] {
    return this.#table.membersWatched(this.#state);
  }
}
