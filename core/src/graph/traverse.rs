//! The traversal graph of a namespace: topology only (ids, relation types, weights), built
//! from rows with petgraph and cached per namespace until the next topology change.
//!
//! Node and edge indices live only in memory for one build; results are reported by uuid and
//! their payloads are read back from rows.

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use super::rows::{Scan, Uid};
use crate::datastore::NamespaceId;
use crate::error::Result;

/// Cached namespaces beyond which the cache is emptied (a crude bound on memory).
const MAX_CACHED: usize = 256;

/// One relation in the traversal graph.
struct Edge {
    id: Uid,
    kind: u32,
    weight: f64,
}

/// A namespace's graph topology. Relations are directed `source → target`; traversals
/// follow them both ways.
pub(crate) struct NamespaceGraph {
    graph: DiGraph<Uid, Edge, u32>,
    nodes: HashMap<Uid, NodeIndex>,
    kinds: HashMap<String, u32>,
}

/// Entities reached (with their hop distance, start first, nearest first) and relations.
pub(super) struct Reach {
    pub entities: Vec<(Uid, u32)>,
    pub relations: Vec<Uid>,
}

/// A lowest-weight path.
pub(super) struct Path {
    pub entities: Vec<Uid>,
    pub relations: Vec<Uid>,
    pub total_weight: f64,
}

impl NamespaceGraph {
    /// Builds the graph from a scan of the rows.
    pub(super) fn build(scan: Scan) -> NamespaceGraph {
        let mut graph = DiGraph::with_capacity(scan.entities.len(), scan.relations.len());
        let mut nodes = HashMap::with_capacity(scan.entities.len());
        for id in scan.entities {
            nodes.insert(id, graph.add_node(id));
        }
        let mut kinds = HashMap::new();
        for (id, source, target, kind, weight) in scan.relations {
            // Relation rows never outlive their endpoints (both go in one transaction).
            let (Some(&s), Some(&t)) = (nodes.get(&source), nodes.get(&target)) else { continue };
            let next = kinds.len() as u32;
            let kind = *kinds.entry(kind).or_insert(next);
            graph.add_edge(s, t, Edge { id, kind, weight });
        }
        NamespaceGraph { graph, nodes, kinds }
    }

    /// Entities and relations counted in the graph.
    #[cfg(test)]
    pub(super) fn size(&self) -> (usize, usize) {
        (self.graph.node_count(), self.graph.edge_count())
    }

    /// Relations incident to `n` in either direction, each with the entity at its other end
    /// (a self loop is reported twice; callers dedupe by edge).
    fn incident(
        &self,
        n: NodeIndex,
        kind: Option<u32>,
    ) -> impl Iterator<Item = (EdgeIndex, NodeIndex)> + '_ {
        let out = self.graph.edges_directed(n, Direction::Outgoing).map(|e| (e, e.target()));
        let inc = self.graph.edges_directed(n, Direction::Incoming).map(|e| (e, e.source()));
        out.chain(inc)
            .filter(move |(e, _)| kind.is_none_or(|k| e.weight().kind == k))
            .map(|(e, other)| (e.id(), other))
    }

    /// Breadth-first reach from `start` up to `depth` hops, following relations both ways,
    /// only those of `kind` when given. `induced` adds every relation among the entities
    /// reached (a subgraph); otherwise relations are those traversed from entities nearer
    /// than `depth`.
    pub(super) fn reach(
        &self,
        start: &Uid,
        depth: u32,
        kind: Option<&str>,
        induced: bool,
    ) -> Reach {
        let Some(&start_ix) = self.nodes.get(start) else {
            // Created after this graph was built, with no relations yet.
            return Reach { entities: vec![(*start, 0)], relations: Vec::new() };
        };
        let kind = match kind {
            Some(k) => match self.kinds.get(k) {
                Some(&id) => Some(id),
                None => return Reach { entities: vec![(*start, 0)], relations: Vec::new() },
            },
            None => None,
        };
        let mut seen: HashMap<NodeIndex, u32> = HashMap::from([(start_ix, 0)]);
        let mut order = vec![start_ix];
        let mut seen_edges = HashSet::new();
        let mut relations = Vec::new();
        let mut frontier = vec![start_ix];
        for hop in 1..=depth {
            let mut next = Vec::new();
            for &n in &frontier {
                for (e, other) in self.incident(n, kind) {
                    if seen_edges.insert(e) {
                        relations.push(e);
                    }
                    if let Entry::Vacant(v) = seen.entry(other) {
                        v.insert(hop);
                        order.push(other);
                        next.push(other);
                    }
                }
            }
            if next.is_empty() {
                frontier.clear();
                break;
            }
            frontier = next;
        }
        if induced {
            for &n in &frontier {
                for (e, other) in self.incident(n, kind) {
                    if seen.contains_key(&other) && seen_edges.insert(e) {
                        relations.push(e);
                    }
                }
            }
        }
        Reach {
            entities: order.iter().map(|n| (self.graph[*n], seen[n])).collect(),
            relations: relations.iter().map(|e| self.graph[*e].id).collect(),
        }
    }

    /// Dijkstra over relation weights, following relations in either direction. `None` when
    /// no path joins the two entities.
    pub(super) fn shortest_path(&self, from: &Uid, to: &Uid) -> Option<Path> {
        if from == to {
            return Some(Path { entities: vec![*from], relations: Vec::new(), total_weight: 0.0 });
        }
        let (&a, &b) = (self.nodes.get(from)?, self.nodes.get(to)?);
        let mut best: HashMap<NodeIndex, f64> = HashMap::from([(a, 0.0)]);
        let mut via: HashMap<NodeIndex, (EdgeIndex, NodeIndex)> = HashMap::new();
        let mut heap = BinaryHeap::from([Step { cost: 0.0, node: a }]);
        while let Some(Step { cost, node }) = heap.pop() {
            if node == b {
                break;
            }
            if best.get(&node).is_some_and(|c| cost > *c) {
                continue;
            }
            for (e, other) in self.incident(node, None) {
                let next = cost + self.graph[e].weight;
                if best.get(&other).is_none_or(|c| next < *c) {
                    best.insert(other, next);
                    via.insert(other, (e, node));
                    heap.push(Step { cost: next, node: other });
                }
            }
        }
        let total_weight = *best.get(&b)?;
        let mut entities = vec![self.graph[b]];
        let mut relations = Vec::new();
        let mut at = b;
        while at != a {
            let (e, prev) = via[&at];
            relations.push(self.graph[e].id);
            entities.push(self.graph[prev]);
            at = prev;
        }
        entities.reverse();
        relations.reverse();
        Some(Path { entities, relations, total_weight })
    }
}

