//! Knowledge graph per namespace: entities (nodes) and typed, weighted, directed relations
//! (edges), stored as rows in the namespace's data environment (see [`rows`] for the key
//! layout) and traversed with petgraph over a topology graph built from those rows and cached
//! per namespace until the next change (see [`traverse`]).
//!
//! # Semantics
//! - **Entities** are unique by `(name, type)`; `type` defaults to `entity`. Adding an
//!   existing `(name, type)` is an upsert: the given properties are merged into the stored
//!   ones (shallow: a given key replaces the stored value) and, when any are given,
//!   `updated_at` changes. Names are matched exactly (case-sensitive) in lookups.
//!   `name` is 1–256 bytes without NUL; `type` 1–64 bytes of `[A-Za-z0-9_.-]`; properties
//!   at most 64 KiB of JSON (also after merging).
//! - **Relations** go from `source` to `target`, each given as an entity id or name. A name
//!   matching exactly one entity means that entity; several (of different types) is
//!   `invalid_argument` asking for the id; none creates an entity of type `entity`. A
//!   reference that is a UUID but matches no entity of this namespace is `not_found`, so an
//!   id from another namespace never reaches across. `type` is required (1–64 bytes of
//!   `[A-Za-z0-9_.-]`); `weight` is finite and ≥ 0 (default 1); parallel relations (each
//!   with its own id) and self loops are allowed.
//! - **Traversals** follow relations in both directions. `neighbors` returns the start
//!   entity first, then entities by hop distance, and the relations traversed from entities
//!   nearer than `depth` (default 1, at most 5), optionally only relations of one type;
//!   `subgraph` returns the same entities and every relation among them (of that type, when
//!   given). `shortest_path` is Dijkstra over weights, relations usable in either direction;
//!   no path is `not_found`.
//! - **Deleting** an entity deletes every relation touching it and, when no other entity
//!   has the same name ignoring case, the links of memories that mention that name.
//! - Every change is one transaction that also updates `entity_count`, `relation_count` and
//!   `storage_bytes`; growth is reserved against the tenant's storage quota first, so an
//!   over-quota write fails with `quota_exceeded` and writes nothing. Batches
//!   ([`Handle::add_entities`], [`Handle::add_relations`]) are all or nothing.
//! - Reads need read access to the namespace, changes write access, exactly as for memories.
//! - **Memories** name entities in `StoreMemory::entities`; the link is by name, ignoring
//!   case. Recall with `expand: n` adds memories linked to entities within `n` hops of the
//!   entities the direct hits name (see [`expand_hits`]).
//!
//! # Cost
//! The topology (ids, types, weights; no names or properties) is built from rows on the first
//! traversal after a change that adds or removes entities or relations (a property-only
//! upsert keeps it): about 150 ms for 100,000 entities and 300,000 relations in a release
//! build. Warm traversals then read only the rows they return: on that graph `neighbors` at
//! depth 2 takes about 0.25 ms (p50) and a bidirectional `shortest_path` between random
//! entities about 1.5 ms (`cargo bench -p memsilo --bench graph`).

mod expand;
mod rows;
mod traverse;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::NamespaceAction;
use crate::datastore::{DataTables, NamespaceStats};
use crate::engine::{EngineInner, Handle};
use crate::error::{Error, Result};
use crate::namespace::NamespaceRecord;
use crate::store::Store;
use rows::{Resolved, Uid};
use traverse::NamespaceGraph;

pub(crate) use expand::expand_hits;
pub(crate) use rows::{link_memory, unlink_memory};
pub(crate) use traverse::GraphCache;

/// Longest entity name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest entity or relation type, in bytes.
pub const MAX_TYPE_BYTES: usize = 64;
/// Largest properties object, serialised.
pub const MAX_PROPERTIES_BYTES: usize = crate::document::MAX_DOCUMENT_BYTES;
/// Most hops of a traversal.
pub const MAX_DEPTH: u32 = 5;
/// Most entities or relations in one batch.
pub const MAX_GRAPH_BATCH: usize = 10_000;
/// Default entity type.
pub const DEFAULT_ENTITY_TYPE: &str = "entity";

/// A node of a namespace's graph. Unique by `(name, type)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Entity {
    /// UUID.
    pub id: String,
    /// Name (1–256 bytes).
    pub name: String,
    /// Type (default `entity`).
    #[serde(rename = "type")]
    pub entity_type: String,
    /// Free-form properties.
    pub properties: Map<String, Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
}

