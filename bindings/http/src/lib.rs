//! memsilo's HTTP face: the server behind `memsilo serve` and a blocking remote [`Client`]
//! with the same operations, results and error codes as an in-process `memsilo::Handle`.
//!
//! Both are built from one route table ([`routes::ROUTES`]): the server registers a handler
//! per route, and the client encodes each `(op, args)` call with the same entry.

pub mod bindings;
mod cli;
mod client;
#[cfg(feature = "cluster")]
mod cluster;
mod connections;
mod console;
pub mod dakera;
mod dispatch;
mod inflight;
mod json;
pub mod log;
mod metrics;
mod openapi;
mod response;
pub mod routes;
mod schemas;
mod server;
mod stream;
mod transfer;
mod upgrade;
mod usage;

pub use cli::{run_cli, EXIT_PANIC};
pub use client::{Client, ClientOptions};
pub use openapi::document as openapi_document;
pub use server::{router, serve, ServeOptions, Server};
