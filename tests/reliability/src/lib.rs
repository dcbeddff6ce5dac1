//! Shared pieces of memsilo's reliability tests: a seeded generator, the deterministic
//! vectors the crash writer stores, and a state snapshot used to prove that a refused
//! request wrote nothing.

pub mod fuzz;

use memsilo::{Handle, Result};
use serde_json::{json, Value};

/// A small seeded generator (SplitMix64): the same seed gives the same run, on every
/// platform and without depending on a crate's changing API.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// An index below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The seed named by environment variable `var`, else `default`; printed so a failing run
/// can be replayed.
pub fn seed_from_env(var: &str, default: u64) -> u64 {
    let seed = std::env::var(var).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(default);
    eprintln!("{var}={seed}");
    seed
}

/// Dimensions of the crash writer's vectors.
pub const DIMS: usize = 16;

/// The vector stored with `content`: derived from the text alone, so a checker can recall
/// any memory by its exact vector knowing only its content.
pub fn vector_for(content: &str) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in content.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = Rng::new(h);
    (0..DIMS).map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5).collect()
}

/// Everything an operation could have changed, as the root principal sees it: tenants,
/// members, namespaces with their memory counts and storage bytes, and keys. Two equal
/// snapshots mean nothing was written in between.
pub fn snapshot(root: &Handle) -> Result<Value> {
    let mut namespaces = Vec::new();
    let mut keys = Vec::new();
    let mut tenants = Vec::new();
    let mut members = Vec::new();
    for offset in (0..).step_by(100) {
        let page = root.call("list_namespaces", json!({ "offset": offset, "limit": 100 }))?;
        let items = page.value.as_array().cloned().unwrap_or_default();
        let done = items.len() < 100;
        namespaces.extend(items);
        if done {
            break;
        }
    }
    for offset in (0..).step_by(100) {
        let page = root.call("list_keys", json!({ "offset": offset, "limit": 100 }))?;
        let items = page.value.as_array().cloned().unwrap_or_default();
        let done = items.len() < 100;
        keys.extend(items);
        if done {
            break;
        }
    }
    for offset in (0..).step_by(100) {
        let page = root.call("list_tenants", json!({ "offset": offset, "limit": 100 }))?;
        let items = page.value["tenants"].as_array().cloned().unwrap_or_default();
        let done = items.len() < 100;
        for t in &items {
            let id = t["id"].as_str().unwrap_or_default();
            let list = root.call("list_members", json!({ "tenant_id": id, "limit": 100 }))?;
            members.push(list.value);
        }
        tenants.extend(items);
        if done {
            break;
        }
    }
    Ok(json!({ "namespaces": namespaces, "keys": keys, "tenants": tenants, "members": members }))
}
