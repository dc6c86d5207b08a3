//! Larder's guest adapter: `wasi:filesystem` on fs-core, inside the app's
//! own component. `wac plug` (or `larder compose`) wires the app's
//! filesystem imports to these exports.
//!
//! File streams are `wasi:io` streams, so the app's `wasi:io`, stdio and
//! monotonic-clock imports must come from here too (one resource type per
//! interface); everything that is not a file is passed through to the host.

mod fs;
#[cfg(feature = "http")]
mod http;
mod io;
#[cfg(feature = "net")]
mod net;
mod passthrough;
#[cfg(any(feature = "persist", feature = "persist-s3"))]
mod persist;
#[cfg(feature = "remote")]
mod remote;
#[cfg(not(feature = "remote"))]
mod state;

#[cfg(all(any(feature = "persist", feature = "persist-s3"), feature = "net"))]
compile_error!("the persistent adapter is built for command apps only (no `net`/`http`)");
#[cfg(all(feature = "persist", feature = "persist-s3"))]
compile_error!("one store per build: `persist` (lent by the host) or `persist-s3`");
#[cfg(all(
    feature = "remote",
    any(feature = "net", feature = "persist", feature = "persist-s3")
))]
compile_error!("the remote adapter is built alone: its files live in the server");

#[cfg(not(any(
    feature = "net",
    feature = "persist",
    feature = "persist-s3",
    feature = "remote"
)))]
wit_bindgen::generate!({
    path: "../../wit",
    world: "larder:vfs/adapter",
    generate_all,
});

// The build whose filesystem persists in S3; its wasi:http imports come
// from the S3 client's own bindings, not from this world.
#[cfg(feature = "persist-s3")]
wit_bindgen::generate!({
    path: "../../wit",
    world: "larder:vfs/adapter-persistent",
    generate_all,
});

// The build whose filesystem persists in a store the host lends it.
#[cfg(all(feature = "persist", not(feature = "net")))]
wit_bindgen::generate!({
    path: "../../wit",
    world: "larder:vfs/adapter-persist",
    generate_all,
});

// The build whose filesystem is a `larder serve` reached over TCP.
#[cfg(feature = "remote")]
wit_bindgen::generate!({
    path: "../../wit",
    world: "larder:vfs/adapter-remote",
    generate_all,
});

// The build for apps that use sockets: the same adapter plus wasi:sockets
// passed through (a separate build, so other apps do not import sockets).
#[cfg(all(feature = "net", not(feature = "http")))]
wit_bindgen::generate!({
    path: "../../wit",
    world: "larder:vfs/adapter-net",
    generate_all,
});

// The build for edge apps: sockets and wasi:http (client and handler).
#[cfg(feature = "http")]
wit_bindgen::generate!({
    path: "../../wit",
    world: "larder:vfs/adapter-edge",
    generate_all,
});

struct Adapter;

export!(Adapter);
