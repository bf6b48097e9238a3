//! The channel segment: how `segment` recognises, builds and attaches one, and how the engine
//! reaches into it (participants, slots, data regions).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::*;
use crate::layout::*;
use crate::status::*;
use crate::sys;

pub struct Segment {
    pub fd: OwnedFd,
    pub map: sys::Mapping,
    pub layout: Layout,
}

// ------------------------------------------------------------------------------------ channels

/// A channel segment: its header is `layout::Fixed`. `wanted`: the layout a creating open builds
/// (None when the open only attaches, or only removes).
struct ChannelKind {
    wanted: Option<Layout>,
}

impl SegmentKind for ChannelKind {
    type Ready = Layout;
    const USERS: (u64, u64) = (participant_lock_byte(0), MAX_PARTICIPANTS as u64);
    const BUILD_POINT: &'static str = "open.building";

    /// Field offsets follow `Fixed`.
    fn inspect(&self, fd: &OwnedFd, size: u64) -> io::Result<Found<Layout>> {
        if size == 0 {
            return Ok(Found::Unbuilt);
        }
        let mut head = vec![0u8; size.min(4096) as usize];
        let n = sys::read_at(fd, &mut head, 0)?;
        head.truncate(n);
        if head.len() < 128 || u64_at(&head, 0) == 0 {
            let blank = head.iter().all(|&b| b == 0);
            return Ok(if blank { Found::Unbuilt } else { Found::Foreign(WHY_MAGIC) });
        }
        if u64_at(&head, 0) != MAGIC {
            return Ok(Found::Foreign(WHY_MAGIC));
        }
        // Ours but not finished: a builder is at work or died mid-way, so fields after the magic
        // (the version among them) may be missing. Waited for, or rebuilt under the init lock if
        // nobody uses it.
        if u32_at(&head, 12) != INIT_READY {
            return Ok(Found::Unbuilt);
        }
        if u32_at(&head, 8) != LAYOUT_VERSION {
            return Ok(Found::Foreign(WHY_VERSION));
        }
        let claimed = Layout::new(u32_at(&head, 24), u32_at(&head, 28), u64_at(&head, 72));
        match claimed {
            Some(l)
                if l.total_size == u64_at(&head, 16)
                    && l.total_size == size
                    && l.slot_stride == u64_at(&head, 32)
                    && l.participants_off == u64_at(&head, 40)
                    && l.slots_off == u64_at(&head, 48)
                    && l.data_off == u64_at(&head, 56)
                    && l.reserve_off == u64_at(&head, 80) =>
            {
                Ok(Found::Ready(l))
            }
            _ => Ok(Found::Foreign(WHY_SIZE)),
        }
    }

    fn build_size(&self) -> u64 {
        self.wanted.map_or(0, |l| l.total_size)
    }

    /// Everything before the data regions; their pages are allocated slot by slot as messages
    /// need them (channel/alloc.rs).
    fn allocate_size(&self) -> u64 {
        self.wanted.map_or(0, |l| l.data_off)
    }

    fn write_header(&self, map: &sys::Mapping) {
        // Only creating opens build.
        let Some(layout) = self.wanted else { return };
        // SAFETY: the mapping is `total_size` bytes, at least size_of::<Header>() (Layout puts the
        // participants after it), and page aligned; Header is plain atomics, valid for any (here:
        // zero) bytes.
        let h = unsafe { &*(map.base as *const Header) };
        let f = &h.fixed;
        f.magic.store(MAGIC, Relaxed);
        // SYNC POINT: the magic lands before any other field, so no reader sees fields without
        // it (which would look like a foreign segment rather than one being built).
        std::sync::atomic::fence(Release);
        f.version.store(LAYOUT_VERSION, Relaxed);
        f.total_size.store(layout.total_size, Relaxed);
        f.capacity.store(layout.capacity, Relaxed);
        f.max_message.store(layout.max_message, Relaxed);
        f.slot_stride.store(layout.slot_stride, Relaxed);
        f.participants_off.store(layout.participants_off, Relaxed);
        f.slots_off.store(layout.slots_off, Relaxed);
        f.data_off.store(layout.data_off, Relaxed);
        f.memory.store(layout.memory, Relaxed);
        f.reserve_off.store(layout.reserve_off, Relaxed);
        f.created_unix_ms.store(sys::unix_ms(), Relaxed);
        // SYNC POINT: every field above is visible to whoever sees INIT_READY (Acquire in `attach`).
        f.init_state.store(INIT_READY, Release);
    }
}

