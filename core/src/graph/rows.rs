//! Graph rows: key layouts, and reads and writes inside a caller's transaction.
//!
//! Rows are the truth; the traversal graph in [`super::traverse`] is rebuilt from them. The
//! links of memories to the entities they name are [`super::links`].
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `entities` | ns ‖ entity uuid | [`Entity`] JSON |
//! | `entity_names` | ns ‖ h(lowercase name) ‖ name ‖ 0 ‖ type | entity uuid |
//! | `relations` | ns ‖ relation uuid | [`Relation`] JSON |
//! | `entity_relations` | ns ‖ entity uuid ‖ relation uuid | side ‖ other uuid ‖ weight ‖ type — under both endpoints |
//! | `entity_memories` | ns ‖ lowercase name ‖ 0 ‖ memory uuid | () |
//!
//! `h` is the first 8 bytes of SHA-256: it keeps the name key within LMDB's key limit while
//! grouping every spelling of one name (case-insensitive lookups scan one prefix). Names
//! never contain NUL and types are `[A-Za-z0-9_.-]`, so `name ‖ 0 ‖ type` splits uniquely.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use heed3::RwTxn;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Entity, Relation, MAX_PROPERTIES_BYTES};
use crate::datastore::{ns_key, DataTables, NamespaceId};
use crate::error::{Error, Result};
use crate::storage::{RoTxn, Table};

/// A 16-byte UUID as stored in keys.
pub(crate) type Uid = [u8; 16];

/// Bytes charged per entity beyond its JSON row (name index row and keys).
const ENTITY_OVERHEAD: u64 = 64;
/// Bytes charged per relation beyond its JSON row (two adjacency rows and keys).
const RELATION_OVERHEAD: u64 = 96;

fn name_hash(name: &str) -> [u8; 8] {
    let digest = Sha256::digest(name.to_lowercase().as_bytes());
    let mut h = [0; 8];
    h.copy_from_slice(&digest[..8]);
    h
}

/// ns ‖ h(name): every entity whose name equals `name` ignoring case (and rare collisions).
fn folded_prefix(ns: NamespaceId, name: &str) -> Vec<u8> {
    ns_key(ns, &name_hash(name))
}

