//! Listing and counting memories by cursor, in a stable order (see [`crate::listing`]).

use crate::auth::NamespaceAction;
use crate::error::{Error, Result};
use crate::filter::{self, Filter};
use crate::handle::Handle;
use crate::listing::{
    all_live, decode_cursor, each_matching, encode_cursor, from_candidates, parse_filter,
    walk_order, CountMemories, ListMemories, MemoryPage, Position, DEFAULT_LIST, MAX_LIST,
    SMALL_SET,
};
use crate::memory::{is_live, read_vector, Memory};
use crate::records::NamespaceRecord;

impl Handle {
    /// A page of a namespace's live memories matching `filter`, in a stable order, with the
    /// cursor of the next page.
    pub fn list_memories(&self, req: ListMemories) -> Result<MemoryPage> {
        let caller = self.caller()?;
        let (rec, _) =
            self.memory_namespace(&caller, req.namespace.as_deref(), None, NamespaceAction::Read)?;
        let limit = req.limit.unwrap_or(DEFAULT_LIST);
        if limit == 0 || limit > MAX_LIST {
            return Err(Error::invalid("limit", format!("must be between 1 and {MAX_LIST}")));
        }
        let filter = parse_filter(req.filter.as_ref())?;
        let order = req.order_by.unwrap_or_default();
        let desc = req.descending;
        let after = match &req.cursor {
            Some(c) => Some(decode_cursor(&self.inner.cursor_key()?, c, rec.id, order, desc)?),
            None => None,
        };
        self.inner.ensure_fields(&rec)?;
        let now = self.inner.now_micros();
        let env = self.inner.data_env_of(&rec)?;
        let keep = |m: &Memory| {
            is_live(m, &rec.policy, now) && filter.as_ref().is_none_or(|f| f.matches(m))
        };
        let mut page: Vec<(Position, Memory, Option<u32>)> = env.read(|r, t| {
            let small = match &filter {
                Some(f) => filter::candidates(t, r, rec.id, f, SMALL_SET)?,
                None => None,
            };
            match small {
                Some(c) => from_candidates(t, r, rec.id, &c, order, desc, after, limit + 1, &keep),
                None => walk_order(t, r, rec.id, order, desc, after, limit + 1, &keep),
            }
        })?;
        let next_cursor = if page.len() > limit {
            page.truncate(limit);
            let last = &page[limit - 1].0;
            Some(encode_cursor(&self.inner.cursor_key()?, rec.id, order, desc, last))
        } else {
            None
        };
        let memories = if req.include_vectors {
            env.read(|r, t| {
                page.into_iter()
                    .map(|(_, mut m, slot)| {
                        m.vector = read_vector(t, r, rec.id, slot)?;
                        Ok(m)
                    })
                    .collect::<Result<Vec<_>>>()
            })?
        } else {
            page.into_iter().map(|(_, m, _)| m).collect()
        };
        Ok(MemoryPage { memories, next_cursor })
    }

    /// How many live memories of a namespace match `filter` (all of them without one).
    pub fn count_memories(&self, req: CountMemories) -> Result<u64> {
        let caller = self.caller()?;
        let (rec, _) =
            self.memory_namespace(&caller, req.namespace.as_deref(), None, NamespaceAction::Read)?;
        let filter = parse_filter(req.filter.as_ref())?;
        let env = self.inner.data_env_of(&rec)?;
        let stats = env.read(|r, t| t.stats_of(r, rec.id))?;
        if filter.is_none() && all_live(&rec, &stats) {
            return Ok(stats.memory_count);
        }
        let mut n = 0u64;
        let all = Filter::And(Vec::new());
        self.each_matching(&rec, filter.as_ref().unwrap_or(&all), |_| n += 1)?;
        Ok(n)
    }

    /// Calls `f` with every live memory of `rec` matching `filter` (see
    /// [`each_matching`]).
    pub(crate) fn each_matching(
        &self,
        rec: &NamespaceRecord,
        filter: &Filter,
        f: impl FnMut(Memory),
    ) -> Result<()> {
        let env = self.inner.data_env_of(rec)?;
        each_matching(&env, rec, self.inner.now_micros(), filter, f)
    }
}