/// A heap entry ordered so the cheapest pops first.
#[derive(PartialEq)]
struct Step {
    cost: f64,
    node: NodeIndex,
}

impl Eq for Step {}

impl Ord for Step {
    fn cmp(&self, other: &Self) -> Ordering {
        other.cost.total_cmp(&self.cost).then_with(|| self.node.cmp(&other.node))
    }
}

impl PartialOrd for Step {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Default)]
struct Slot {
    /// Bumped by every invalidation; a build started under an older generation is used
    /// once but not kept.
    generation: u64,
    graph: Option<Arc<NamespaceGraph>>,
}

/// Per-namespace traversal graphs, rebuilt from rows after a topology change.
#[derive(Default)]
pub(crate) struct GraphCache {
    entries: RwLock<HashMap<NamespaceId, Slot>>,
}

impl GraphCache {
    /// The namespace is gone.
    pub(crate) fn forget(&self, ns: NamespaceId) {
        self.entries.write().remove(&ns);
    }

    /// A write changed the namespace's topology (call after it committed).
    pub(crate) fn invalidate(&self, ns: NamespaceId) {
        let mut entries = self.entries.write();
        let slot = entries.entry(ns).or_default();
        slot.generation += 1;
        slot.graph = None;
    }

    /// The cached graph, or one built by `build` (from a transaction started after this call).
    pub(crate) fn get_or_build(
        &self,
        ns: NamespaceId,
        build: impl FnOnce() -> Result<NamespaceGraph>,
    ) -> Result<Arc<NamespaceGraph>> {
        let generation = match self.entries.read().get(&ns) {
            Some(Slot { graph: Some(g), .. }) => return Ok(g.clone()),
            Some(slot) => slot.generation,
            None => 0,
        };
        let graph = Arc::new(build()?);
        let mut entries = self.entries.write();
        if entries.len() >= MAX_CACHED && !entries.contains_key(&ns) {
            entries.retain(|_, s| s.graph.is_none());
        }
        let slot = entries.entry(ns).or_default();
        if slot.generation == generation {
            slot.graph = Some(graph.clone());
        }
        Ok(graph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(n: u8) -> Uid {
        [n; 16]
    }

    fn graph(nodes: u8, edges: &[(u8, u8, u8, &str, f64)]) -> NamespaceGraph {
        NamespaceGraph::build(Scan {
            entities: (1..=nodes).map(uid).collect(),
            relations: edges
                .iter()
                .map(|(id, s, t, k, w)| (uid(100 + id), uid(*s), uid(*t), (*k).to_owned(), *w))
                .collect(),
        })
    }

    #[test]
    fn reach_follows_both_directions_and_stops_at_depth() {
        // 1 → 2 → 3 → 4, and 5 → 1
        let g = graph(
            5,
            &[(1, 1, 2, "a", 1.0), (2, 2, 3, "a", 1.0), (3, 3, 4, "a", 1.0), (4, 5, 1, "b", 1.0)],
        );
        let r = g.reach(&uid(2), 1, None, false);
        assert_eq!(r.entities[0], (uid(2), 0));
        let mut ids: Vec<_> = r.entities.iter().map(|e| e.0[0]).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3]);
        let r = g.reach(&uid(2), 2, Some("a"), false);
        let mut ids: Vec<_> = r.entities.iter().map(|e| e.0[0]).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3, 4]);
        assert_eq!(g.reach(&uid(2), 2, Some("nope"), false).entities.len(), 1);
    }

    #[test]
    fn a_cache_built_before_an_invalidation_is_not_kept() {
        let cache = GraphCache::default();
        let g = cache
            .get_or_build(7, || {
                cache.invalidate(7); // a write commits while this build reads older rows
                Ok(graph(1, &[]))
            })
            .unwrap();
        assert_eq!(g.size(), (1, 0));
        let rebuilt = cache.get_or_build(7, || Ok(graph(2, &[]))).unwrap();
        assert_eq!(rebuilt.size(), (2, 0));
        assert_eq!(cache.get_or_build(7, || Ok(graph(3, &[]))).unwrap().size(), (2, 0));
    }
}