fn attach(fd: OwnedFd, layout: Layout) -> Result<Segment, OpenError> {
    let map = sys::Mapping::new(&fd, layout.total_size as usize).map_err(io_error)?;
    // SAFETY: the mapping covers the whole segment, whose size `inspect` checked against the
    // header; Header is plain atomics.
    let h = unsafe { &*(map.base as *const Header) };
    // SYNC POINT: pairs with the builder's Release store of INIT_READY.
    if h.fixed.init_state.load(Acquire) != INIT_READY || Layout::from_fixed(&h.fixed) != Some(layout) {
        return Err(OpenError::new(ERR_INCOMPATIBLE, WHY_SIZE));
    }
    Ok(Segment { fd, map, layout })
}

/// Opens the channel segment `req.name`, creating and building it when absent and `req.create`
/// is set.
pub fn open(req: &OpenRequest) -> Result<Segment, OpenError> {
    let spec = OpenSpec { name: req.name, create: req.create.is_some(), mode: req.mode, policy: req.policy };
    let (fd, layout) = open_segment(&spec, &ChannelKind { wanted: req.create })?;
    attach(fd, layout)
}

/// Removes the channel segment `name` if its builder died before finishing it (see
/// `remove_incomplete` for the answers). `mode` and `policy` are the caller's, as for `open`.
pub fn remove_incomplete_channel(name: &str, mode: u32, policy: &Policy) -> i32 {
    // Removal never builds.
    let kind = ChannelKind { wanted: None };
    remove_incomplete(name, mode, policy, &kind)
}

impl Segment {
    pub fn header(&self) -> &Header {
        // SAFETY: `attach` checked the mapping holds a READY header at offset 0.
        unsafe { &*(self.map.base as *const Header) }
    }

    // The three accessors below turn an index into a reference or pointer into the mapping. Their
    // bounds checks are real `assert!`s, not `debug_assert!`s: they are what keeps an index bug
    // from reading or writing past the array in a release build, they cost one predictable
    // branch, and a panic aborts at the C ABI boundary (a clear crash) instead of corrupting
    // another slot or another process's message. Every index the engine takes from shared memory
    // (ring entries, state-word fields) is range-checked before it gets here, so another process
    // cannot trigger them.

    pub fn participant(&self, i: u32) -> &Participant {
        assert!((i as usize) < MAX_PARTICIPANTS, "participant index {i} out of range");
        let off = self.layout.participants_off as usize + i as usize * std::mem::size_of::<Participant>();
        // SAFETY: i < MAX_PARTICIPANTS (asserted above) and `Layout` places the whole participant
        // array inside the mapping; Participant is plain atomics, valid for any bytes.
        unsafe { &*(self.map.base.add(off) as *const Participant) }
    }

    pub fn slot(&self, k: u32) -> &Slot {
        assert!(k < self.layout.capacity, "slot index {k} out of range (capacity {})", self.layout.capacity);
        let off = self.layout.slots_off as usize + k as usize * std::mem::size_of::<Slot>();
        // SAFETY: k < capacity (asserted above) and `Layout` places the whole slot array inside
        // the mapping; Slot is atomics plus inline bytes only its owner writes.
        unsafe { &*(self.map.base.add(off) as *const Slot) }
    }

    /// What slot `k`'s data region has reserved (see `layout::Reserve`).
    pub fn reserve(&self, k: u32) -> &Reserve {
        assert!(k < self.layout.capacity, "slot index {k} out of range (capacity {})", self.layout.capacity);
        let off = self.layout.reserve_off as usize + k as usize * std::mem::size_of::<Reserve>();
        // SAFETY: k < capacity (asserted above) and `Layout` places the whole reserve table inside
        // the mapping, 8-byte aligned (it follows the 128-byte slot lines); Reserve is one atomic.
        unsafe { &*(self.map.base.add(off) as *const Reserve) }
    }

    /// Offset in the file of slot `k`'s data region (`slot_stride` bytes).
    pub fn data_offset(&self, k: u32) -> u64 {
        self.layout.data_off + u64::from(k) * self.layout.slot_stride
    }

    /// Start of slot `k`'s data region (`slot_stride` bytes). Only its first `allocated` bytes
    /// (`layout::Reserve`) may be touched.
    pub fn data(&self, k: u32) -> *mut u8 {
        assert!(k < self.layout.capacity, "slot index {k} out of range (capacity {})", self.layout.capacity);
        let off = self.layout.data_off as usize + k as usize * self.layout.slot_stride as usize;
        // SAFETY: k < capacity (asserted above), so the region lies inside the mapping.
        unsafe { self.map.base.add(off) }
    }
}
