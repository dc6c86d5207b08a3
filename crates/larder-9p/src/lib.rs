//! 9P2000.L for Larder: the message codec; with the `server` feature, a
//! tokio server that serves one fs-core filesystem to many clients; with
//! the `client` feature, the client the remote adapter runs inside a guest
//! (over a transport it supplies).
//!
//! The messages supported, and Larder's extension, are listed in the
//! crate's README.

pub mod wire;

#[cfg(any(feature = "server", feature = "client"))]
pub mod convert;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "client")]
pub mod client;
