//! Translation between fs-core's types and WASI 0.3's generated ones. 0.3
//! differs from 0.2 in error codes and descriptor types (variants with an
//! `other` case, no `would-block`) and in times (`system-clock.instant`,
//! signed seconds).

use super::bindings::wasi::filesystem0_3_0::types as wit;
use fs_core::ErrorCode as E;
use wasmtime_wasi::p3::bindings::clocks::system_clock::Instant;

pub fn descriptor_type(t: fs_core::DescriptorType) -> wit::DescriptorType {
    match t {
        fs_core::DescriptorType::Directory => wit::DescriptorType::Directory,
        fs_core::DescriptorType::RegularFile => wit::DescriptorType::RegularFile,
        fs_core::DescriptorType::SymbolicLink => wit::DescriptorType::SymbolicLink,
    }
}

fn instant(t: fs_core::Timestamp) -> Instant {
    Instant {
        seconds: i64::try_from(t.seconds).unwrap_or(i64::MAX),
        nanoseconds: t.nanoseconds,
    }
}

pub fn stat(s: fs_core::Stat) -> wit::DescriptorStat {
    wit::DescriptorStat {
        type_: descriptor_type(s.kind),
        link_count: s.nlink,
        size: s.size,
        data_access_timestamp: Some(instant(s.atime)),
        data_modification_timestamp: Some(instant(s.mtime)),
        status_change_timestamp: Some(instant(s.ctime)),
    }
}

/// A time before 1970 is one fs-core cannot keep: `invalid`.
pub fn new_timestamp(t: wit::NewTimestamp) -> Result<fs_core::NewTimestamp, E> {
    Ok(match t {
        wit::NewTimestamp::NoChange => fs_core::NewTimestamp::NoChange,
        wit::NewTimestamp::Now => fs_core::NewTimestamp::Now,
        wit::NewTimestamp::Timestamp(i) => fs_core::NewTimestamp::Timestamp(fs_core::Timestamp {
            seconds: u64::try_from(i.seconds).map_err(|_| E::Invalid)?,
            nanoseconds: i.nanoseconds,
        }),
    })
}

// 0.3 has no would-block: nothing in the filesystem waits that way.
crate::shared_conversions!(would_block: wit::ErrorCode::Other(Some("would block".into())));

pub fn dir_entry(e: fs_core::DirEntry) -> wit::DirectoryEntry {
    wit::DirectoryEntry {
        type_: descriptor_type(e.kind),
        name: e.name,
    }
}
