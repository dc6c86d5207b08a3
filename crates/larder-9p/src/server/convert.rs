//! The server's own readings of request fields (the conversions shared
//! with the client are in `crate::convert`).

use super::{errno, Res};
pub(super) use crate::convert::*;
use crate::wire::{oflags, NewTime};
use fs_core::{DescriptorFlags, NewTimestamp, PathFlags};

pub(super) fn new_time(t: NewTime) -> Res<NewTimestamp> {
    new_timestamp(t).map_err(errno)
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