#[cfg(test)]
mod tests {
    /// A namespace written by 0.1.0 (memories, no postings, no flag) gets its postings when
    /// the store is opened again and recalled by keyword; its statistics and storage charge
    /// then equal those of the same memories written with the index.
    #[test]
    fn memories_written_without_postings_are_found_by_keyword_after_reopening() {
        use crate::auth::NamespaceAction;
        use crate::{Engine, NamespaceOptions, Options, Recall, StoreMemory};

        let dir = tempfile::tempdir().unwrap();
        let texts = ["Alice adopted a greyhound named Pixel", "Budget: $2.4M allocated", "x"];
        let open = || {
            Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap()
        };
        let engine = open();
        let root = engine.root();
        for ns in ["fresh", "older"] {
            root.create_namespace(ns, NamespaceOptions::default()).unwrap();
            let batch = texts.iter().map(|t| StoreMemory::text(*t)).collect();
            root.store_memories(ns, batch).unwrap();
        }
        // (Names of one length: a record holds its namespace's name, and its size is charged.)
        // Make "older" what 0.1.0 wrote: no postings, no keyword statistics, no charge for them.
        let caller = root.caller().unwrap();
        let rec = root.namespace_for(&caller, "older", NamespaceAction::Manage).unwrap();
        let env = engine.inner.data_env_of(&rec).unwrap();
        env.write_ns(rec.id, |w, t| {
            let mut charges = 0;
            for s in crate::records::memory::scan_memories(t, w, rec.id)? {
                charges += crate::keyword::charge(&s?.memory.content);
            }
            let mut keys = Vec::new();
            for row in t.postings.prefix_iter(w, &rec.id.to_be_bytes())? {
                keys.push(row?.0.to_vec());
            }
            assert!(!keys.is_empty());
            for k in keys {
                t.postings.delete(w, &k)?;
            }
            let mut stats = t.stats_of(w, rec.id)?;
            stats.storage_bytes -= charges;
            (stats.keyword_docs, stats.keyword_terms, stats.keyword_indexed) = (0, 0, false);
            t.put_stats(w, rec.id, &stats)
        })
        .unwrap();
        let keyword = |root: &crate::Handle, ns: &str, q: &str| {
            let req = Recall {
                mode: Some(crate::RecallMode::Keyword),
                ..Recall::text(q).namespace(ns).top_k(5)
            };
            root.recall(req).unwrap().into_iter().map(|h| h.content).collect::<Vec<_>>()
        };
        drop((env, root, engine));

        let engine = open();
        let root = engine.root();
        assert_eq!(keyword(&root, "older", "greyhound"), [texts[0]]);
        assert_eq!(keyword(&root, "older", "budget allocated"), [texts[1]]);
        // Hybrid recall ranks it too, with its keyword score.
        let hits = root.recall(Recall::text("Pixel").namespace("older").top_k(1)).unwrap();
        assert_eq!(hits[0].content, texts[0]);
        assert!(hits[0].keyword_score.is_some_and(|k| k > 0.0));
        let (old, indexed) =
            (root.get_namespace("older").unwrap(), root.get_namespace("fresh").unwrap());
        assert_eq!(old.storage_bytes, indexed.storage_bytes);
        let stats = |ns: &str| {
            let rec = root.namespace_for(&caller, ns, NamespaceAction::Manage).unwrap();
            let env = engine.inner.data_env_of(&rec).unwrap();
            env.read(|r, t| t.stats_of(r, rec.id)).unwrap()
        };
        let (o, i) = (stats("older"), stats("fresh"));
        assert_eq!((o.keyword_docs, o.keyword_terms), (i.keyword_docs, i.keyword_terms));
        assert!(o.keyword_indexed && i.keyword_indexed);
        // A deletion afterwards releases what was charged, no more.
        let id =
            root.recall(Recall::text("Pixel").namespace("older").top_k(1)).unwrap()[0].id.clone();
        root.delete_memory(Some("older"), &id).unwrap();
        let id =
            root.recall(Recall::text("Pixel").namespace("fresh").top_k(1)).unwrap()[0].id.clone();
        root.delete_memory(Some("fresh"), &id).unwrap();
        assert_eq!(
            root.get_namespace("older").unwrap().storage_bytes,
            root.get_namespace("fresh").unwrap().storage_bytes
        );
    }
}
