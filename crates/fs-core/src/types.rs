//! The value types of the `wasi:filesystem/types` interface, in Rust form.

use crate::time::Timestamp;
use alloc::string::String;

bitflags::bitflags! {
    /// `descriptor-flags`: what a descriptor may be used for.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct DescriptorFlags: u8 {
        const READ = 1 << 0;
        const WRITE = 1 << 1;
        const FILE_INTEGRITY_SYNC = 1 << 2;
        const DATA_INTEGRITY_SYNC = 1 << 3;
        const REQUESTED_WRITE_SYNC = 1 << 4;
        const MUTATE_DIRECTORY = 1 << 5;
    }

    /// `open-flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct OpenFlags: u8 {
        const CREATE = 1 << 0;
        const DIRECTORY = 1 << 1;
        const EXCLUSIVE = 1 << 2;
        const TRUNCATE = 1 << 3;
    }

    /// `path-flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct PathFlags: u8 {
        const SYMLINK_FOLLOW = 1 << 0;
    }
}

/// `descriptor-type`, restricted to what fs-core stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DescriptorType {
    Directory,
    RegularFile,
    SymbolicLink,
}

/// The file-type bits of a Unix mode (`st_mode & S_IFMT`), as 9P, s3fs's
/// object metadata and host directories carry them; one set for every
/// crate that translates to or from them.
pub mod mode {
    pub const S_IFMT: u32 = 0o170000;
    pub const S_IFREG: u32 = 0o100000;
    pub const S_IFDIR: u32 = 0o040000;
    pub const S_IFLNK: u32 = 0o120000;
}

impl DescriptorType {
    /// The type a Unix mode's file-type bits name; anything fs-core does
    /// not store (a FIFO, a device) counts as a regular file.
    pub fn from_mode(mode: u32) -> DescriptorType {
        match mode & mode::S_IFMT {
            mode::S_IFDIR => DescriptorType::Directory,
            mode::S_IFLNK => DescriptorType::SymbolicLink,
            _ => DescriptorType::RegularFile,
        }
    }

    /// This type's file-type bits.
    pub fn mode_bits(self) -> u32 {
        match self {
            DescriptorType::Directory => mode::S_IFDIR,
            DescriptorType::RegularFile => mode::S_IFREG,
            DescriptorType::SymbolicLink => mode::S_IFLNK,
        }
    }
}

/// `advice`. fs-core keeps everything in memory, so advice is validated and
/// accepted; it changes no observable behaviour (as on tmpfs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Advice {
    Normal,
    Sequential,
    Random,
    WillNeed,
    DontNeed,
    NoReuse,
}

/// What `stat` reports: `descriptor-stat` plus the fields a host (or a
/// persistence layer) needs that WASI does not carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub kind: DescriptorType,
    pub nlink: u64,
    pub size: u64,
    /// Bytes of memory actually holding file data (sparse holes cost none).
    pub allocated: u64,
    /// Permission bits (`0o7777`), kept for bundles and mirrors.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// Moves on every change to the object's data or metadata (when ctime
    /// does), to a value no earlier change had: unlike ctime, two changes
    /// never share it. For mirrors that must notice every change.
    pub change: u64,
    /// The value `change` had at the last change to the data (for a
    /// directory, its entries): renames, links and metadata leave it, so
    /// equal values mean equal contents.
    pub data_change: u64,
}

/// `directory-entry`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub kind: DescriptorType,
    pub name: String,
    pub ino: u64,
}

/// `metadata-hash-value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MetadataHash {
    pub lower: u64,
    pub upper: u64,
}