/// A directed, typed, weighted edge between two entities of one namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Relation {
    /// UUID.
    pub id: String,
    /// Source entity id.
    pub source: String,
    /// Target entity id.
    pub target: String,
    /// Source entity name.
    pub source_name: String,
    /// Target entity name.
    pub target_name: String,
    /// Relation type (e.g. `works_at`).
    #[serde(rename = "type")]
    pub relation_type: String,
    /// Weight (cost for shortest paths), finite and non-negative; default 1.
    pub weight: f64,
    /// Free-form properties.
    pub properties: Map<String, Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The ids a graph write gives what it creates, fixed ahead instead of new random ones
/// ([`Handle::with_graph_ids`]). A replicated log (cluster mode) picks them before it logs a
/// write, so the write and its replay on another node create the same rows. An id names a
/// row only if the write creates it: an `add_entity` that merges into an existing entity, or a
/// relation end that names an existing entity, leaves its id unused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphIds {
    /// `add_entity`: the entity's id if it is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// `add_relation`: the relation's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// `add_relation`: the id of the source entity if it is created by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `add_relation`: the id of the target entity if it is created by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl GraphIds {
    /// New ids (UUID v7) for every row operation `op` may create; `None` for an operation
    /// that creates no graph rows.
    pub fn fresh(op: &str) -> Option<GraphIds> {
        let new = || Some(uuid::Uuid::now_v7().to_string());
        match op {
            "add_entity" => Some(GraphIds { entity: new(), ..GraphIds::default() }),
            "add_relation" => {
                Some(GraphIds { entity: None, relation: new(), source: new(), target: new() })
            }
            _ => None,
        }
    }

    fn parse(id: Option<&String>, field: &str) -> Result<Option<rows::Uid>> {
        id.map(|id| {
            rows::parse_uid(id)
                .ok_or_else(|| Error::invalid(format!("graph_ids.{field}"), "must be a UUID"))
        })
        .transpose()
    }
}

/// Arguments of [`Handle::add_entity`] (upsert by name and type).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AddEntity {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Type (default `entity`).
    #[serde(default, rename = "type")]
    pub entity_type: Option<String>,
    /// Properties (merged into an existing entity's).
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
}

/// Arguments of [`Handle::add_relation`]. `source` and `target` are entity ids or names;
/// a name that matches no entity creates one of type `entity`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AddRelation {
    /// Namespace.
    pub namespace: String,
    /// Source entity (id or name).
    pub source: String,
    /// Target entity (id or name).
    pub target: String,
    /// Relation type.
    #[serde(rename = "type")]
    pub relation_type: String,
    /// Weight (default 1).
    #[serde(default)]
    pub weight: Option<f64>,
    /// Properties.
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
}

/// Arguments of [`Handle::neighbors`] and [`Handle::subgraph`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Neighbors {
    /// Namespace.
    pub namespace: String,
    /// Start entity (id or name).
    pub entity: String,
    /// Hops (default 1, at most 5).
    #[serde(default)]
    pub depth: Option<u32>,
    /// Follow only relations of this type.
    #[serde(default, rename = "type")]
    pub relation_type: Option<String>,
}

/// Entities and relations reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GraphView {
    /// Entities (the start entity first).
    pub entities: Vec<Entity>,
    /// Relations between them.
    pub relations: Vec<Relation>,
}

/// A shortest path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GraphPath {
    /// Entities from `from` to `to`.
    pub entities: Vec<Entity>,
    /// Relations along the path.
    pub relations: Vec<Relation>,
    /// Sum of relation weights.
    pub total_weight: f64,
}

fn validate_name(name: &str, field: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(field, format!("must be at most {MAX_NAME_BYTES} bytes")));
    }
    if name.contains('\0') {
        return Err(Error::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

fn validate_type(ty: &str, field: &str) -> Result<()> {
    let ok = !ty.is_empty()
        && ty.len() <= MAX_TYPE_BYTES
        && ty.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("must be 1-{MAX_TYPE_BYTES} characters of A-Z a-z 0-9 _ . -"),
        ))
    }
}

/// Validates a properties object; returns its serialised length.
fn validate_properties(p: Option<&Map<String, Value>>, field: &str) -> Result<usize> {
    p.map_or(Ok(0), |p| crate::document::check_object(field, p))
}

