//! The filter language of recall, list, count and forget, and the secondary keys that let a
//! selective filter find its memories without decoding every record.
//!
//! A filter is a JSON object. Keys are fields — the built-ins `id`, `agent_id`, `session_id`,
//! `memory_type`, `tags`, `importance`, `created_at`, `updated_at`, or `metadata.<path>` (a
//! dotted path into the metadata) — or the combinators `$and`, `$or` (arrays of filters) and
//! `$not` (a filter). Several keys in one object must all match. A field's value is either a
//! plain value (equality) or an object of operators, all of which must match: `$eq $ne $gt $gte
//! $lt $lte $in $nin $exists` and, for arrays (tags, array metadata), `$contains $contains_any
//! $contains_all`. Equality with a plain value on an array field means "contains". Ranges
//! compare numbers with numbers, strings with strings and times (RFC 3339) with times; a value
//! of another type does not match. A missing field matches only `$ne`, `$nin`, `$exists: false`
//! and negations.
//!
//! Secondary keys (table `fields`): `ns ‖ field tag ‖ [path ‖ 0] ‖ encoded value ‖ slot ‖ memory
//! key → vector slot`, one per built-in value, per tag and per scalar metadata leaf (array
//! elements under their array's path); the order keys of `importance`, `created_at` and
//! `updated_at` have no slot part (see `keys::full_key`). An upsert leaves the old `updated_at`
//! key behind, deleted later in bulk (see `stale`): a memory may have keys that its record
//! does not have, which readers skip. Values are encoded so that byte order is value order within a
//! type; long strings and paths are cut, so the keys give a superset of the matches and every
//! candidate is still checked against its record.

mod candidates;
mod keys;
mod matching;
mod parse;
mod refile;
mod stale;
#[cfg(test)]
mod tests;

pub(crate) use candidates::{candidates, count_exact, Candidates};
pub(crate) use keys::{
    build_all, delete_keys, ensure_indexed, f64_key, i64_key, importance_range, keys_of, put_keys,
    update_keys, with_updated_at, Layout, TAG_CREATED, TAG_IMPORTANCE, TAG_UPDATED,
};
pub(crate) use parse::{Field, Filter, Op, Operand};
pub(crate) use refile::{
    drop_note, mark_refile, refile_notes, refile_slots, unmark_refile, RefileNote,
};
pub(crate) use stale::{drop_stale, note_stale, stale_due};
