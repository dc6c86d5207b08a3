//! The bridge `larder compose` instantiates after an app that exports
//! `wasi:http/incoming-handler`. The host calls it with its own request
//! resources; the app's handler takes the adapter's (the app's
//! `wasi:http/types` come from the adapter, whose streams are its own).
//! The bridge hands the host's resources to the adapter, takes back the
//! wrappers and calls the app: adapter, then app, then bridge, no cycle.

wit_bindgen::generate!({
    path: "../../wit",
    world: "larder:vfs/http-bridge-component",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;

struct Bridge;

impl Guest for Bridge {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        stash_incoming(request, response_out);
        let (request, response_out) = larder::vfs::app_http_bridge::take_incoming();
        larder::vfs::app_http_handler::handle(request, response_out);
    }
}

export!(Bridge);