fn validate_reference(reference: &str, field: &str) -> Result<()> {
    if reference.is_empty() || reference.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be an entity id or a name of 1-{MAX_NAME_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn validate_batch(len: usize, field: &str) -> Result<()> {
    if len == 0 {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if len > MAX_GRAPH_BATCH {
        return Err(Error::PayloadTooLarge {
            field: field.into(),
            reason: format!("at most {MAX_GRAPH_BATCH} items per batch"),
        });
    }
    Ok(())
}

/// `field` inside batch item `prefix` (`entities[3].name`), or plain `field` for one item.
fn item_field(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

fn batch_namespace(item_ns: &str, namespace: &str, prefix: &str) -> Result<()> {
    if item_ns.is_empty() || item_ns == namespace {
        Ok(())
    } else {
        Err(Error::invalid(item_field(prefix, "namespace"), "differs from the batch namespace"))
    }
}

/// A relation line of an import: its id, the relation (ends by exported id, or by name), and
/// the names of its ends, looked up when their ids are not in the namespace.
pub(crate) struct ImportedRelation {
    pub id: String,
    pub relation: AddRelation,
    pub names: [Option<String>; 2],
}

/// A validated entity to upsert.
struct EntityItem {
    /// The id it gets if it is created (imports, [`GraphIds`]); a new UUID v7 when `None`.
    id: Option<rows::Uid>,
    name: String,
    entity_type: String,
    properties: Map<String, Value>,
    field: String,
}

/// A validated relation to add.
struct RelationItem {
    /// Kept by imports; skipped when a relation with this id is there already.
    id: Option<rows::Uid>,
    source: String,
    target: String,
    /// The ids `source` and `target` get if they are created by name ([`GraphIds`]).
    end_ids: [Option<rows::Uid>; 2],
    /// Names to look `source` and `target` up by when they are ids not in the namespace
    /// (an import's relation: its ends' exported ids, then their names).
    fallback_names: [Option<String>; 2],
    relation_type: String,
    weight: f64,
    properties: Map<String, Value>,
    prefix: String,
}

/// The traversal graph of a namespace, from the cache or built from its rows.
pub(crate) fn load_graph(
    inner: &EngineInner,
    rec: &NamespaceRecord,
    env: &Store<DataTables>,
) -> Result<Arc<NamespaceGraph>> {
    inner.graphs.get_or_build(rec.id, || env.read(|r, t| rows::load_topology(t, r, rec.id)))
}

/// What a graph write changed.
struct Change<R> {
    out: R,
    /// Change of charged bytes.
    delta: i64,
    /// Whether entities or relations were added or removed (the cached topology is stale).
    topology: bool,
}

impl Handle {
    fn graph_namespace(&self, namespace: &str, action: NamespaceAction) -> Result<NamespaceRecord> {
        let caller = self.caller()?;
        self.namespace_for(&caller, namespace, action)
    }

    /// Runs a graph write in one transaction: reserves `estimate` bytes of quota first,
    /// applies the byte delta to the namespace's stats and the tenant's usage, and
    /// invalidates the cached topology when it changed.
    fn write_graph<R: Send>(
        &self,
        rec: &NamespaceRecord,
        estimate: u64,
        mut f: impl FnMut(&DataTables, &mut heed3::RwTxn<'_>, &mut NamespaceStats) -> Result<Change<R>>
            + Send,
    ) -> Result<R> {
        let chain = match &rec.tenant_id {
            Some(t) => self.inner.catalog.read(|r, c| crate::tenant::quota_chain(c, r, t))?,
            None => Vec::new(),
        };
        let reservation =
            if estimate > 0 { Some(self.inner.usage.reserve(&chain, estimate)?) } else { None };
        let env = self.inner.data_env_of(rec)?;
        let (change, applied) = env.write_ns(rec.id, |w, t| {
            if self.inner.is_dead(rec.id) {
                return Err(Error::namespace_forbidden(&rec.name));
            }
            let mut stats = t.stats_of(w, rec.id)?;
            let change = f(t, w, &mut stats)?;
            let before = stats.storage_bytes;
            stats.storage_bytes = before.saturating_add_signed(change.delta);
            t.put_stats(w, rec.id, &stats)?;
            let applied = stats.storage_bytes as i64 - before as i64;
            Ok((change, applied))
        })?;
        match reservation {
            Some(res) => res.keep(applied.max(0) as u64),
            None if applied > 0 => self.inner.usage.adjust(&chain, applied),
            None => {}
        }
        if applied < 0 {
            self.inner.usage.adjust(&chain, applied);
        }
        if change.topology {
            self.inner.graphs.invalidate(rec.id);
        }
        Ok(change.out)
    }

    /// Creates or updates an entity (by name and type): see the module docs.
    pub fn add_entity(&self, req: AddEntity) -> Result<Entity> {
        let rec = self.graph_namespace(&req.namespace, NamespaceAction::Write)?;
        let mut item = prepare_entity(req, "")?;
        if let Some(ids) = &self.graph_ids {
            item.id = GraphIds::parse(ids.entity.as_ref(), "entity")?;
        }
        let mut out = self.write_entities(&rec, &[item])?;
        out.pop().ok_or_else(|| Error::Internal("upsert wrote nothing".into()))
    }

    /// Creates or updates many entities in one transaction: all of them or none. Each
    /// item's `namespace` must be empty or equal to `namespace`. Returns them in order.
    pub fn add_entities(&self, namespace: &str, entities: Vec<AddEntity>) -> Result<Vec<Entity>> {
        let rec = self.graph_namespace(namespace, NamespaceAction::Write)?;
        validate_batch(entities.len(), "entities")?;
        let items = entities
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let prefix = format!("entities[{i}]");
                batch_namespace(&e.namespace, namespace, &prefix)?;
                prepare_entity(e, &prefix)
            })
            .collect::<Result<Vec<_>>>()?;
        self.write_entities(&rec, &items)
    }

    fn write_entities(&self, rec: &NamespaceRecord, items: &[EntityItem]) -> Result<Vec<Entity>> {
        let mut estimate = 0;
        for it in items {
            let props = serde_json::to_vec(&it.properties)?.len();
            estimate += rows::entity_estimate(it.name.len(), it.entity_type.len(), props);
        }
        let now = self.inner.options.clock.now();
        self.write_graph(rec, estimate, |t, w, stats| {
            let mut out = Vec::with_capacity(items.len());
            let (mut delta, mut topology) = (0, false);
            for it in items {
                let spec = rows::EntitySpec {
                    name: &it.name,
                    entity_type: &it.entity_type,
                    properties: it.properties.clone(),
                    field: &it.field,
                    id: it.id,
                };
                let up = rows::upsert_entity(t, w, rec.id, spec, now)?;
                if up.created {
                    stats.entity_count += 1;
                    topology = true;
                }
                delta += up.delta;
                out.push(up.entity);
            }
            Ok(Change { out, delta, topology })
        })
    }

    /// Adds a relation: see the module docs for how `source` and `target` resolve.
    pub fn add_relation(&self, req: AddRelation) -> Result<Relation> {
        let rec = self.graph_namespace(&req.namespace, NamespaceAction::Write)?;
        let mut item = prepare_relation(req, "")?;
        if let Some(ids) = &self.graph_ids {
            item.id = GraphIds::parse(ids.relation.as_ref(), "relation")?;
            item.end_ids = [
                GraphIds::parse(ids.source.as_ref(), "source")?,
                GraphIds::parse(ids.target.as_ref(), "target")?,
            ];
        }
        let mut out = self.write_relations(&rec, &[item])?;
        out.pop().ok_or_else(|| Error::Internal("add_relation wrote nothing".into()))
    }

    /// Adds many relations in one transaction: all of them or none. Each item's
    /// `namespace` must be empty or equal to `namespace`; names created by an earlier item
    /// resolve in later ones. Returns them in order.
    pub fn add_relations(
        &self,
        namespace: &str,
        relations: Vec<AddRelation>,
    ) -> Result<Vec<Relation>> {
        let rec = self.graph_namespace(namespace, NamespaceAction::Write)?;
        validate_batch(relations.len(), "relations")?;
        let items = relations
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let prefix = format!("relations[{i}]");
                batch_namespace(&r.namespace, namespace, &prefix)?;
                prepare_relation(r, &prefix)
            })
            .collect::<Result<Vec<_>>>()?;
        self.write_relations(&rec, &items)
    }

    fn write_relations(
        &self,
        rec: &NamespaceRecord,
        items: &[RelationItem],
    ) -> Result<Vec<Relation>> {
        let mut estimate = 0;
        for it in items {
            let props = serde_json::to_vec(&it.properties)?.len();
            let mut names_len = 0;
            for end in [&it.source, &it.target] {
                if rows::parse_uid(end).is_some() {
                    names_len += MAX_NAME_BYTES; // an id: its entity's name is not known yet
                } else {
                    names_len += end.len();
                    estimate += rows::entity_estimate(end.len(), DEFAULT_ENTITY_TYPE.len(), 2);
                }
            }
            estimate += rows::relation_estimate(it.relation_type.len(), props, names_len);
        }
        let now = self.inner.options.clock.now();
        self.write_graph(rec, estimate, |t, w, stats| {
            let mut out = Vec::with_capacity(items.len());
            let mut delta = 0;
            for it in items {
                if let Some(id) = &it.id {
                    if rows::relation_exists(t, w, rec.id, id)? {
                        continue;
                    }
                }
                let mut ends = Vec::with_capacity(2);
                let sides = [(&it.source, "source"), (&it.target, "target")];
                for (side, (reference, name)) in sides.into_iter().enumerate() {
                    let field = item_field(&it.prefix, name);
                    let mut reference = reference;
                    let mut found = rows::resolve(t, w, rec.id, &field, reference, None)?;
                    if let (Resolved::Missing { looked_like_id: true }, Some(by_name)) =
                        (&found, &it.fallback_names[side])
                    {
                        // An import's end: its exported id is not here, its name may be.
                        reference = by_name;
                        found = rows::resolve(t, w, rec.id, &field, reference, None)?;
                    }
                    let entity = match found {
                        Resolved::Found(id) => rows::read_entity(t, w, rec.id, &id)?
                            .ok_or_else(|| Error::Internal("resolved entity has no row".into()))?,
                        Resolved::Missing { looked_like_id: true } => {
                            return Err(Error::not_found("entity", reference.as_str()))
                        }
                        Resolved::Missing { looked_like_id: false } => {
                            validate_name(reference, &field)?;
                            let spec = rows::EntitySpec {
                                name: reference,
                                entity_type: DEFAULT_ENTITY_TYPE,
                                properties: Map::new(),
                                field: &field,
                                id: it.end_ids[side],
                            };
                            let up = rows::upsert_entity(t, w, rec.id, spec, now)?;
                            stats.entity_count += 1;
                            delta += up.delta;
                            up.entity
                        }
                    };
                    ends.push(entity);
                }
                let spec = rows::RelationSpec {
                    relation_type: &it.relation_type,
                    weight: it.weight,
                    properties: it.properties.clone(),
                    id: it.id,
                };
                let (relation, charge) =
                    rows::insert_relation(t, w, rec.id, (&ends[0], &ends[1]), spec, now)?;
                stats.relation_count += 1;
                delta += charge as i64;
                out.push(relation);
            }
            Ok(Change { out, delta, topology: true })
        })
    }

    /// Upserts entities keeping their ids when they are created, in one transaction (all or
    /// none); an entity already there by name and type keeps its own id, and an id that names
    /// another entity here is not reused (the entity gets a new one). Returns them in order.
    pub(crate) fn import_entities(
        &self,
        namespace: &str,
        entities: Vec<(Option<String>, AddEntity)>,
        field: impl Fn(usize) -> String,
    ) -> Result<Vec<Entity>> {
        let rec = self.graph_namespace(namespace, NamespaceAction::Write)?;
        validate_batch(entities.len(), "entities")?;
        let items = entities
            .into_iter()
            .enumerate()
            .map(|(i, (id, e))| {
                let prefix = field(i);
                let mut item = prepare_entity(e, &prefix)?;
                item.id = id.as_deref().and_then(rows::parse_uid);
                Ok(item)
            })
            .collect::<Result<Vec<_>>>()?;
        self.write_entities(&rec, &items)
    }

    /// Adds relations keeping their ids, in one transaction (all or none); a relation whose
    /// id is there already is left as it is, so an import can run again. Each end is the
    /// entity of its exported id when the namespace has it, else the entity of its name
    /// (created with the exported id when missing). Returns those added.
    pub(crate) fn import_relations(
        &self,
        namespace: &str,
        relations: Vec<ImportedRelation>,
        field: impl Fn(usize) -> String,
    ) -> Result<Vec<Relation>> {
        let rec = self.graph_namespace(namespace, NamespaceAction::Write)?;
        let items = relations
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let prefix = field(i);
                let uid = rows::parse_uid(&r.id)
                    .ok_or_else(|| Error::invalid(format!("{prefix}.id"), "must be a UUID"))?;
                let mut item = prepare_relation(r.relation, &prefix)?;
                item.id = Some(uid);
                item.end_ids = [rows::parse_uid(&item.source), rows::parse_uid(&item.target)];
                item.fallback_names = r.names;
                Ok(item)
            })
            .collect::<Result<Vec<_>>>()?;
        self.write_relations(&rec, &items)
    }

    /// Up to `limit` of a namespace's entities (or relations) in id order, after `after`.
    pub(crate) fn graph_rows(
        &self,
        namespace: &str,
        relations: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Value>> {
        let rec = self.graph_namespace(namespace, NamespaceAction::Read)?;
        let after = match after {
            Some(a) => {
                Some(rows::parse_uid(a).ok_or_else(|| Error::invalid("cursor", "malformed"))?)
            }
            None => None,
        };
        let env = self.inner.data_env_of(&rec)?;
        env.read(|r, t| {
            let db = if relations { &t.relations } else { &t.entities };
            rows::rows_after(db, r, rec.id, after.as_ref(), limit)
        })
    }

    /// One entity by id or name (of `entity_type`, when given); `not_found` if none.
    pub fn get_entity(
        &self,
        namespace: &str,
        entity: &str,
        entity_type: Option<&str>,
    ) -> Result<Entity> {
        let rec = self.graph_namespace(namespace, NamespaceAction::Read)?;
        if let Some(ty) = entity_type {
            validate_type(ty, "type")?;
        }
        let env = self.inner.data_env_of(&rec)?;
        env.read(|r, t| match rows::resolve(t, r, rec.id, "entity", entity, entity_type)? {
            Resolved::Found(id) => rows::read_entity(t, r, rec.id, &id)?
                .ok_or_else(|| Error::not_found("entity", entity)),
            Resolved::Missing { .. } => Err(Error::not_found("entity", entity)),
        })
    }

    /// Entities within `depth` hops (either direction) of an entity, the start entity first,
    /// and the relations traversed.
    pub fn neighbors(&self, req: Neighbors) -> Result<GraphView> {
        self.view(req, false)
    }

    /// The induced subgraph around an entity: the entities within `depth` hops and every
    /// relation among them.
    pub fn subgraph(&self, req: Neighbors) -> Result<GraphView> {
        self.view(req, true)
    }

    fn view(&self, req: Neighbors, induced: bool) -> Result<GraphView> {
        let rec = self.graph_namespace(&req.namespace, NamespaceAction::Read)?;
        let depth = req.depth.unwrap_or(1);
        if depth == 0 || depth > MAX_DEPTH {
            return Err(Error::invalid("depth", format!("must be between 1 and {MAX_DEPTH}")));
        }
        if let Some(ty) = &req.relation_type {
            validate_type(ty, "type")?;
        }
        let env = self.inner.data_env_of(&rec)?;
        let start = resolve_existing(&rec, &env, "entity", &req.entity)?;
        let graph = load_graph(&self.inner, &rec, &env)?;
        let reach = graph.reach(&start, depth, req.relation_type.as_deref(), induced);
        let view = env.read(|r, t| {
            let mut entities = Vec::with_capacity(reach.entities.len());
            for (id, _) in &reach.entities {
                entities.extend(rows::read_entity(t, r, rec.id, id)?);
            }
            let mut relations = Vec::with_capacity(reach.relations.len());
            for id in &reach.relations {
                relations.extend(rows::read_relation(t, r, rec.id, id)?);
            }
            Ok(GraphView { entities, relations })
        })?;
        if view.entities.first().and_then(|e| rows::parse_uid(&e.id)) != Some(start) {
            return Err(Error::not_found("entity", req.entity)); // deleted meanwhile
        }
        Ok(view)
    }

    /// The lowest-weight path between two entities, relations usable in either direction
    /// (`not_found` if none).
    pub fn shortest_path(&self, namespace: &str, from: &str, to: &str) -> Result<GraphPath> {
        let rec = self.graph_namespace(namespace, NamespaceAction::Read)?;
        let env = self.inner.data_env_of(&rec)?;
        let a = resolve_existing(&rec, &env, "from", from)?;
        let b = resolve_existing(&rec, &env, "to", to)?;
        let graph = load_graph(&self.inner, &rec, &env)?;
        let no_path = || Error::not_found("path", format!("{from} -> {to}"));
        let path = graph.shortest_path(&a, &b).ok_or_else(no_path)?;
        env.read(|r, t| {
            let mut entities = Vec::with_capacity(path.entities.len());
            for id in &path.entities {
                entities.push(rows::read_entity(t, r, rec.id, id)?.ok_or_else(no_path)?);
            }
            let mut relations = Vec::with_capacity(path.relations.len());
            for id in &path.relations {
                relations.push(rows::read_relation(t, r, rec.id, id)?.ok_or_else(no_path)?);
            }
            Ok(GraphPath { entities, relations, total_weight: path.total_weight })
        })
    }

    /// Deletes an entity (by id or name) and every relation touching it.
    ///
    /// With `entity_type`, only an entity of that type is deleted (`not_found` if the one named
    /// has another type); without it, a name several types share is `invalid_argument`
    /// listing them.
    pub fn delete_entity(
        &self,
        namespace: &str,
        entity: &str,
        entity_type: Option<&str>,
    ) -> Result<Entity> {
        let rec = self.graph_namespace(namespace, NamespaceAction::Write)?;
        if let Some(ty) = entity_type {
            validate_type(ty, "type")?;
        }
        self.write_graph(&rec, 0, |t, w, stats| {
            let id = match rows::resolve(t, w, rec.id, "entity", entity, entity_type)? {
                Resolved::Found(id) => id,
                Resolved::Missing { .. } => return Err(Error::not_found("entity", entity)),
            };
            let removed = rows::remove_entity(t, w, rec.id, &id)?
                .ok_or_else(|| Error::not_found("entity", entity))?;
            stats.entity_count = stats.entity_count.saturating_sub(1);
            stats.relation_count = stats.relation_count.saturating_sub(removed.relations);
            Ok(Change { out: removed.entity, delta: -(removed.freed as i64), topology: true })
        })
    }

    /// Deletes a relation by id.
    pub fn delete_relation(&self, namespace: &str, relation_id: &str) -> Result<Relation> {
        let rec = self.graph_namespace(namespace, NamespaceAction::Write)?;
        let id = rows::parse_uid(relation_id)
            .ok_or_else(|| Error::not_found("relation", relation_id))?;
        self.write_graph(&rec, 0, |t, w, stats| {
            let (relation, charge) = rows::remove_relation(t, w, rec.id, &id)?
                .ok_or_else(|| Error::not_found("relation", relation_id))?;
            stats.relation_count = stats.relation_count.saturating_sub(1);
            Ok(Change { out: relation, delta: -(charge as i64), topology: true })
        })
    }
}

