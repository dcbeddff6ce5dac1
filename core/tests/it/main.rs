//! Integration tests of the engine through its public API, on real LMDB files.

mod flow;
mod graph;
mod recall;
mod isolation;
mod erasure;
mod keys;
mod memories;
mod quotas;
