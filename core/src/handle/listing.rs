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
            Some(c) => Some(decode_cursor(&self.state.cursor_key()?, c, rec.id, order, desc)?),
            None => None,
        };
        self.state.ensure_fields(&rec)?;
        let now = self.state.now_micros();
        let env = self.state.data_env_of(&rec)?;
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
            Some(encode_cursor(&self.state.cursor_key()?, rec.id, order, desc, last))
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
        let env = self.state.data_env_of(&rec)?;
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
        let env = self.state.data_env_of(rec)?;
        each_matching(&env, rec, self.state.now_micros(), filter, f)
    }
}