/// The entity a reference (id or name) names; `not_found` if none.
fn resolve_existing(
    rec: &NamespaceRecord,
    env: &Store<DataTables>,
    field: &str,
    reference: &str,
) -> Result<Uid> {
    env.read(|r, t| match rows::resolve(t, r, rec.id, field, reference, None)? {
        Resolved::Found(id) => Ok(id),
        Resolved::Missing { .. } => Err(Error::not_found("entity", reference)),
    })
}

fn prepare_entity(req: AddEntity, prefix: &str) -> Result<EntityItem> {
    validate_name(&req.name, &item_field(prefix, "name"))?;
    let entity_type = req.entity_type.unwrap_or_else(|| DEFAULT_ENTITY_TYPE.to_owned());
    validate_type(&entity_type, &item_field(prefix, "type"))?;
    let field = item_field(prefix, "properties");
    validate_properties(req.properties.as_ref(), &field)?;
    Ok(EntityItem {
        id: None,
        name: req.name,
        entity_type,
        properties: req.properties.unwrap_or_default(),
        field,
    })
}

fn prepare_relation(req: AddRelation, prefix: &str) -> Result<RelationItem> {
    validate_reference(&req.source, &item_field(prefix, "source"))?;
    validate_reference(&req.target, &item_field(prefix, "target"))?;
    validate_type(&req.relation_type, &item_field(prefix, "type"))?;
    let weight = req.weight.unwrap_or(1.0);
    if !weight.is_finite() || weight < 0.0 {
        return Err(Error::invalid(item_field(prefix, "weight"), "must be a finite number >= 0"));
    }
    validate_properties(req.properties.as_ref(), &item_field(prefix, "properties"))?;
    Ok(RelationItem {
        id: None,
        source: req.source,
        target: req.target,
        end_ids: [None, None],
        fallback_names: [None, None],
        relation_type: req.relation_type,
        weight,
        properties: req.properties.unwrap_or_default(),
        prefix: prefix.to_owned(),
    })
}
