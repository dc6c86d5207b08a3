//! Larder's sync engine: mirrors a filesystem (fs-core) to an object
//! store, 1:1 by path, so other tools read the store as plain files; and
//! rebuilds a filesystem from a store at start-up.
//!
//! - [`store::ObjectStore`]: the small interface stores implement;
//!   [`local::LocalDir`] (a host directory, the same layout) and
//!   [`mem::MemStore`] (in memory) are here, and with the `s3` feature
//!   `s3::S3Store` (aws-sdk-s3); [`Faulty`] injects faults into any.
//! - [`mirror::Mirror`]: the engine (sync, lazy restore, prefetch, poll);
//!   [`mirror::MirrorHook`] makes fsync, and per [`mirror::SyncMode`]
//!   close or every change, go through it.

mod faulty;
pub mod index;
mod lazy;
// A host directory, with Unix modes and owners.
#[cfg(unix)]
pub mod local;
pub mod mem;
pub mod meta;
pub mod mirror;
mod plan;
mod retry;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(unix)]
pub mod spool;
pub mod store;

pub use faulty::Faulty;
#[cfg(unix)]
pub use local::LocalDir;
pub use mem::MemStore;
pub use mirror::{Mirror, MirrorHook, Pulled, Report, Status, SyncError, SyncMode};
pub use retry::{Retry, Retrying};
pub use store::{Cond, ErrorKind, Listed, Metadata, ObjectInfo, ObjectStore, Progress, StoreError};
