//! fs-core's types as 9P's, and back.

use super::{errno, Res};
use crate::wire::oflags;
use crate::wire::{self, Attr, NewTime, Qid};
use fs_core::{
    DescriptorFlags, DescriptorType, ErrorCode, NewTimestamp, PathFlags, Stat, Timestamp,
};

pub(super) fn qid_kind(k: DescriptorType) -> u8 {
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

pub(super) fn new_time(t: NewTime) -> Res<NewTimestamp> {
    Ok(match t.how {
        0 => NewTimestamp::NoChange,
        1 => NewTimestamp::Now,
        2 => NewTimestamp::Timestamp(Timestamp::new(t.sec, t.nsec).map_err(errno)?),
        _ => return Err(errno(ErrorCode::Invalid)),
    })
}

pub(super) fn dirent_kind(k: DescriptorType) -> u8 {
    match k {
        DescriptorType::Directory => wire::DT_DIR,
        DescriptorType::SymbolicLink => wire::DT_LNK,
        DescriptorType::RegularFile => wire::DT_REG,
    }
}

pub(super) fn hash(h: fs_core::MetadataHash) -> wire::Hash {
    wire::Hash {
        lower: h.lower,
        upper: h.upper,
    }
}

pub(super) fn path_flags(bits: u8) -> PathFlags {
    PathFlags::from_bits_truncate(bits)
}

/// `Tlopen`/`Tlcreate` access mode as descriptor flags.
pub(super) fn access(flags: u32) -> DescriptorFlags {
    match flags & oflags::ACCMODE {
        oflags::WRONLY => DescriptorFlags::WRITE,
        oflags::RDWR => DescriptorFlags::READ | DescriptorFlags::WRITE,
        _ => DescriptorFlags::READ,
    }
}
