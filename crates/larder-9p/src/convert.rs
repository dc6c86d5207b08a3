//! fs-core's types as 9P's and back, for the server and the client alike:
//! one conversion for the 9P binding.

use crate::wire::{self, Attr, NewTime, Qid};
use fs_core::{DescriptorType, ErrorCode, MetadataHash, NewTimestamp, Stat, Timestamp};

pub fn qid_kind(k: DescriptorType) -> u8 {
    match k {
        DescriptorType::Directory => wire::QT_DIR,
        DescriptorType::SymbolicLink => wire::QT_SYMLINK,
        DescriptorType::RegularFile => wire::QT_FILE,
    }
}

pub fn qid(s: &Stat) -> Qid {
    Qid {
        kind: qid_kind(s.kind),
        version: s.data_change as u32,
        path: s.ino,
    }
}

/// What `Rgetattr` says of `s`.
pub fn attr(s: &Stat) -> Attr {
    Attr {
        valid: wire::GETATTR_BASIC,
        qid: qid(s),
        mode: s.kind.mode_bits() | (s.mode & 0o7777),
        uid: s.uid,
        gid: s.gid,
        nlink: s.nlink,
        rdev: 0,
        size: s.size,
        blksize: 4096,
        blocks: s.allocated.div_ceil(512),
        atime_sec: s.atime.seconds,
        atime_nsec: s.atime.nanoseconds as u64,
        mtime_sec: s.mtime.seconds,
        mtime_nsec: s.mtime.nanoseconds as u64,
        ctime_sec: s.ctime.seconds,
        ctime_nsec: s.ctime.nanoseconds as u64,
        btime_sec: 0,
        btime_nsec: 0,
        gen: 0,
        data_version: s.data_change,
    }
}

/// What a client makes of `Rgetattr`: the change counter is the data
/// version (9P has no other).
pub fn stat(a: &Attr) -> Stat {
    let ts = |sec: u64, nsec: u64| Timestamp {
        seconds: sec,
        nanoseconds: (nsec as u32).min(999_999_999),
    };
    Stat {
        dev: 0,
        ino: a.qid.path,
        kind: DescriptorType::from_mode(a.mode),
        nlink: a.nlink,
        size: a.size,
        allocated: a.blocks * 512,
        mode: a.mode & 0o7777,
        uid: a.uid,
        gid: a.gid,
        atime: ts(a.atime_sec, a.atime_nsec),
        mtime: ts(a.mtime_sec, a.mtime_nsec),
        ctime: ts(a.ctime_sec, a.ctime_nsec),
        change: a.data_version,
        data_change: a.data_version,
    }
}

pub fn new_time(t: NewTimestamp) -> NewTime {
    match t {
        NewTimestamp::NoChange => NewTime::default(),
        NewTimestamp::Now => NewTime {
            how: 1,
            ..NewTime::default()
        },
        NewTimestamp::Timestamp(t) => NewTime {
            how: 2,
            sec: t.seconds,
            nsec: t.nanoseconds,
        },
    }
}

pub fn new_timestamp(t: NewTime) -> Result<NewTimestamp, ErrorCode> {
    Ok(match t.how {
        0 => NewTimestamp::NoChange,
        1 => NewTimestamp::Now,
        2 => NewTimestamp::Timestamp(Timestamp::new(t.sec, t.nsec)?),
        _ => return Err(ErrorCode::Invalid),
    })
}

pub fn dirent_kind(k: DescriptorType) -> u8 {
    match k {
        DescriptorType::Directory => wire::DT_DIR,
        DescriptorType::SymbolicLink => wire::DT_LNK,
        DescriptorType::RegularFile => wire::DT_REG,
    }
}

pub fn dirent_type(kind: u8) -> DescriptorType {
    match kind {
        wire::DT_DIR => DescriptorType::Directory,
        wire::DT_LNK => DescriptorType::SymbolicLink,
        _ => DescriptorType::RegularFile,
    }
}

pub fn hash(h: MetadataHash) -> wire::Hash {
    wire::Hash {
        lower: h.lower,
        upper: h.upper,
    }
}

pub fn metadata_hash(h: wire::Hash) -> MetadataHash {
    MetadataHash {
        lower: h.lower,
        upper: h.upper,
    }
}
