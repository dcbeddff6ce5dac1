//! libFuzzer target `request_decode`: see `memsilo_reliability::fuzz::request_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memsilo_reliability::fuzz::request_decode(data));