/// ns ‖ h(name) ‖ name ‖ 0: every entity named exactly `name`.
fn exact_prefix(ns: NamespaceId, name: &str) -> Vec<u8> {
    let mut k = folded_prefix(ns, name);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

fn name_key(ns: NamespaceId, name: &str, entity_type: &str) -> Vec<u8> {
    let mut k = exact_prefix(ns, name);
    k.extend_from_slice(entity_type.as_bytes());
    k
}

fn adjacency_key(ns: NamespaceId, entity: &Uid, relation: &Uid) -> Vec<u8> {
    let mut local = [0u8; 32];
    local[..16].copy_from_slice(entity);
    local[16..].copy_from_slice(relation);
    ns_key(ns, &local)
}

/// Adjacency value flag: the row's entity is the relation's source (a self loop has only this row).
pub(super) const SOURCE_SIDE: u8 = 0;
/// Adjacency value flag: the row's entity is the relation's target.
const TARGET_SIDE: u8 = 1;

/// side ‖ other end's uuid ‖ weight (f64 LE) ‖ relation type: enough to build the topology.
fn adjacency_value(side: u8, other: &Uid, weight: f64, relation_type: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(25 + relation_type.len());
    v.push(side);
    v.extend_from_slice(other);
    v.extend_from_slice(&weight.to_le_bytes());
    v.extend_from_slice(relation_type.as_bytes());
    v
}

pub(super) fn uid_of(bytes: &[u8]) -> Result<Uid> {
    <Uid>::try_from(bytes).map_err(|_| Error::Internal("corrupt graph row: bad uuid".into()))
}

/// Parses a UUID string.
pub(crate) fn parse_uid(s: &str) -> Option<Uid> {
    uuid::Uuid::parse_str(s).ok().map(|u| *u.as_bytes())
}

fn uid_string(u: &Uid) -> String {
    uuid::Uuid::from_bytes(*u).to_string()
}

/// Storage charged for an entity whose JSON row is `row_len` bytes.
fn entity_charge(row_len: usize, e: &Entity) -> u64 {
    row_len as u64 + e.name.len() as u64 + e.entity_type.len() as u64 + ENTITY_OVERHEAD
}

/// Storage charged for a relation whose JSON row is `row_len` bytes.
fn relation_charge(row_len: usize) -> u64 {
    row_len as u64 + RELATION_OVERHEAD
}

/// The bytes a new entity of this shape is charged, for the quota reservation (the exact
/// figure replaces it after the write).
pub(crate) fn entity_estimate(name_len: usize, type_len: usize, props_len: usize) -> u64 {
    // JSON row: uuid, two timestamps, field names and quotes (~160 bytes), name and type;
    // then the name index row.
    (props_len + 2 * (name_len + type_len) + 160) as u64 + ENTITY_OVERHEAD
}

/// The bytes a new relation is charged, for the quota reservation; `names_len` is the
/// length of both endpoint names (the exact figure replaces it after the write).
pub(crate) fn relation_estimate(type_len: usize, props_len: usize, names_len: usize) -> u64 {
    // JSON row: three uuids, a timestamp, the weight, field names and quotes (~260 bytes).
    (props_len + type_len + names_len + 260) as u64 + RELATION_OVERHEAD
}

/// One entity by id.
pub(crate) fn read_entity(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    id: &Uid,
) -> Result<Option<Entity>> {
    Ok(match t.entities.get(r, &ns_key(ns, id))? {
        Some(bytes) => Some(serde_json::from_slice(bytes)?),
        None => None,
    })
}

/// One relation by id.
pub(crate) fn read_relation(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    id: &Uid,
) -> Result<Option<Relation>> {
    Ok(match t.relations.get(r, &ns_key(ns, id))? {
        Some(bytes) => Some(serde_json::from_slice(bytes)?),
        None => None,
    })
}

/// Entities named exactly `name`: `(type, id)` pairs.
pub(crate) fn entities_named(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    name: &str,
) -> Result<Vec<(String, Uid)>> {
    let prefix = exact_prefix(ns, name);
    let mut out = Vec::new();
    for row in t.entity_names.prefix_iter(r, &prefix)? {
        let (k, v) = row?;
        let rest = &k[prefix.len()..];
        if rest.contains(&0) {
            continue; // a longer name that happens to continue with NUL: impossible, but be strict
        }
        out.push((String::from_utf8_lossy(rest).into_owned(), uid_of(v)?));
    }
    Ok(out)
}

/// Ids of entities whose name equals `name` ignoring case.
pub(crate) fn entities_named_folded(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    name: &str,
) -> Result<Vec<Uid>> {
    let prefix = folded_prefix(ns, name);
    let folded = name.to_lowercase();
    let mut out = Vec::new();
    for row in t.entity_names.prefix_iter(r, &prefix)? {
        let (k, v) = row?;
        let rest = &k[prefix.len()..];
        let Some(end) = rest.iter().position(|b| *b == 0) else { continue };
        if std::str::from_utf8(&rest[..end]).is_ok_and(|n| n.to_lowercase() == folded) {
            out.push(uid_of(v)?);
        }
    }
    Ok(out)
}

/// How an entity reference (id or name) resolved.
pub(crate) enum Resolved {
    /// This entity.
    Found(Uid),
    /// Nothing matched; `looked_like_id` when the reference parses as a UUID.
    Missing { looked_like_id: bool },
}

/// Resolves an entity reference: an id of this namespace, else an exact name (of
/// `entity_type` when given). Several same-named entities of different types without a
/// type is `invalid_argument` on `field`.
pub(crate) fn resolve(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    field: &str,
    reference: &str,
    entity_type: Option<&str>,
) -> Result<Resolved> {
    let as_id = parse_uid(reference);
    if let Some(id) = as_id {
        if let Some(e) = read_entity(t, r, ns, &id)? {
            if entity_type.is_none_or(|ty| ty == e.entity_type) {
                return Ok(Resolved::Found(id));
            }
        }
    }
    if reference.contains('\0') {
        return Ok(Resolved::Missing { looked_like_id: as_id.is_some() });
    }
    if let Some(ty) = entity_type {
        return Ok(match t.entity_names.get(r, &name_key(ns, reference, ty))? {
            Some(v) => Resolved::Found(uid_of(v)?),
            None => Resolved::Missing { looked_like_id: as_id.is_some() },
        });
    }
    let mut named = entities_named(t, r, ns, reference)?;
    match named.len() {
        0 => Ok(Resolved::Missing { looked_like_id: as_id.is_some() }),
        1 => Ok(Resolved::Found(named.pop().map(|(_, id)| id).unwrap_or_default())),
        _ => {
            let types: Vec<&str> = named.iter().map(|(ty, _)| ty.as_str()).collect();
            Err(Error::invalid(
                field,
                format!("several entities are named {reference:?} (types {}); pass the entity id or a type", types.join(", ")),
            ))
        }
    }
}

/// An entity to create or merge into.
pub(crate) struct EntitySpec<'a> {
    pub name: &'a str,
    pub entity_type: &'a str,
    pub properties: Map<String, Value>,
    /// Wire name of the properties field, for errors.
    pub field: &'a str,
    /// The id it gets if created (unless an entity of the namespace has it already); a new
    /// UUID v7 when `None`.
    pub id: Option<Uid>,
}

