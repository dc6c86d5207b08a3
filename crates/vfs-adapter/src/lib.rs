//! Larder's guest adapter: `wasi:filesystem` on fs-core, inside the app's
//! own component. `wac plug` (or `larder compose`) wires the app's
//! filesystem imports to these exports.
//!
//! File streams are `wasi:io` streams, so the app's `wasi:io`, stdio and
//! monotonic-clock imports must come from here too (one resource type per
//! interface); everything that is not a file is passed through to the host.

mod fs;
mod io;
mod passthrough;
mod state;

wit_bindgen::generate!({
    path: "../../wit",
    world: "larder:vfs/adapter",
    generate_all,
});

struct Adapter;

export!(Adapter);
