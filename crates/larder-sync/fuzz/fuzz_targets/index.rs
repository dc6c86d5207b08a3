#![no_main]
libfuzzer_sys::fuzz_target!(|body: &[u8]| larder_sync::index::fuzz(body));
