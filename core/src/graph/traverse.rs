//! The traversal graph of a namespace: topology only (ids, relation types, weights), built
//! from rows with petgraph and cached per namespace until the next topology change.
//!
//! Node and edge indices live only in memory for one build; results are reported by uuid and
//! their payloads are read back from rows.

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use super::rows::{uid_of, Uid, SOURCE_SIDE};
use crate::datastore::DataTables;
use crate::datastore::NamespaceId;
use crate::error::Error;
use crate::error::Result;
use crate::storage::RoTxn;

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
pub(crate) struct Reach {
    pub entities: Vec<(Uid, u32)>,
    pub relations: Vec<Uid>,
}

/// A lowest-weight path.
pub(crate) struct Path {
    pub entities: Vec<Uid>,
    pub relations: Vec<Uid>,
    pub total_weight: f64,
}

impl NamespaceGraph {
    /// An empty graph with room for this many entities and relations.
    pub(crate) fn with_capacity(entities: usize, relations: usize) -> NamespaceGraph {
        NamespaceGraph {
            graph: DiGraph::with_capacity(entities, relations),
            nodes: HashMap::with_capacity(entities),
            kinds: HashMap::new(),
        }
    }

    /// Adds an entity (before any relation touching it).
    pub(crate) fn add_entity(&mut self, id: Uid) {
        let ix = self.graph.add_node(id);
        self.nodes.insert(id, ix);
    }

    /// Adds a relation between two added entities (ignored otherwise: rows of a relation and
    /// its endpoints change in one transaction, so that never happens in one snapshot).
    pub(crate) fn add_relation(
        &mut self,
        id: Uid,
        source: Uid,
        target: Uid,
        kind: &str,
        weight: f64,
    ) {
        let (Some(&s), Some(&t)) = (self.nodes.get(&source), self.nodes.get(&target)) else {
            return;
        };
        let kind = if let Some(&k) = self.kinds.get(kind) {
            k
        } else {
            let k = self.kinds.len() as u32;
            self.kinds.insert(kind.to_owned(), k);
            k
        };
        self.graph.add_edge(s, t, Edge { id, kind, weight });
    }

