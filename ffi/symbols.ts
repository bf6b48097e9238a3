// The C ABI of core/src/ffi/ (every export of a release build), one entry per function, one line per
// parameter. Per-message calls use only u32/i32/pointer/buffer parameters so V8 takes its fast path.
// The hooks only tests and the benchmark call are in ./testing.ts: a release build lacks them, and
// dlopen fails on a missing symbol.

export const symbols = {
  ferry_open: {
    parameters: [
      "buffer", // const u8 *name ("<prefix>.<name>")
      "u32", // name_len
      "u32", // capacity
      "u32", // max_message
      "u32", // memory_lo (the memory bound in bytes; both halves 0xffffffff: the default)
      "u32", // memory_hi
      "u32", // mode (permissions)
      "u32", // slot_limit
      "u32", // flags (1 observer, 2 existing only)
      "u32", // timeout_ms for a segment another process is building (0xffffffff: none)
      "buffer", // const u32 *trusted (owner uids accepted besides the caller and root)
      "u32", // trusted_len
      "buffer", // i32 err_out[8] (OPEN_REPORT_LEN)
    ],
    result: "pointer",
  },
  ferry_unlink: { parameters: ["buffer", "u32"], result: "i32" }, // name, name_len
  ferry_unlink_incomplete: {
    parameters: [
      "buffer", // const u8 *name ("<prefix>.<name>")
      "u32", // name_len
      "u32", // mode (permissions)
      "buffer", // const u32 *trusted
      "u32", // trusted_len
    ],
    result: "i32",
  },
  ferry_close: { parameters: ["pointer"], result: "void" },
  ferry_free: { parameters: ["pointer"], result: "void" },
  ferry_info: { parameters: ["pointer", "buffer"], result: "i32" }, // handle, u32 out[2]
  ferry_base: { parameters: ["pointer"], result: "pointer" }, // h -> segment start
  ferry_held_at: {
    parameters: [
      "pointer", // Handle *h
      "u32", // slot
      "u32", // generation
      "buffer", // u32 out[2]: offset from ferry_base (lo, hi)
    ],
    result: "i32", // the message's length, or a negative status
  },
  ferry_loan: { parameters: ["pointer", "u32", "buffer"], result: "i32" }, // h, len, u32 out[4]
  ferry_commit: {
    parameters: [
      "pointer", // Handle *h
      "u32", // slot
      "u32", // generation
      "u32", // loaned length
      "u32", // committed length
      "u32", // flags (1 ack, 8 repeat)
      "u32", // expiry_ms
      "buffer", // u32 out[4]
    ],
    result: "i32",
  },
  ferry_unloan: { parameters: ["pointer", "u32", "u32"], result: "i32" }, // h, slot, generation
  ferry_send: {
    parameters: [
      "pointer", // Handle *h
      "buffer", // const u8 *payload
      "u32", // len
      "u32", // flags (1 ack, 2 count full, 4 retry, 8 repeat)
      "u32", // expiry_ms (0 never)
      "buffer", // u32 out[4]: slot, generation, seq_lo, seq_hi
    ],
    result: "i32",
  },
  ferry_send_wait: {
    parameters: [
      "pointer", // Handle *h
      "buffer", // const u8 *payload
      "u32", // len
      "u32", // flags
      "u32", // expiry_ms
      "u32", // timeout_ms (0xffffffff: none)
      "buffer", // u32 out[4]
    ],
    result: "i32",
  },
  ferry_note_full: { parameters: ["pointer"], result: "void" }, // h
  ferry_send_batch: {
    parameters: [
      "pointer", // Handle *h
      "buffer", // const u8 *payloads, end to end
      "u32", // bytes in payloads
      "buffer", // const u32 *lens
      "u32", // count
      "u32", // flags (8 repeat)
      "u32", // expiry_ms
      "buffer", // u32 out[1]: sent
    ],
    result: "i32",
  },
  ferry_recv_batch: {
    parameters: [
      "pointer", // Handle *h
      "buffer", // u8 *dst
      "u32", // dst_cap
      "u32", // dst_off
      "u32", // max messages
      "u32", // flags (1 auto release)
      "buffer", // u32 meta[8 * max]
      "u32", // meta length
      "buffer", // u32 count_out[1]
    ],
    result: "i32",
  },
  ferry_recv_batch_wait: {
    parameters: [
      "pointer", // Handle *h
      "buffer", // u8 *dst
      "u32", // dst_cap
      "u32", // dst_off
      "u32", // max messages
      "u32", // flags (1 auto release)
      "buffer", // u32 meta[8 * max]
      "u32", // meta length
      "buffer", // u32 count_out[1]
      "u32", // timeout_ms
    ],
    result: "i32",
  },
  ferry_send_room_wait: { parameters: ["pointer", "u32"], result: "i32" }, // h, timeout_ms
  ferry_recv: {
    parameters: [
      "pointer", // Handle *h
      "buffer", // u8 *dst
      "u32", // dst_cap
      "u32", // dst_off
      "u32", // flags (1 auto release, 2 no copy)
      "buffer", // u32 meta[9]
    ],
    result: "i32",
  },
  ferry_recv_wait: {
    parameters: [
      "pointer", // Handle *h
      "buffer", // u8 *dst
      "u32", // dst_cap
      "u32", // dst_off
      "u32", // flags
      "buffer", // u32 meta[9]
      "u32", // timeout_ms
    ],
    result: "i32",
  },
  ferry_read: {
    parameters: [
      "pointer", // Handle *h
      "u32", // slot
      "u32", // generation
      "buffer", // u8 *dst
      "u32", // dst_cap
      "u32", // dst_off
    ],
    result: "i32",
  },
  ferry_release: { parameters: ["pointer", "u32", "u32"], result: "i32" }, // h, slot, generation
  ferry_reject: { parameters: ["pointer", "u32", "u32", "i32"], result: "i32" }, // h, slot, generation, outcome
  ferry_ack_status: { parameters: ["pointer", "u32", "u32"], result: "i32" }, // h, slot, generation
  ferry_ack_wait: { parameters: ["pointer", "u32", "u32", "u32"], result: "i32" }, // h, slot, gen, timeout_ms
  ferry_ack_cancel: { parameters: ["pointer", "u32", "u32"], result: "i32" }, // h, slot, generation
  ferry_park_prepare: { parameters: ["pointer", "u32"], result: "u32" }, // h, side (0 recv, 1 send)
  ferry_park_cancel: { parameters: ["pointer", "u32"], result: "void" }, // h, side
  ferry_wake_epoch: { parameters: ["pointer", "u32"], result: "u32" }, // h, side -> wakes so far
  ferry_yield_cpu: { parameters: [], result: "void" }, // sched_yield
  ferry_set_spin: { parameters: ["pointer", "u32"], result: "i32" }, // h, spin (WaitPolicy SPIN_*, or us)
  // The realm's parked promise waits (core/src/waiter.rs): one set, one nonblocking wait at a time.
  ferry_waitset_new: { parameters: [], result: "pointer" }, // -> WaitSet *s (never freed)
  ferry_waitset_add: {
    parameters: ["pointer", "pointer", "u32", "u32", "u32"], // s, h, side, epoch, token
    result: "u32", // 1 added, 0 set full
  },
  ferry_waitset_remove: { parameters: ["pointer", "u32"], result: "void" }, // s, token
  ferry_waitset_wait: {
    parameters: ["pointer", "u32"], // s, timeout_ms -> waits fired
    result: "u32",
    nonblocking: true,
  },
  ferry_waitset_take: { parameters: ["pointer", "buffer", "u32"], result: "u32" }, // s, u32 out[cap], cap
  ferry_sweep: { parameters: ["pointer"], result: "u32" },
  ferry_stat: { parameters: ["pointer", "buffer"], result: "i32" }, // h, u64 out[14]
  ferry_participants: { parameters: ["pointer", "buffer", "u32"], result: "u32" }, // h, u32 out[4*max], max
  // Channel groups (core/src/group.rs): not per message, so the expiry is a u64.
  ferry_group_open: {
    parameters: [
      "buffer", // const u8 *prefix
      "u32", // prefix_len
      "u32", // memory (bytes, if this call creates the table)
      "u32", // mode (permissions)
      "u32", // timeout_ms for a table another process is building (0xffffffff: none)
      "buffer", // const u32 *trusted (owner uids accepted besides the caller and root)
      "u32", // trusted_len
      "buffer", // i32 err_out[8] (OPEN_REPORT_LEN)
    ],
    result: "pointer",
  },
  ferry_group_free: { parameters: ["pointer"], result: "void" },
  ferry_group_unlink: { parameters: ["buffer", "u32"], result: "i32" }, // prefix, prefix_len
  ferry_structs_unlink: { parameters: ["buffer", "u32"], result: "i32" }, // prefix, prefix_len
  ferry_group_info: { parameters: ["pointer", "buffer"], result: "i32" }, // g, u32 out[2]: entries, bytes
  ferry_group_add: {
    parameters: [
      "pointer", // GroupTable *g
      "buffer", // const u8 *group
      "u32", // group_len
      "buffer", // const u8 *channel
      "u32", // channel_len
      "u64", // expiry_ms (0 never)
      "u32", // lifetime: 0 until expiry_ms, 1 while this table handle is open
    ],
    result: "i32",
  },
  ferry_group_discard: {
    parameters: [
      "pointer", // GroupTable *g
      "buffer", // const u8 *group
      "u32", // group_len
      "buffer", // const u8 *channel
      "u32", // channel_len
    ],
    result: "i32",
  },
  ferry_group_members: {
    parameters: [
      "pointer", // GroupTable *g
      "buffer", // const u8 *group
      "u32", // group_len
      "buffer", // u8 *out: [len u8][name] records
      "u32", // out_cap
      "buffer", // u32 info[3]: count, bytes, watch words
    ],
    result: "i32",
  },
  ferry_group_members_watched: {
    parameters: [
      "pointer", // GroupTable *g
      "buffer", // const u8 *group
      "u32", // group_len
      "buffer", // u32 *watch: what the last call saw (GroupWatch), rewritten when it changed
      "u32", // watch_cap (u32s)
      "buffer", // u8 *out: [len u8][name] records
      "u32", // out_cap
      "buffer", // u32 info[3]: count, bytes, watch words
    ],
    result: "i32", // GroupStatus.UNCHANGED: nothing written
  },
  ferry_group_note_fanout: { parameters: ["pointer", "u32", "u32"], result: "void" }, // g, skipped, missing
  ferry_group_channel_ids: {
    parameters: [
      "buffer", // const u8 *prefix
      "u32", // prefix_len
      "buffer", // const u8 *records: [len u8][name], as ferry_group_members writes them
      "u32", // records_len
      "u32", // count
      "buffer", // u64 out[count]: each channel's inode, 0 if absent
    ],
    result: "i32",
  },
  ferry_group_stat: { parameters: ["pointer", "buffer"], result: "i32" }, // g, u64 out[15]
  ferry_group_check: { parameters: ["pointer", "buffer"], result: "i32" }, // g, u32 out[10]
  ferry_structs_open: {
    parameters: [
      "buffer", // const u8 *prefix
      "u32", // prefix_len
      "u32", // create (1: build the store if absent)
      "u32", // mode (permissions)
      "u32", // timeout_ms for a store another process is building (0xffffffff: none)
      "buffer", // const u32 *trusted (owner uids accepted besides the caller and root)
      "u32", // trusted_len
      "buffer", // i32 err_out[8] (OPEN_REPORT_LEN)
    ],
    result: "pointer",
  },
  ferry_structs_free: { parameters: ["pointer"], result: "void" },
  ferry_structs_read: {
    parameters: [
      "pointer", // s
      "u32", // from (first entry to copy)
      "buffer", // u8 *data (the entries' bytes, end to end)
      "u32", // data_len
      "buffer", // u32 *lens (each copied entry's length)
      "u32", // lens_max
      "buffer", // u32 out[3] (StructsRead)
    ],
    result: "i32",
  },
  ferry_structs_append: {
    parameters: [
      "pointer", // s
      "u32", // nonce (the store's, as last read)
      "u32", // expected (entries the store holds, as last read)
      "buffer", // const u8 *data (the new entries' bytes, end to end)
      "u32", // data_len
      "buffer", // const u32 *lens
      "u32", // n (entries)
      "u32", // timeout_ms for the append lock
    ],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;
