// The live views over one channel's mapping (loans and zero-copy messages). A view must never
// outlive its mapping or its slot: the channel detaches each one before the slot can be reused
// (commit, unloan, release) and all of them before close() hands the slots back and unmaps.
//
// A view also keeps its channel reachable: each tracked buffer is registered with `pins`, whose
// held value is the channel, so the channel's FinalizationRegistry (which closes and unmaps) can
// never run while a view that could still be read or written exists. The registry holds nothing
// else strongly, so a channel whose views are all detached or garbage is collected as before.

/** Held (strongly) by `pins` while a tracked buffer is alive and not detached. */
interface Pin {
  /** The channel whose mapping the buffer lies in: kept reachable by this pin. */
  readonly owner: object;
  readonly live: Set<WeakRef<ArrayBuffer>>;
  readonly ref: WeakRef<ArrayBuffer>;
}

// A buffer that became garbage without being detached: forget it, which drops the pin on its
// channel. (The slot stays held, as the user left it, until the channel is closed or collected.)
const pins = new FinalizationRegistry<Pin>((pin) => pin.live.delete(pin.ref));

/** A view handed out: the token to detach it with. */
export type ViewTicket = WeakRef<ArrayBuffer>;

/** @internal The registry of one channel's outstanding views. */
export class Views {
  readonly #owner: object;
  readonly #live = new Set<WeakRef<ArrayBuffer>>();

  constructor(owner: object) {
    this.#owner = owner;
  }

  /** Tracks `buffer` (over the mapping) until `detach` or until it is garbage. */
  track(buffer: ArrayBuffer): ViewTicket {
    const ref = new WeakRef(buffer);
    this.#live.add(ref);
    pins.register(buffer, { owner: this.#owner, live: this.#live, ref }, ref);
    return ref;
  }

  /** Detaches one view (every typed array over it reads length 0 from now on). */
  detach(ticket: ViewTicket): void {
    this.#live.delete(ticket);
    pins.unregister(ticket);
    const buffer = ticket.deref();
    if (buffer !== undefined && !buffer.detached) buffer.transfer(0);
  }

  /** Detaches every outstanding view: before the channel frees their slots or unmaps. */
  detachAll(): void {
    for (const ticket of [...this.#live]) this.detach(ticket);
  }
}
