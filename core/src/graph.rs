//! Knowledge graph per namespace (rows in the namespace's data environment; traversal with
//! petgraph over a graph built from rows and cached per namespace).

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::datastore::{ns_key, DataTables, NamespaceId};
use crate::engine::EngineInner;
use crate::error::Result;
use crate::memory::RecallHit;
use crate::namespace::NamespaceRecord;

/// Per-namespace traversal graphs, rebuilt from rows after a write.
#[derive(Default)]
pub(crate) struct GraphCache {
    entries: RwLock<HashMap<NamespaceId, u64>>,
}

impl GraphCache {
    /// The namespace is gone (or changed).
    pub(crate) fn forget(&self, ns: NamespaceId) {
        self.entries.write().remove(&ns);
    }
}

fn entity_link_key(ns: NamespaceId, entity: &str, memory: &[u8; 16]) -> Vec<u8> {
    let mut local = Vec::with_capacity(entity.len() + 17);
    local.extend_from_slice(entity.to_lowercase().as_bytes());
    local.push(0);
    local.extend_from_slice(memory);
    ns_key(ns, &local)
}

/// Records that a memory mentions an entity (by name).
pub(crate) fn link_memory(t: &DataTables, w: &mut heed::RwTxn<'_>, ns: NamespaceId, entity: &str, memory: &[u8; 16]) -> Result<()> {
    t.entity_memories.put(w, &entity_link_key(ns, entity, memory), &[])?;
    Ok(())
}

/// Removes a memory's mention of an entity.
pub(crate) fn unlink_memory(t: &DataTables, w: &mut heed::RwTxn<'_>, ns: NamespaceId, entity: &str, memory: &[u8; 16]) -> Result<()> {
    t.entity_memories.delete(w, &entity_link_key(ns, entity, memory))?;
    Ok(())
}

/// Adds memories linked through the graph to the entities the hits mention.
pub(crate) fn expand_hits(
    _inner: &EngineInner,
    _rec: &NamespaceRecord,
    hits: Vec<RecallHit>,
    _depth: u32,
    _now: i64,
) -> Result<Vec<RecallHit>> {
    Ok(hits)
}

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::Handle;
use crate::error::Error;

/// A node of a namespace's graph. Unique by `(name, type)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Arguments of [`Handle::add_entity`] (upsert by name and type).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
pub struct GraphView {
    /// Entities (the start entity first).
    pub entities: Vec<Entity>,
    /// Relations between them.
    pub relations: Vec<Relation>,
}

/// A shortest path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphPath {
    /// Entities from `from` to `to`.
    pub entities: Vec<Entity>,
    /// Relations along the path.
    pub relations: Vec<Relation>,
    /// Sum of relation weights.
    pub total_weight: f64,
}

fn not_ready() -> Error {
    Error::Internal("the knowledge graph is not available in this build yet".into())
}

impl Handle {
    /// Creates or updates an entity (by name and type).
    pub fn add_entity(&self, _req: AddEntity) -> Result<Entity> {
        Err(not_ready())
    }

    /// Adds a relation.
    pub fn add_relation(&self, _req: AddRelation) -> Result<Relation> {
        Err(not_ready())
    }

    /// One entity by id or name (optionally of one type).
    pub fn get_entity(&self, _namespace: &str, _entity: &str, _entity_type: Option<&str>) -> Result<Entity> {
        Err(not_ready())
    }

    /// Entities and relations within `depth` hops (either direction) of an entity.
    pub fn neighbors(&self, _req: Neighbors) -> Result<GraphView> {
        Err(not_ready())
    }

    /// The induced subgraph around an entity: every relation among the entities within `depth`.
    pub fn subgraph(&self, _req: Neighbors) -> Result<GraphView> {
        Err(not_ready())
    }

    /// The lowest-weight path from one entity to another (`not_found` if none).
    pub fn shortest_path(&self, _namespace: &str, _from: &str, _to: &str) -> Result<GraphPath> {
        Err(not_ready())
    }

    /// Deletes an entity and its relations.
    pub fn delete_entity(&self, _namespace: &str, _entity: &str) -> Result<Entity> {
        Err(not_ready())
    }

    /// Deletes a relation by id.
    pub fn delete_relation(&self, _namespace: &str, _relation_id: &str) -> Result<Relation> {
        Err(not_ready())
    }
}
