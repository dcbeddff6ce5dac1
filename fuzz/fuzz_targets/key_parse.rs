//! libFuzzer target `key_parse`: see `memsilo_reliability::fuzz::key_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memsilo_reliability::fuzz::key_parse(data));