/// A relation to add between two resolved entities.
pub(crate) struct RelationSpec<'a> {
    pub relation_type: &'a str,
    pub weight: f64,
    pub properties: Map<String, Value>,
    /// The relation's id (imports keep the exported one); a new UUID v7 when `None`.
    pub id: Option<Uid>,
}

/// What an upsert did.
pub(crate) struct Upserted {
    pub entity: Entity,
    pub created: bool,
    /// Change of the namespace's charged bytes.
    pub delta: i64,
}

/// Creates the entity `(name, type)` or merges `properties` into the existing one.
pub(crate) fn upsert_entity(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    spec: EntitySpec<'_>,
    now: DateTime<Utc>,
) -> Result<Upserted> {
    let EntitySpec { name, entity_type, properties, field, id } = spec;
    let nkey = name_key(ns, name, entity_type);
    if let Some(id) = t.entity_names.get(w, &nkey)? {
        let id = uid_of(id)?;
        let key = ns_key(ns, &id);
        let old = t
            .entities
            .get(w, &key)?
            .ok_or_else(|| Error::Internal("entity name without a row".into()))?;
        let old_len = old.len();
        let mut entity: Entity = serde_json::from_slice(old)?;
        if properties.is_empty() {
            return Ok(Upserted { entity, created: false, delta: 0 });
        }
        entity.properties.extend(properties);
        if serde_json::to_vec(&entity.properties)?.len() > MAX_PROPERTIES_BYTES {
            return Err(Error::invalid(
                field,
                format!("merged properties would exceed {MAX_PROPERTIES_BYTES} bytes of JSON"),
            ));
        }
        entity.updated_at = now;
        let row = serde_json::to_vec(&entity)?;
        t.entities.put(w, &key, &row)?;
        let delta = row.len() as i64 - old_len as i64;
        return Ok(Upserted { entity, created: false, delta });
    }
    let id = match id {
        Some(id) if t.entities.get(w, &ns_key(ns, &id))?.is_none() => id,
        _ => *uuid::Uuid::now_v7().as_bytes(),
    };
    let entity = Entity {
        id: uid_string(&id),
        name: name.to_owned(),
        entity_type: entity_type.to_owned(),
        properties,
        created_at: now,
        updated_at: now,
    };
    let row = serde_json::to_vec(&entity)?;
    t.entities.put(w, &ns_key(ns, &id), &row)?;
    t.entity_names.put(w, &nkey, &id)?;
    let delta = entity_charge(row.len(), &entity) as i64;
    Ok(Upserted { entity, created: true, delta })
}

/// Writes a new relation between two existing entities; returns it and its charge.
/// Up to `limit` rows of one of a namespace's id-keyed graph tables (`entities` or
/// `relations`), in id order, after the id `after`.
pub(crate) fn rows_after<T: serde::de::DeserializeOwned>(
    db: &Table<heed3::types::Bytes, heed3::types::Bytes>,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    after: Option<&Uid>,
    limit: usize,
) -> Result<Vec<T>> {
    let start = ns_key(ns, after.map_or(&[][..], |u| &u[..]));
    let stop = (ns + 1).to_be_bytes();
    let lower =
        if after.is_some() { Bound::Excluded(&start[..]) } else { Bound::Included(&start[..]) };
    let bounds = (lower, Bound::Excluded(&stop[..]));
    let mut out = Vec::new();
    for e in db.range(r, &bounds)?.take(limit) {
        let (_, v) = e?;
        out.push(serde_json::from_slice(v)?);
    }
    Ok(out)
}

