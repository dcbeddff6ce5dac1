//! Integration tests of the engine through its public API, on real LMDB files.

mod audit;
mod embedder;
mod encrypted_cache;
mod encrypted_stress;
mod encrypted_threads;
mod encryption;
mod erasure;
mod errors;
mod fixture_v0;
mod flow;
mod graph;
mod holes;
mod instance_key;
mod isolation;
mod keys;
mod keyword;
mod layers;
mod memories;
mod model;
mod old_cipher;
mod page_split;
mod quotas;
mod recall;
mod scale;
mod session;
#[path = "../common/synthetic.rs"]
mod synthetic;
mod tenant_keys;
mod transfer;
mod upgrade;
