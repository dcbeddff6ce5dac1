//! The decay and TTL sweep: bounded rounds over every namespace remove memories whose
//! effective importance or expiry says they are gone.

use super::EngineInner;
use crate::error::Result;
use crate::rank::is_live;
use crate::records::memory::{memory_key, scan_memories};
use crate::records::NamespaceRecord;

/// Removes expired and decayed-away memories, at most `budget` per namespace. Returns how
/// many were removed.
pub(crate) fn sweep_all(inner: &EngineInner, budget: usize, step: Option<usize>) -> Result<u64> {
    // The background sweep takes `step` namespaces per round, in name order from where the
    // last round stopped (with a million namespaces, a round reads a few thousand, not all).
    let namespaces: Vec<NamespaceRecord> = inner.state.catalog.read(|r, t| {
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
    let now = inner.state.now_micros();
    let mut total = 0;
    for rec in namespaces {
        if inner.state.is_dead(rec.id) {
            continue;
        }
        // Only a decay floor or an expiry can make a memory go; most namespaces have neither,
        // and then the sweep reads none of their rows.
        let decays = rec.policy.min_importance > 0.0;
        let env = inner.state.data_env_of(&rec)?;
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
        match inner.state.remove_memories(&rec, &doomed) {
            Ok(removed) => total += removed.len() as u64,
            Err(_) if inner.state.is_dead(rec.id) => {} // deleted meanwhile: the purge takes its rows
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}
