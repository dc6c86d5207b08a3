//! 9P2000.L for Larder: the message codec (used by both the server and the
//! remote adapter inside a guest) and, with the `server` feature, a tokio
//! server that serves one fs-core filesystem to many clients.
//!
//! The messages supported, and Larder's extension, are listed in the
//! crate's README.

pub mod wire;

#[cfg(feature = "server")]
pub mod server;
