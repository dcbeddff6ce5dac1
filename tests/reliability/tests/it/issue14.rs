//! Issue 14's regression cases, kept running here: the HTTP ones are memsilo-http's
//! (`bindings/http/tests/it/holes.rs`), the engine ones core's (`core/tests/it/holes.rs`),
//! compiled into this suite from the same files.

#[path = "../../../../bindings/http/tests/it/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../../../../bindings/http/tests/it/holes.rs"]
mod http_holes;

#[path = "../../../../core/tests/it/holes.rs"]
mod engine_holes;