/// Whether a relation with this id exists in the namespace.
pub(crate) fn relation_exists(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    id: &Uid,
) -> Result<bool> {
    Ok(t.relations.get(r, &ns_key(ns, id))?.is_some())
}

pub(crate) fn insert_relation(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    (source, target): (&Entity, &Entity),
    spec: RelationSpec<'_>,
    now: DateTime<Utc>,
) -> Result<(Relation, u64)> {
    let RelationSpec { relation_type, weight, properties, id } = spec;
    let id = id.unwrap_or_else(|| *uuid::Uuid::now_v7().as_bytes());
    let relation = Relation {
        id: uid_string(&id),
        source: source.id.clone(),
        target: target.id.clone(),
        source_name: source.name.clone(),
        target_name: target.name.clone(),
        relation_type: relation_type.to_owned(),
        weight,
        properties,
        created_at: now,
    };
    let row = serde_json::to_vec(&relation)?;
    t.relations.put(w, &ns_key(ns, &id), &row)?;
    let bad = || Error::Internal("entity with a bad id".into());
    let (s, d) = (parse_uid(&source.id).ok_or_else(bad)?, parse_uid(&target.id).ok_or_else(bad)?);
    t.entity_relations.put(
        w,
        &adjacency_key(ns, &s, &id),
        &adjacency_value(SOURCE_SIDE, &d, weight, relation_type),
    )?;
    if s != d {
        t.entity_relations.put(
            w,
            &adjacency_key(ns, &d, &id),
            &adjacency_value(TARGET_SIDE, &s, weight, relation_type),
        )?;
    }
    Ok((relation, relation_charge(row.len())))
}

/// Deletes a relation's row and adjacency rows; returns it and the bytes it was charged.
pub(crate) fn remove_relation(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    id: &Uid,
) -> Result<Option<(Relation, u64)>> {
    let key = ns_key(ns, id);
    let Some(row) = t.relations.get(w, &key)? else { return Ok(None) };
    let charge = relation_charge(row.len());
    let relation: Relation = serde_json::from_slice(row)?;
    t.relations.delete(w, &key)?;
    for end in [&relation.source, &relation.target] {
        if let Some(end) = parse_uid(end) {
            t.entity_relations.delete(w, &adjacency_key(ns, &end, id))?;
        }
    }
    Ok(Some((relation, charge)))
}

/// What deleting an entity removed.
pub(crate) struct RemovedEntity {
    pub entity: Entity,
    pub relations: u64,
    pub freed: u64,
}

/// Deletes an entity, every relation touching it, and — when no other entity keeps the
/// name (ignoring case) — the links of memories that mention the name.
pub(crate) fn remove_entity(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    id: &Uid,
) -> Result<Option<RemovedEntity>> {
    let key = ns_key(ns, id);
    let Some(row) = t.entities.get(w, &key)? else { return Ok(None) };
    let row_len = row.len();
    let entity: Entity = serde_json::from_slice(row)?;
    let mut freed = entity_charge(row_len, &entity);
    t.entities.delete(w, &key)?;
    t.entity_names.delete(w, &name_key(ns, &entity.name, &entity.entity_type))?;

    let prefix = ns_key(ns, id);
    let mut touching = Vec::new();
    for row in t.entity_relations.prefix_iter(w, &prefix)? {
        let (k, _) = row?;
        touching.push(uid_of(&k[prefix.len()..])?);
    }
    let mut relations = 0;
    for rid in &touching {
        if let Some((_, charge)) = remove_relation(t, w, ns, rid)? {
            freed += charge;
            relations += 1;
        }
    }

    if entities_named_folded(t, w, ns, &entity.name)?.is_empty() {
        let prefix = super::links::memory_link_prefix(ns, &entity.name);
        let mut iter = t.entity_memories.prefix_iter_mut(w, &prefix)?;
        while let Some((k, _)) = iter.next().transpose()? {
            if k.len() == prefix.len() + 16 {
                // SAFETY: no reference into the database is kept across this deletion.
                unsafe { iter.del_current()? };
            }
        }
    }
    Ok(Some(RemovedEntity { entity, relations, freed }))
}
