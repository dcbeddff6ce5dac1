//! Links of memories to the entities they name (table `entity_memories`: ns ‖ lowercase name ‖
//! 0 ‖ memory uuid), by name and ignoring case, so a link outlives the entity it names.

use heed3::RwTxn;

use super::rows::{uid_of, Uid};
use crate::datastore::{ns_key, DataTables, NamespaceId};
use crate::error::Result;
use crate::storage::RoTxn;

/// ns ‖ lowercase name ‖ 0: the memories that mention a name.
pub(super) fn memory_link_prefix(ns: NamespaceId, entity: &str) -> Vec<u8> {
    let mut local = Vec::with_capacity(entity.len() + 17);
    local.extend_from_slice(entity.to_lowercase().as_bytes());
    local.push(0);
    ns_key(ns, &local)
}

fn memory_link_key(ns: NamespaceId, entity: &str, memory: &Uid) -> Vec<u8> {
    let mut k = memory_link_prefix(ns, entity);
    k.extend_from_slice(memory);
    k
}

/// Ids of the memories that mention `entity` (ignoring case).
pub(crate) fn memories_mentioning(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    entity: &str,
) -> Result<Vec<Uid>> {
    let prefix = memory_link_prefix(ns, entity);
    let mut out = Vec::new();
    for row in t.entity_memories.prefix_iter(r, &prefix)? {
        let (k, _) = row?;
        if k.len() == prefix.len() + 16 {
            out.push(uid_of(&k[prefix.len()..])?);
        }
    }
    Ok(out)
}

/// Records that a memory mentions an entity (by name, ignoring case).
pub(crate) fn link_memory(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    entity: &str,
    memory: &Uid,
) -> Result<()> {
    t.entity_memories.put(w, &memory_link_key(ns, entity, memory), &[])?;
    Ok(())
}

/// Removes a memory's mention of an entity.
pub(crate) fn unlink_memory(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    entity: &str,
    memory: &Uid,
) -> Result<()> {
    t.entity_memories.delete(w, &memory_link_key(ns, entity, memory))?;
    Ok(())
}
