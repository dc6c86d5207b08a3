//! Host bindings for `wasi:filesystem`, with every other WASI type taken from
//! wasmtime-wasi so descriptors hand out its real streams.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "larder:vfs/host",
    imports: { default: trappable },
    trappable_error_type: {
        "wasi:filesystem/types.error-code" => crate::FsError,
    },
    with: {
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:filesystem/types.descriptor": fs_core::Descriptor,
        "wasi:filesystem/types.directory-entry-stream": fs_core::DirStream,
    },
    require_store_data_send: true,
});
