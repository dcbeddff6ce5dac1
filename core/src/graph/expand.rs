//! Recall expansion: memories reached through the knowledge graph.
//!
//! From the direct hits, take the entity names their memories mention, the entities with
//! those names (ignoring case), and every entity within `depth` hops of them (relations of
//! any type, either direction). Memories that mention any of those entities and are live and
//! pass the recall's filters are added after the direct hits, nearest entity first, then by
//! effective importance. Their `similarity` is 0 (they were not compared with the query) and
//! their score is below every direct hit's: `lowest direct score - 0.01 * (hops + 1) +
//! 0.001 * effective_importance`.

use std::collections::{HashMap, HashSet};

use super::rows::{self, Uid};
use super::GraphCache;
use crate::datastore::ns_key;
use crate::datastore::DataTables;
use crate::error::Result;
use crate::rank::{hit, RecallHit};
use crate::records::memory::{memory_key, read_memory};
use crate::records::{Memory, NamespaceRecord};
use crate::store::Store;

/// Score gap per hop between direct hits and graph hits.
const HOP_STEP: f64 = 0.01;
/// Weight of effective importance among graph hits of one hop distance.
const IMPORTANCE_STEP: f64 = 0.001;
/// Fewest graph hits added when that many exist (otherwise as many as the direct hits).
const MIN_GRAPH_HITS: usize = 10;
/// Most linked memories read in one expansion (a hub entity may be named by very many).
const MAX_LINK_READS: usize = 5_000;

/// Adds memories linked through the graph to the entities the hits mention. `keep` is the
/// recall's filter (liveness included) given a memory and its effective importance, or
/// `None` when the memory must not be returned. `env` is the namespace's data environment,
/// `graphs` the cache of traversal graphs.
pub(crate) fn expand_hits(
    graphs: &GraphCache,
    env: &Store<DataTables>,
    rec: &NamespaceRecord,
    mut hits: Vec<RecallHit>,
    depth: u32,
    keep: &dyn Fn(&Memory) -> Option<f64>,
) -> Result<Vec<RecallHit>> {
    if hits.is_empty() || depth == 0 {
        return Ok(hits);
    }
    let direct: HashSet<Uid> = hits.iter().map(|h| memory_key(&h.id)).collect();
    let starts: Vec<Uid> = env.read(|r, t| {
        let mut names = HashSet::new();
        for id in &direct {
            if let Some(s) = read_memory(t, r, &ns_key(rec.id, id))? {
                names.extend(s.memory.entities.iter().map(|n| n.to_lowercase()));
            }
        }
        let mut ids = Vec::new();
        for name in names {
            ids.extend(rows::entities_named_folded(t, r, rec.id, &name)?);
        }
        Ok(ids)
    })?;
    if starts.is_empty() {
        return Ok(hits);
    }
    let graph = super::load_graph(graphs, rec, env)?;
    let mut hops: HashMap<Uid, u32> = HashMap::new();
    for start in &starts {
        for (id, d) in graph.reach(start, depth, None, false).entities {
            hops.entry(id).and_modify(|h| *h = (*h).min(d)).or_insert(d);
        }
    }
    let mut by_hops: Vec<(u32, Uid)> = hops.into_iter().map(|(id, d)| (d, id)).collect();
    by_hops.sort_unstable();

    let wanted = hits.len().max(MIN_GRAPH_HITS);
    let floor = hits.iter().map(|h| h.score).fold(f64::INFINITY, f64::min);
    let extra = env.read(|r, t| {
        let mut seen = direct.clone();
        let mut found: Vec<(u32, f64, Memory)> = Vec::new();
        let mut reads = 0;
        'entities: for (i, (d, entity)) in by_hops.iter().enumerate() {
            // Finish a hop distance before stopping, so nearer links always win.
            if found.len() >= wanted
                && by_hops.get(i.wrapping_sub(1)).is_some_and(|(prev, _)| prev != d)
            {
                break;
            }
            let Some(e) = rows::read_entity(t, r, rec.id, entity)? else { continue };
            for mid in super::links::memories_mentioning(t, r, rec.id, &e.name)? {
                if !seen.insert(mid) {
                    continue;
                }
                reads += 1;
                if reads > MAX_LINK_READS {
                    break 'entities;
                }
                let Some(s) = read_memory(t, r, &ns_key(rec.id, &mid))? else { continue };
                if let Some(eff) = keep(&s.memory) {
                    found.push((*d, eff, s.memory));
                }
            }
        }
        Ok(found)
    })?;
    let mut extra = extra;
    extra.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    extra.truncate(wanted);
    for (d, eff, m) in extra {
        let mut h = hit(m, 0.0, eff, true);
        h.score = floor - HOP_STEP * f64::from(d + 1) + IMPORTANCE_STEP * eff;
        hits.push(h);
    }
    Ok(hits)
}
