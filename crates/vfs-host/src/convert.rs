//! Translation between fs-core's types and the generated WIT types of
//! WASI 0.2 (0.3's are in `crate::p3::convert`; what the two versions
//! spell alike is generated for both by [`shared_conversions`]).

use crate::bindings::wasi::filesystem0_2_12::types as wit;
use fs_core::ErrorCode as E;
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;

/// A filesystem call's failure: a WASI error code for the guest (fs-core's,
/// translated for whichever WASI version asked), or a trap.
#[derive(Debug)]
pub enum FsError {
    Code(E),
    Trap(wasmtime::Error),
}

pub type FsResult<T> = Result<T, FsError>;

impl From<E> for FsError {
    fn from(e: E) -> Self {
        FsError::Code(e)
    }
}

impl From<wasmtime::component::ResourceTableError> for FsError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        FsError::Trap(e.into())
    }
}

impl From<wasmtime::Error> for FsError {
    fn from(e: wasmtime::Error) -> Self {
        FsError::Trap(e)
    }
}

pub fn descriptor_type(t: fs_core::DescriptorType) -> wit::DescriptorType {
    match t {
        fs_core::DescriptorType::Directory => wit::DescriptorType::Directory,
        fs_core::DescriptorType::RegularFile => wit::DescriptorType::RegularFile,
        fs_core::DescriptorType::SymbolicLink => wit::DescriptorType::SymbolicLink,
    }
}

fn datetime(t: fs_core::Timestamp) -> Datetime {
    Datetime {
        seconds: t.seconds,
        nanoseconds: t.nanoseconds,
    }
}

pub fn stat(s: fs_core::Stat) -> wit::DescriptorStat {
    wit::DescriptorStat {
        type_: descriptor_type(s.kind),
        link_count: s.nlink,
        size: s.size,
        data_access_timestamp: Some(datetime(s.atime)),
        data_modification_timestamp: Some(datetime(s.mtime)),
        status_change_timestamp: Some(datetime(s.ctime)),
    }
}

pub fn new_timestamp(t: wit::NewTimestamp) -> fs_core::NewTimestamp {
    match t {
        wit::NewTimestamp::NoChange => fs_core::NewTimestamp::NoChange,
        wit::NewTimestamp::Now => fs_core::NewTimestamp::Now,
        wit::NewTimestamp::Timestamp(d) => fs_core::NewTimestamp::Timestamp(fs_core::Timestamp {
            seconds: d.seconds,
            nanoseconds: d.nanoseconds,
        }),
    }
}

crate::shared_conversions!(would_block: wit::ErrorCode::WouldBlock);

pub fn dir_entry(e: fs_core::DirEntry) -> wit::DirectoryEntry {
    wit::DirectoryEntry {
        type_: descriptor_type(e.kind),
        name: e.name,
    }
}

