//! Names as the table stores them: the naming rule, the packed form, the meta word that lets a
//! scan skip other groups' entries without reading their names, and what a scan looks for.

use super::layout::Word;
use super::{MAX_NAME, NAME_WORDS};

/// Group, channel and prefix names: 1 to 100 of letters, digits and `. _ - !` (the channel rule).
pub fn valid_name(b: &[u8]) -> bool {
    (1..=MAX_NAME).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'!'))
}

/// The shm object of a namespace's group table, `/<prefix>~groups`; None for an invalid prefix.
pub fn segment_name(prefix: &[u8]) -> Option<String> {
    // All bytes are ASCII once valid, so the conversion is exact.
    valid_name(prefix).then(|| format!("/{}~groups", String::from_utf8_lossy(prefix)))
}

/// The inode of channel `name`'s segment in namespace `prefix`, `/dev/shm/<prefix>.<name>` (where
/// glibc's shm_open keeps `/<prefix>.<name>`); 0 if there is none, u64::MAX if it cannot be told
/// (then whoever asks opens it and lets the open decide). Not following a link, as shm_open does
/// not; relative to a descriptor of /dev/shm kept open, which halves the cost of a full path.
pub fn channel_id(prefix: &[u8], name: &[u8]) -> u64 {
    use std::os::fd::AsRawFd;
    use std::sync::OnceLock;
    static SHM_DIR: OnceLock<Option<std::fs::File>> = OnceLock::new();
    if !valid_name(prefix) || !valid_name(name) {
        return 0;
    }
    let Some(dir) = SHM_DIR.get_or_init(|| std::fs::File::open("/dev/shm").ok()) else {
        return u64::MAX;
    };
    let mut file = Vec::with_capacity(prefix.len() + 1 + name.len());
    file.extend_from_slice(prefix);
    file.push(b'.');
    file.extend_from_slice(name);
    match nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        file.as_slice(),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => st.st_ino,
        Err(nix::errno::Errno::ENOENT) => 0,
        Err(_) => u64::MAX,
    }
}

pub(super) fn fnv1a(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &c| (h ^ u32::from(c)).wrapping_mul(0x0100_0193))
}

/// A name as the table stores it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Packed {
    pub(super) len: u8,
    pub(super) words: [u64; NAME_WORDS],
}

impl Packed {
    pub(super) fn new(name: &[u8]) -> Option<Packed> {
        if !valid_name(name) {
            return None;
        }
        let mut bytes = [0u8; NAME_WORDS * 8];
        bytes[..name.len()].copy_from_slice(name);
        let mut words = [0u64; NAME_WORDS];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().unwrap());
        }
        Some(Packed { len: name.len() as u8, words })
    }

    pub(super) fn bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        out.truncate(self.len as usize);
        out
    }

    /// A name read from shared memory is only trusted once it passes the same rule: a corrupt
    /// entry is freed, never reported.
    pub(super) fn valid(&self) -> bool {
        let len = self.len as usize;
        if len == 0 || len > MAX_NAME {
            return false;
        }
        let bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        valid_name(&bytes[..len]) && bytes[len..].iter().all(|&b| b == 0)
    }
}

pub(super) fn meta_check(lens: u64, group_hash: u32) -> u64 {
    let h = fnv1a(&[&lens.to_le_bytes()[..2], &group_hash.to_le_bytes()[..]].concat());
    u64::from((h ^ (h >> 16)) & 0xffff)
}

pub(super) fn meta_word(group: &Packed, channel: &Packed, group_hash: u32) -> u64 {
    let lens = u64::from(group.len) | (u64::from(channel.len) << 8);
    lens | (meta_check(lens, group_hash) << 16) | (u64::from(group_hash) << 32)
}

/// Whether `meta` is a word `meta_word` made: lengths in range and the check matching. Random
/// bytes pass with odds of about one in 400,000.
pub(super) fn meta_valid(meta: u64) -> bool {
    let (glen, clen) = (meta & 0xff, (meta >> 8) & 0xff);
    (1..=MAX_NAME as u64).contains(&glen)
        && (1..=MAX_NAME as u64).contains(&clen)
        && (meta >> 16) & 0xffff == meta_check(meta & 0xffff, (meta >> 32) as u32)
}

/// What a scan is looking for; entries it rejects by their meta word are never read in full.
#[derive(Clone, Copy)]
pub(super) enum Filter<'a> {
    Group(&'a Packed, u32),
    Pair(&'a Packed, u32, &'a Packed),
    All,
}

impl Filter<'_> {
    pub(super) fn wants_meta(&self, meta: u64) -> bool {
        match *self {
            Filter::Group(g, hash) | Filter::Pair(g, hash, _) => {
                (meta & 0xff) as u8 == g.len && (meta >> 32) as u32 == hash
            }
            Filter::All => true,
        }
    }
    pub(super) fn wants(&self, group: &Packed, channel: &Packed) -> bool {
        match *self {
            Filter::Group(g, _) => g == group,
            Filter::Pair(g, _, c) => g == group && c == channel,
            Filter::All => true,
        }
    }
}

/// What a consistent read of one entry found.
// Returned once per entry and moved straight into the scan's result: boxing `Seen` would only add
// an allocation per entry.
#[allow(clippy::large_enum_variant)]
pub(super) enum Read {
    /// Not LIVE (or changing too fast to read: leaving it out is a valid snapshot).
    NotLive,
    /// LIVE, and its meta word says the filter does not want it.
    Unwanted,
    /// LIVE with a meta word or names no writer made: free it (CAS from this word).
    Corrupt(Word),
    Live(Seen),
}

/// A LIVE entry as read consistently.
pub(super) struct Seen {
    pub(super) word: Word,
    pub(super) group: Packed,
    pub(super) channel: Packed,
}
