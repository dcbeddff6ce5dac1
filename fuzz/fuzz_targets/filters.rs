//! libFuzzer target `filters`: see `memsilo_reliability::fuzz::filters`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memsilo_reliability::fuzz::filters(data));