/// The conversions whose WIT types WASI 0.2 and 0.3 spell alike (error
/// codes, flags, advice, hashes), for the `wit` module in scope where it is
/// invoked; `would_block` is fs-core's would-block in that version (0.3 has
/// no such code).
#[macro_export]
#[doc(hidden)]
macro_rules! shared_conversions {
    (would_block: $would_block:expr) => {
        /// fs-core's error code as the WIT's.
        pub fn code(e: fs_core::ErrorCode) -> wit::ErrorCode {
            use fs_core::ErrorCode as E;
            use wit::ErrorCode as W;
            match e {
                E::Access => W::Access,
                E::WouldBlock => $would_block,
                E::Already => W::Already,
                E::BadDescriptor => W::BadDescriptor,
                E::Busy => W::Busy,
                E::Deadlock => W::Deadlock,
                E::Quota => W::Quota,
                E::Exist => W::Exist,
                E::FileTooLarge => W::FileTooLarge,
                E::IllegalByteSequence => W::IllegalByteSequence,
                E::InProgress => W::InProgress,
                E::Interrupted => W::Interrupted,
                E::Invalid => W::Invalid,
                E::Io => W::Io,
                E::IsDirectory => W::IsDirectory,
                E::Loop => W::Loop,
                E::TooManyLinks => W::TooManyLinks,
                E::MessageSize => W::MessageSize,
                E::NameTooLong => W::NameTooLong,
                E::NoDevice => W::NoDevice,
                E::NoEntry => W::NoEntry,
                E::NoLock => W::NoLock,
                E::InsufficientMemory => W::InsufficientMemory,
                E::InsufficientSpace => W::InsufficientSpace,
                E::NotDirectory => W::NotDirectory,
                E::NotEmpty => W::NotEmpty,
                E::NotRecoverable => W::NotRecoverable,
                E::Unsupported => W::Unsupported,
                E::NoTty => W::NoTty,
                E::NoSuchDevice => W::NoSuchDevice,
                E::Overflow => W::Overflow,
                E::NotPermitted => W::NotPermitted,
                E::Pipe => W::Pipe,
                E::ReadOnly => W::ReadOnly,
                E::InvalidSeek => W::InvalidSeek,
                E::TextFileBusy => W::TextFileBusy,
                E::CrossDevice => W::CrossDevice,
            }
        }

        /// WIT descriptor flags and fs-core's, member by member.
        fn descriptor_flag_pairs() -> [(wit::DescriptorFlags, fs_core::DescriptorFlags); 6] {
            use fs_core::DescriptorFlags as D;
            use wit::DescriptorFlags as W;
            [
                (W::READ, D::READ),
                (W::WRITE, D::WRITE),
                (W::FILE_INTEGRITY_SYNC, D::FILE_INTEGRITY_SYNC),
                (W::DATA_INTEGRITY_SYNC, D::DATA_INTEGRITY_SYNC),
                (W::REQUESTED_WRITE_SYNC, D::REQUESTED_WRITE_SYNC),
                (W::MUTATE_DIRECTORY, D::MUTATE_DIRECTORY),
            ]
        }

        pub fn descriptor_flags(f: wit::DescriptorFlags) -> fs_core::DescriptorFlags {
            descriptor_flag_pairs()
                .into_iter()
                .filter(|(w, _)| f.contains(*w))
                .fold(fs_core::DescriptorFlags::empty(), |acc, (_, d)| acc | d)
        }

        pub fn wit_descriptor_flags(f: fs_core::DescriptorFlags) -> wit::DescriptorFlags {
            descriptor_flag_pairs()
                .into_iter()
                .filter(|(_, d)| f.contains(*d))
                .fold(wit::DescriptorFlags::empty(), |acc, (w, _)| acc | w)
        }

        pub fn open_flags(f: wit::OpenFlags) -> fs_core::OpenFlags {
            use fs_core::OpenFlags as O;
            use wit::OpenFlags as W;
            let pairs = [
                (W::CREATE, O::CREATE),
                (W::DIRECTORY, O::DIRECTORY),
                (W::EXCLUSIVE, O::EXCLUSIVE),
                (W::TRUNCATE, O::TRUNCATE),
            ];
            pairs
                .into_iter()
                .filter(|(w, _)| f.contains(*w))
                .fold(O::empty(), |acc, (_, o)| acc | o)
        }

        pub fn path_flags(f: wit::PathFlags) -> fs_core::PathFlags {
            if f.contains(wit::PathFlags::SYMLINK_FOLLOW) {
                fs_core::PathFlags::SYMLINK_FOLLOW
            } else {
                fs_core::PathFlags::empty()
            }
        }

        pub fn advice(a: wit::Advice) -> fs_core::Advice {
            match a {
                wit::Advice::Normal => fs_core::Advice::Normal,
                wit::Advice::Sequential => fs_core::Advice::Sequential,
                wit::Advice::Random => fs_core::Advice::Random,
                wit::Advice::WillNeed => fs_core::Advice::WillNeed,
                wit::Advice::DontNeed => fs_core::Advice::DontNeed,
                wit::Advice::NoReuse => fs_core::Advice::NoReuse,
            }
        }

        pub fn metadata_hash(h: fs_core::MetadataHash) -> wit::MetadataHashValue {
            wit::MetadataHashValue {
                lower: h.lower,
                upper: h.upper,
            }
        }
    };
}
