//! libFuzzer target `handle_call`: see `memsilo_reliability::fuzz::handle_call`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memsilo_reliability::fuzz::handle_call(data));
