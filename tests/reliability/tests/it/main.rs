//! memsilo's reliability and security suite: real processes, real files, real sockets on
//! 127.0.0.1 only. Randomness is seeded and every seed is printed.

mod catalogue;
mod bad_input;
mod http;
mod http_bad_input;
mod crash;
mod resources;
mod security;
mod fuzz_loop;
