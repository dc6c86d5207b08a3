#![no_main]
//! The 9P2000.L decoder on arbitrary bytes: see `wire::check_decoder`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| larder_9p::wire::check_decoder(data));
