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
//!
//! [`Handle::add_entities`]: crate::Handle::add_entities
//! [`Handle::add_relations`]: crate::Handle::add_relations

pub(crate) mod expand;
pub(crate) mod links;
pub(crate) mod rows;
pub(crate) mod traverse;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::datastore::DataTables;
use crate::error::{Error, Result};
use crate::records::NamespaceRecord;
use crate::store::Store;
use rows::{Resolved, Uid};
use traverse::NamespaceGraph;

pub(crate) use expand::expand_hits;
pub(crate) use links::{link_memory, unlink_memory};
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
///
/// [`Handle::with_graph_ids`]: crate::Handle::with_graph_ids
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

    pub(crate) fn parse(id: Option<&String>, field: &str) -> Result<Option<rows::Uid>> {
        id.map(|id| {
            rows::parse_uid(id)
                .ok_or_else(|| Error::invalid(format!("graph_ids.{field}"), "must be a UUID"))
        })
        .transpose()
    }
}

/// Arguments of [`Handle::add_entity`] (upsert by name and type).
///
/// [`Handle::add_entity`]: crate::Handle::add_entity
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
///
/// [`Handle::add_relation`]: crate::Handle::add_relation
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
///
/// [`Handle::neighbors`]: crate::Handle::neighbors
/// [`Handle::subgraph`]: crate::Handle::subgraph
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

pub(crate) fn validate_name(name: &str, field: &str) -> Result<()> {
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

pub(crate) fn validate_type(ty: &str, field: &str) -> Result<()> {
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

pub(crate) fn validate_batch(len: usize, field: &str) -> Result<()> {
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
pub(crate) fn item_field(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

pub(crate) fn batch_namespace(item_ns: &str, namespace: &str, prefix: &str) -> Result<()> {
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
pub(crate) struct EntityItem {
    /// The id it gets if it is created (imports, [`GraphIds`]); a new UUID v7 when `None`.
    pub(crate) id: Option<rows::Uid>,
    pub(crate) name: String,
    pub(crate) entity_type: String,
    pub(crate) properties: Map<String, Value>,
    pub(crate) field: String,
}

/// A validated relation to add.
pub(crate) struct RelationItem {
    /// Kept by imports; skipped when a relation with this id is there already.
    pub(crate) id: Option<rows::Uid>,
    pub(crate) source: String,
    pub(crate) target: String,
    /// The ids `source` and `target` get if they are created by name ([`GraphIds`]).
    pub(crate) end_ids: [Option<rows::Uid>; 2],
    /// Names to look `source` and `target` up by when they are ids not in the namespace
    /// (an import's relation: its ends' exported ids, then their names).
    pub(crate) fallback_names: [Option<String>; 2],
    pub(crate) relation_type: String,
    pub(crate) weight: f64,
    pub(crate) properties: Map<String, Value>,
    pub(crate) prefix: String,
}

/// The traversal graph of a namespace, from the cache or built from its rows.
pub(crate) fn load_graph(
    graphs: &GraphCache,
    rec: &NamespaceRecord,
    env: &Store<DataTables>,
) -> Result<Arc<NamespaceGraph>> {
    graphs.get_or_build(rec.id, || env.read(|r, t| traverse::load_topology(t, r, rec.id)))
}

/// What a graph write changed.
pub(crate) struct Change<R> {
    pub(crate) out: R,
    /// Change of charged bytes.
    pub(crate) delta: i64,
    /// Whether entities or relations were added or removed (the cached topology is stale).
    pub(crate) topology: bool,
}

/// The entity a reference (id or name) names; `not_found` if none.
pub(crate) fn resolve_existing(
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

pub(crate) fn prepare_entity(req: AddEntity, prefix: &str) -> Result<EntityItem> {
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

pub(crate) fn prepare_relation(req: AddRelation, prefix: &str) -> Result<RelationItem> {
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
