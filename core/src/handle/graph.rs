//! Knowledge-graph operations: entities, relations, neighbours, paths and views; rows and
//! traversal are [`crate::graph`]'s.

use serde_json::{Map, Value};

use crate::auth::NamespaceAction;
use crate::datastore::{DataTables, NamespaceStats};
use crate::error::{Error, Result};
use crate::graph::rows::{self, Resolved};
use crate::graph::{
    batch_namespace, item_field, load_graph, prepare_entity, prepare_relation, resolve_existing,
    validate_batch, validate_name, validate_type, AddEntity, AddRelation, Change, Entity,
    EntityItem, GraphIds, GraphPath, GraphView, ImportedRelation, Neighbors, Relation,
    RelationItem, DEFAULT_ENTITY_TYPE, MAX_DEPTH, MAX_NAME_BYTES,
};
use crate::handle::Handle;
use crate::namespace::NamespaceRecord;

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
            Some(t) => self.state.catalog.read(|r, c| crate::tenant::quota_chain(c, r, t))?,
            None => Vec::new(),
        };
        let reservation =
            if estimate > 0 { Some(self.state.usage.reserve(&chain, estimate)?) } else { None };
        let env = self.state.data_env_of(rec)?;
        let (change, applied) = env.write_ns(rec.id, |w, t| {
            if self.state.is_dead(rec.id) {
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
            None if applied > 0 => self.state.usage.adjust(&chain, applied),
            None => {}
        }
        if applied < 0 {
            self.state.usage.adjust(&chain, applied);
        }
        if change.topology {
            self.state.graphs.invalidate(rec.id);
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
        let now = self.state.options.clock.now();
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
        let now = self.state.options.clock.now();
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
        let env = self.state.data_env_of(&rec)?;
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
        let env = self.state.data_env_of(&rec)?;
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
        let env = self.state.data_env_of(&rec)?;
        let start = resolve_existing(&rec, &env, "entity", &req.entity)?;
        let graph = load_graph(&self.state.graphs, &rec, &env)?;
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
        let env = self.state.data_env_of(&rec)?;
        let a = resolve_existing(&rec, &env, "from", from)?;
        let b = resolve_existing(&rec, &env, "to", to)?;
        let graph = load_graph(&self.state.graphs, &rec, &env)?;
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
