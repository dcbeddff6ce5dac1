//! memsilo's reliability and security suite: real processes, real files, real sockets on
//! 127.0.0.1 only. Randomness is seeded and every seed is printed.

// Scenario tests read top to bottom; splitting them would hide the story.
#![allow(clippy::too_many_lines)]

mod bad_input;
mod catalogue;
mod crash;
mod fuzz_loop;
mod http;
mod http_bad_input;
mod issue14;
mod load;
mod resources;
mod rotation;
mod security;
