//! memsilo-http integration tests: a real server on a loopback port, real data directories.

mod audit;
mod binary;
mod client;
mod console;
mod dakera;
mod docs;
mod edge;
mod graph;
mod holes;
mod hostile;
mod memory;
mod namespaces;
mod openapi;
mod sessions;
mod several_urls;
mod support;
mod tenants;
mod transfer;
mod under_load;
mod upgrade;
mod wire;
