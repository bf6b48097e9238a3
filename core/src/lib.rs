//! ferry_core: the shared-memory channel engine behind ferry. It owns the segment layout
//! (`layout`), the slot state word (`state`), segment creation (`segment`), the engine
//! (`engine`: send, receive, waits, recovery) and the C ABI that Deno loads (`ffi`).

pub mod engine;
pub mod fault;
pub mod ffi;
pub mod layout;
pub mod segment;
pub mod state;
pub mod status;
pub mod sys;
pub mod group;
