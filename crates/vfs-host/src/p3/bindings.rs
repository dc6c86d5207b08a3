//! Host bindings for `wasi:filesystem@0.3`, with clocks from wasmtime-wasi:
//! the same `fs_core::Descriptor` as 0.2's, so both see one table.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "larder:vfs/host-p3",
    imports: {
        "wasi:filesystem/types.[method]descriptor.read-via-stream": store | trappable,
        "wasi:filesystem/types.[method]descriptor.write-via-stream": store | trappable,
        "wasi:filesystem/types.[method]descriptor.append-via-stream": store | trappable,
        "wasi:filesystem/types.[method]descriptor.read-directory": store | trappable,
        default: trappable,
    },
    trappable_error_type: {
        "wasi:filesystem/types@0.3.0.error-code" => crate::convert::FsError,
    },
    with: {
        "wasi:clocks": wasmtime_wasi::p3::bindings::clocks,
        "wasi:filesystem/types.descriptor": fs_core::Descriptor,
    },
    require_store_data_send: true,
});
