//! libFuzzer target `import_reader`: see `memsilo_reliability::fuzz::import_reader`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memsilo_reliability::fuzz::import_reader(data));
