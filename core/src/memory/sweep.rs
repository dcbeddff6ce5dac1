//! The decay and TTL sweep: bounded rounds over every namespace remove memories whose
//! effective importance or expiry says they are gone.

use super::{is_live, memory_key, remove_memories, scan_memories};
use crate::embed::Embedder;
use crate::engine::EngineInner;
use crate::error::Result;
use crate::namespace::NamespaceRecord;

/// Removes expired and decayed-away memories, at most `budget` per namespace. Returns how
/// many were removed.
pub(crate) fn sweep_all(inner: &EngineInner, budget: usize, step: Option<usize>) -> Result<u64> {
    // The background sweep takes `step` namespaces per round, in name order from where the
    // last round stopped (with a million namespaces, a round reads a few thousand, not all).
    let namespaces: Vec<NamespaceRecord> = inner.catalog.read(|r, t| {
        let Some(step) = step else {
            return Ok(t.namespaces.iter(r)?.filter_map(|e| e.ok().map(|(_, v)| v)).collect());
        };
        let mut from = inner.sweep_from.lock();
        let start = if from.is_empty() {
            std::ops::Bound::Unbounded
        } else {
            std::ops::Bound::Excluded(from.as_str())
        };
        let out: Vec<NamespaceRecord> = t
            .namespaces
            .range(r, &(start, std::ops::Bound::Unbounded))?
            .take(step)
            .filter_map(|e| e.ok().map(|(_, v)| v))
            .collect();
        *from = if out.len() < step {
            String::new()
        } else {
            out.last().map(|n| n.name.clone()).unwrap_or_default()
        };
        Ok(out)
    })?;
    let now = inner.now_micros();
    let mut total = 0;
    for rec in namespaces {
        if inner.is_dead(rec.id) {
            continue;
        }
        // Only a decay floor or an expiry can make a memory go; most namespaces have neither,
        // and then the sweep reads none of their rows.
        let decays = rec.policy.min_importance > 0.0;
        let env = inner.data_env_of(&rec)?;
        if !decays && env.read(|r, t| t.stats_of(r, rec.id))?.expiring == 0 {
            continue;
        }
        let doomed: Vec<[u8; 16]> = env.read(|r, t| {
            let mut out = Vec::new();
            for s in scan_memories(t, r, rec.id)? {
                let m = s?.memory;
                if !decays && m.expires_at.is_none() {
                    continue;
                }
                if !is_live(&m, &rec.policy, now) {
                    out.push(memory_key(&m.id));
                    if out.len() >= budget {
                        break;
                    }
                }
            }
            Ok(out)
        })?;
        match remove_memories(inner, &rec, &doomed) {
            Ok(removed) => total += removed.len() as u64,
            Err(_) if inner.is_dead(rec.id) => {} // deleted meanwhile: the purge takes its rows
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

impl EngineInner {
    /// The embedder of a namespace's text (see [`crate::embed::for_namespace`]).
    pub(crate) fn embedder_for(
        &self,
        rec: &NamespaceRecord,
    ) -> Result<std::sync::Arc<dyn Embedder>> {
        let stats = self.data_env_of(rec)?.read(|r, t| t.stats_of(r, rec.id))?;
        crate::embed::for_namespace(&self.options.embedder, stats.embedder.as_deref())
    }

    /// The storage figures of the tenants of the tree under `root` (each tenant's includes
    /// its descendants'), read from their namespaces' environments.
    pub(crate) fn tree_usage(&self, root: &str) -> Result<std::collections::HashMap<String, u64>> {
        let namespaces: Vec<(NamespaceRecord, Vec<crate::quota::QuotaLink>)> =
            self.catalog.read(|r, t| {
                let mut out = Vec::new();
                let ids = t.tenants.remap_data_type::<heed3::types::DecodeIgnore>();
                let ids: Vec<String> = ids
                    .iter(r)?
                    .map(|e| e.map(|(id, ())| id.to_owned()))
                    .collect::<heed3::Result<_>>()?;
                for id in ids {
                    let chain = crate::tenant::quota_chain(t, r, &id)?;
                    if chain.last().map(|l| l.tenant_id.as_str()) != Some(root) {
                        continue;
                    }
                    let prefix = format!("{id}/");
                    let names = t.tenant_namespaces.remap_data_type::<heed3::types::DecodeIgnore>();
                    let names: Vec<String> = names
                        .prefix_iter(r, &prefix)?
                        .map(|e| e.map(|(k, ())| k[prefix.len()..].to_owned()))
                        .collect::<heed3::Result<_>>()?;
                    for name in names {
                        if let Some(rec) = t.namespaces.get(r, &name)? {
                            out.push((rec, chain.clone()));
                        }
                    }
                }
                Ok(out)
            })?;
        let mut usage = std::collections::HashMap::<String, u64>::new();
        for (rec, chain) in namespaces {
            if !rec.location.dir(&self.dir).exists() {
                continue;
            }
            let bytes = self.namespace_stats(&rec)?.storage_bytes;
            for link in chain {
                *usage.entry(link.tenant_id).or_default() += bytes;
            }
        }
        Ok(usage)
    }
}
