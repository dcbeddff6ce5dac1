//! memsilo's cluster layer (`memsilo serve --cluster`).
//!
//! - **etcd** holds membership (a leased key per node), namespace ownership (one leased owner
//!   key per namespace, claimed with a guarded transaction), and the control plane of the
//!   cluster: namespaces and API keys (hashes only), cached on every node through a watch.
//! - **Object storage** (S3 or compatible, through `object_store`) holds each namespace's
//!   write-ahead log ([`wal`]): objects created with conditional puts, so the store itself
//!   refuses a second owner.
//! - A node's LMDB engine is a cache of the namespaces it owns, rebuilt from the log when it
//!   takes one over. Any node accepts any request and forwards it to the owner.
//!
//! The HTTP face lives in `memsilo-http` (feature `cluster`); this crate speaks in operations
//! of the API table (`op`, JSON arguments) and replies.

mod audit;
mod control;
mod keys;
mod namespaces;
mod node;
mod quota;
mod tenants;
pub mod wal;

pub use control::{Caller, KeyRecord};
pub use namespaces::NamePage;
pub use node::{
    namespace_of, namespace_op, Config, Forwarded, Node, Owned, Target, WATCH_PROGRESS,
};
pub use quota::slice as reservation_slice;

use std::sync::Arc;

use object_store::ObjectStore;

/// Opens the bucket of an S3 URL `http(s)://HOST[:PORT]/BUCKET`, with credentials and region
/// from the usual `AWS_*` environment variables.
pub fn object_store_from_url(url: &str) -> Result<Arc<dyn ObjectStore>, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("--s3 {url:?}: expected http(s)://HOST[:PORT]/BUCKET"))?;
    let (host, bucket) = rest
        .split_once('/')
        .filter(|(h, b)| !h.is_empty() && !b.is_empty() && !b.contains('/'))
        .ok_or_else(|| format!("--s3 {url:?}: expected http(s)://HOST[:PORT]/BUCKET"))?;
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_endpoint(format!("{scheme}://{host}"))
        .with_bucket_name(bucket)
        .with_allow_http(scheme == "http")
        .with_virtual_hosted_style_request(false)
        .build()
        .map_err(|e| format!("--s3 {url:?}: {e}"))?;
    Ok(Arc::new(store))
}
