//! libFuzzer target `vector_input`: see `memsilo_reliability::fuzz::vector_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memsilo_reliability::fuzz::vector_input(data));