    /// Entities and relations counted in the graph.
    #[cfg(test)]
    pub(crate) fn size(&self) -> (usize, usize) {
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
    pub(crate) fn reach(
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

    /// Bidirectional Dijkstra over relation weights, following relations in either
    /// direction. `None` when no path joins the two entities.
    pub(crate) fn shortest_path(&self, from: &Uid, to: &Uid) -> Option<Path> {
        if from == to {
            return Some(Path { entities: vec![*from], relations: Vec::new(), total_weight: 0.0 });
        }
        let (&start, &goal) = (self.nodes.get(from)?, self.nodes.get(to)?);
        let count = self.graph.node_count();
        // Side 0 searches from `start`, side 1 from `goal`.
        let mut dist = [vec![f64::INFINITY; count], vec![f64::INFINITY; count]];
        let mut via: [Vec<Option<(EdgeIndex, NodeIndex)>>; 2] =
            [vec![None; count], vec![None; count]];
        let mut settled = [vec![false; count], vec![false; count]];
        dist[0][start.index()] = 0.0;
        dist[1][goal.index()] = 0.0;
        let mut heaps = [
            BinaryHeap::from([Step { cost: 0.0, node: start }]),
            BinaryHeap::from([Step { cost: 0.0, node: goal }]),
        ];
        // Best total so far, and where the two searches met: (start-side node, edge, goal-side node).
        let mut best = f64::INFINITY;
        let mut meet = None;
        loop {
            let top = |heap: &BinaryHeap<Step>| heap.peek().map_or(f64::INFINITY, |s| s.cost);
            let (top0, top1) = (top(&heaps[0]), top(&heaps[1]));
            // No later meeting can beat `best` (an exhausted side makes this infinite).
            if top0 + top1 >= best || (top0.is_infinite() && top1.is_infinite()) {
                break;
            }
            let side = usize::from(top1 < top0);
            let Some(Step { cost, node }) = heaps[side].pop() else { break };
            if std::mem::replace(&mut settled[side][node.index()], true) {
                continue;
            }
            for (e, other) in self.incident(node, None) {
                if other == node {
                    continue;
                }
                let next = cost + self.graph[e].weight;
                if next < dist[side][other.index()] {
                    dist[side][other.index()] = next;
                    via[side][other.index()] = Some((e, node));
                    heaps[side].push(Step { cost: next, node: other });
                }
                let through = next + dist[1 - side][other.index()];
                if through < best {
                    best = through;
                    meet = Some(if side == 0 { (node, e, other) } else { (other, e, node) });
                }
            }
        }
        let (near, link, far) = meet?;
        // start … near along side 0's tree, then link, then far … goal along side 1's tree.
        let mut entities = vec![self.graph[near]];
        let mut relations = Vec::new();
        let mut at = near;
        while let Some((edge, prev)) = via[0][at.index()] {
            relations.push(edge);
            entities.push(self.graph[prev]);
            at = prev;
        }
        entities.reverse();
        relations.reverse();
        relations.push(link);
        entities.push(self.graph[far]);
        let mut at = far;
        while let Some((edge, next)) = via[1][at.index()] {
            relations.push(edge);
            entities.push(self.graph[next]);
            at = next;
        }
        let total_weight = relations.iter().map(|r| self.graph[*r].weight).sum();
        Some(Path {
            entities,
            relations: relations.iter().map(|r| self.graph[*r].id).collect(),
            total_weight,
        })
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
    /// One builder per namespace at a time: concurrent first traversals wait for one build
    /// instead of each scanning every row.
    building: Mutex<HashMap<NamespaceId, Arc<Mutex<()>>>>,
}

impl GraphCache {
    /// The namespace is gone.
    pub(crate) fn forget(&self, ns: NamespaceId) {
        self.entries.write().remove(&ns);
        self.building.lock().remove(&ns);
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
        let cached = || match self.entries.read().get(&ns) {
            Some(Slot { graph: Some(g), .. }) => Ok(g.clone()),
            Some(slot) => Err(slot.generation),
            None => Err(0),
        };
        if let Ok(g) = cached() {
            return Ok(g);
        }
        let lock = self.building.lock().entry(ns).or_default().clone();
        let _building = lock.lock();
        let generation = match cached() {
            Ok(g) => return Ok(g), // built while this call waited
            Err(generation) => generation,
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

/// Builds a namespace's traversal graph from its entity keys and the source-side adjacency
/// rows (binary, so no relation JSON is parsed).
pub(crate) fn load_topology(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
) -> Result<NamespaceGraph> {
    let stats = t.stats_of(r, ns)?;
    let mut graph =
        NamespaceGraph::with_capacity(stats.entity_count as usize, stats.relation_count as usize);
    let prefix = ns.to_be_bytes();
    for row in t.entities.prefix_iter(r, &prefix)? {
        let (key, _) = row?;
        graph.add_entity(uid_of(&key[8..])?);
    }
    for row in t.entity_relations.prefix_iter(r, &prefix)? {
        let (key, value) = row?;
        if value.first() != Some(&SOURCE_SIDE) {
            continue;
        }
        let corrupt = || Error::Internal("corrupt graph adjacency row".into());
        if key.len() != 40 || value.len() < 25 {
            return Err(corrupt());
        }
        let weight = f64::from_le_bytes(value[17..25].try_into().map_err(|_| corrupt())?);
        let kind = std::str::from_utf8(&value[25..]).map_err(|_| corrupt())?;
        graph.add_relation(
            uid_of(&key[24..])?,
            uid_of(&key[8..24])?,
            uid_of(&value[1..17])?,
            kind,
            weight,
        );
    }
    Ok(graph)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(n: u8) -> Uid {
        [n; 16]
    }

    fn graph(nodes: u8, edges: &[(u8, u8, u8, &str, f64)]) -> NamespaceGraph {
        let mut g = NamespaceGraph::with_capacity(0, 0);
        for n in 1..=nodes {
            g.add_entity(uid(n));
        }
        for (id, s, t, k, w) in edges {
            g.add_relation(uid(100 + id), uid(*s), uid(*t), k, *w);
        }
        g
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

    /// Cheapest undirected distances by Floyd–Warshall: the model the search must match.
    fn model_distances(nodes: usize, edges: &[(u8, u8, u8, &str, f64)]) -> Vec<Vec<f64>> {
        let mut d = vec![vec![f64::INFINITY; nodes + 1]; nodes + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[i] = 0.0;
        }
        for &(_, s, t, _, w) in edges {
            let (s, t) = (usize::from(s), usize::from(t));
            d[s][t] = d[s][t].min(w);
            d[t][s] = d[t][s].min(w);
        }
        for k in 1..=nodes {
            for i in 1..=nodes {
                for j in 1..=nodes {
                    if d[i][k] + d[k][j] < d[i][j] {
                        d[i][j] = d[i][k] + d[k][j];
                    }
                }
            }
        }
        d
    }

    proptest::proptest! {
        #[test]
        fn shortest_path_matches_floyd_warshall(
            nodes in 2u8..12,
            raw in proptest::collection::vec((1u8..12, 1u8..12, 0u8..5), 0..30),
            from in 1u8..12,
            to in 1u8..12,
        ) {
            let clamp = |n: u8| (n - 1) % nodes + 1;
            let edges: Vec<(u8, u8, u8, &str, f64)> = raw
                .iter()
                .enumerate()
                .map(|(i, &(s, t, w))| (i as u8, clamp(s), clamp(t), "r", f64::from(w) * 0.5))
                .collect();
            let (from, to) = (clamp(from), clamp(to));
            let g = graph(nodes, &edges);
            let want = model_distances(usize::from(nodes), &edges)[usize::from(from)][usize::from(to)];
            match g.shortest_path(&uid(from), &uid(to)) {
                None => proptest::prop_assert!(want.is_infinite()),
                Some(p) => {
                    proptest::prop_assert!((p.total_weight - want).abs() < 1e-9, "got {} want {want}", p.total_weight);
                    proptest::prop_assert_eq!(p.entities.first(), Some(&uid(from)));
                    proptest::prop_assert_eq!(p.entities.last(), Some(&uid(to)));
                    proptest::prop_assert_eq!(p.relations.len() + 1, p.entities.len());
                    // Each relation joins the consecutive entities (in either direction).
                    for (k, rel) in p.relations.iter().enumerate() {
                        let (_, s, t, _, _) = edges[usize::from(rel[0] - 100)];
                        let pair = (p.entities[k][0], p.entities[k + 1][0]);
                        proptest::prop_assert!(pair == (s, t) || pair == (t, s));
                    }
                }
            }
        }
    }
}
