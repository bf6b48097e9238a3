//! ferry_core: the shared-memory channel engine behind ferry. `layout` describes a channel
//! segment, `state` its slot state word, `segment` opens and builds segments (channels and group
//! tables alike), `channel` is an open handle (send, ack, receive, recovery, stat), `wait` how it
//! waits, `group` the namespace's group table, `structs` its msgpack structure store, and `ffi` the C ABI that Deno loads.

pub mod channel;
pub mod fault;
pub mod ffi;
pub mod group;
pub mod layout;
pub mod segment;
pub mod state;
pub mod status;
pub mod structs;
pub mod sys;
pub mod wait;
pub mod waiter;
