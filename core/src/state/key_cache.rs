//! Key resolutions cached per key id, and the catalog writes that drop the ones they change:
//! a resolution read before a write that changes it is never served after it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::State;
use crate::auth::{self, ParsedKey, Principal};
use crate::catalog::CatalogTables;
use crate::error::{Error, Result};
use crate::keys::Authed;

pub(super) struct CachedKey {
    pub(super) secret_hash: [u8; 32],
    pub(super) authed: Arc<Authed>,
}

/// The cached key resolutions a catalog write can change (see
/// [`State::catalog_write_affecting`]). A write that names too little would let a
/// withdrawn key in, so anything not listed here uses [`Affects::AllKeys`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Affects<'a> {
    /// No key resolution: a new namespace, key or purge job, a policy, the cursor secret.
    NoKeys,
    /// The resolution of this key id (its record revoked, rotated or deleted).
    Key(&'a str),
    /// The resolutions of keys granted this namespace (deleted: their grant is dead).
    Namespace(&'a str),
    /// Every resolution (tenants, members, the admin key).
    AllKeys,
}

impl Affects<'_> {
    fn covers(&self, key_id: &str, authed: &Authed) -> bool {
        match self {
            Affects::NoKeys => false,
            Affects::Key(id) => *id == key_id,
            Affects::Namespace(name) => match &authed.principal {
                Principal::Scoped { grants, .. } => grants.iter().any(|g| g.namespace == *name),
                Principal::Member { .. } | Principal::Root => false,
            },
            Affects::AllKeys => true,
        }
    }
}

impl State {
    /// A write to the catalog; invalidates every cached key resolution.
    pub(crate) fn catalog_write<R: Send>(
        &self,
        f: impl FnMut(&mut heed3::RwTxn<'_>, &CatalogTables) -> Result<R> + Send,
    ) -> Result<R> {
        self.catalog_write_affecting(Affects::AllKeys, f)
    }

    /// A write to the catalog that changes at most the key resolutions `affects` names:
    /// those are dropped from the cache once it is committed (before it returns, so the next
    /// request resolves the key again), the others stay.
    pub(crate) fn catalog_write_affecting<R: Send>(
        &self,
        affects: Affects<'_>,
        f: impl FnMut(&mut heed3::RwTxn<'_>, &CatalogTables) -> Result<R> + Send,
    ) -> Result<R> {
        let r = self.catalog.write(f);
        self.forget_keys(affects);
        r
    }

    /// Drops the cached key resolutions `affects` names.
    fn forget_keys(&self, affects: Affects<'_>) {
        if matches!(affects, Affects::NoKeys) {
            return;
        }
        let mut cache = self.key_cache.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        match affects {
            Affects::AllKeys => cache.clear(),
            Affects::Key(id) => {
                cache.remove(id);
            }
            _ => cache.retain(|id, c| !affects.covers(id, &c.authed)),
        }
    }

    /// Whether key `id`'s resolution is cached (tests of what a write keeps).
    #[cfg(test)]
    pub(crate) fn key_cached(&self, id: &str) -> bool {
        self.key_cache.read().contains_key(id)
    }

    pub(crate) fn is_admin_key(&self, text: &str) -> bool {
        let stored = *self.admin_hash.read();
        stored.is_some_and(|h| auth::hashes_equal(&h, &auth::hash_secret(text.as_bytes())))
    }

    /// Resolves a parsed key to its principal, from the cache unless a catalog write changed
    /// it since it was cached (see [`State::catalog_write_affecting`]).
    pub(crate) fn authenticate(&self, key: &ParsedKey) -> Result<Arc<Authed>> {
        self.authenticate_at(key).map(|(_, authed)| authed)
    }

    /// [`State::authenticate`], with the key generation the resolution holds at: while no
    /// catalog write has changed a key resolution since (the generation is still that one),
    /// [`State::recheck`] gives it again without a look-up.
    pub(crate) fn authenticate_at(&self, key: &ParsedKey) -> Result<(u64, Arc<Authed>)> {
        let generation = self.generation.load(Ordering::SeqCst);
        let now = self.now_micros();
        if let Some(c) = self.key_cache.read().get(&key.id) {
            if auth::hashes_equal(&c.secret_hash, &key.secret_hash) {
                return unexpired(&c.authed, now).map(|a| (generation, a));
            }
        }
        let authed = Arc::new(crate::keys::resolve_key(&self.catalog, key, now)?);
        let mut cache = self.key_cache.write();
        // A write that changed resolutions committed while this one was read: it may be
        // stale, so it is not cached (the next request reads it again).
        if self.generation.load(Ordering::SeqCst) != generation {
            return Ok((generation, authed));
        }
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(
            key.id.clone(),
            CachedKey { secret_hash: key.secret_hash, authed: authed.clone() },
        );
        Ok((generation, authed))
    }

    /// A resolution [`State::authenticate_at`] gave at `generation`, checked again: itself
    /// while no catalog write has changed a key resolution since (the same answer the cache
    /// would give) and it has not expired; `None` when the key must be resolved again.
    pub(crate) fn recheck(
        &self,
        generation: u64,
        authed: &Arc<Authed>,
    ) -> Option<Result<Arc<Authed>>> {
        (self.generation.load(Ordering::SeqCst) == generation)
            .then(|| unexpired(authed, self.now_micros()))
    }
}

/// `authed`, unless its key has expired at `now`.
fn unexpired(authed: &Arc<Authed>, now: i64) -> Result<Arc<Authed>> {
    match authed.expires_at {
        Some(exp) if exp <= now => Err(Error::Unauthorized("API key expired".into())),
        _ => Ok(authed.clone()),
    }
}
