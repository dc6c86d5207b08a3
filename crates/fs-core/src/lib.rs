//! # fs-core
//!
//! Larder's filesystem engine: the one place where filesystem semantics
//! live. Every `wasi:filesystem` operation has exactly one implementation
//! here, with Linux-compatible results and error codes that map one-to-one
//! onto `wasi:filesystem/types.error-code`. The guest adapter and the
//! wasmtime host only translate types to and from this crate.
//!
//! - Inodes for files, directories and symlinks; hard links; unlinked files
//!   live until their last descriptor drops.
//! - File data in sparse blocks: holes cost nothing and read as zeros.
//! - Nanosecond timestamps updated by Linux's rules (relatime by default).
//! - Path resolution that never leaves the directory it starts from.
//! - Quotas and limits that surface as WASI errors, never as an abort.
//! - A versioned, checksummed image format for bundles and snapshots.
//!
//! ```
//! use fs_core::{DescriptorFlags as DF, ErrorCode, Fs, OpenFlags as OF, PathFlags as PF};
//!
//! let fs = Fs::in_memory();
//! let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY)?;
//! root.create_directory_at("etc")?;
//! let f = root.open_at(PF::SYMLINK_FOLLOW, "etc/app.toml", OF::CREATE, DF::READ | DF::WRITE)?;
//! f.write(b"name = \"demo\"\n", 0)?;
//! assert_eq!(root.stat_at(PF::empty(), "etc/app.toml")?.size, 14);
//! assert_eq!(root.stat_at(PF::empty(), "../outside"), Err(ErrorCode::NotPermitted));
//! # Ok::<(), ErrorCode>(())
//! ```
//!
//! `no_std` + `alloc`; the `std` feature adds parking_lot locks and the
//! system clock. The filesystem is always `Send + Sync`, with a lock per
//! inode, so many threads can share one.

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod changes;
mod data;
mod descriptor;
mod error;
mod fs;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
// Host directories are read through Unix metadata (modes, owners, links).
#[cfg(all(feature = "std", unix))]
pub mod host;
pub mod image;
mod inode;
mod namespace;
pub mod ops;
mod resolve;
pub mod stream;
mod sync;
mod time;
mod types;
mod written;

pub use changes::{ChangeLog, Changed};
pub use descriptor::{check_read, check_stream, require_file, Descriptor, DirStream};
pub use error::{ErrorCode, Result};
pub use fs::{AtimePolicy, Fs, FsConfig, SyncHook, Usage, DEFAULT_MAX_OPEN_HANDLES};
pub use ops::{DescriptorOps, DirEntries};
#[cfg(feature = "std")]
pub use time::SystemClock;
pub use time::{Clock, ManualClock, NewTimestamp, Timestamp};
pub use types::{
    mode, Advice, DescriptorFlags, DescriptorType, DirEntry, MetadataHash, OpenFlags, PathFlags,
    Stat,
};
pub use written::Written;
