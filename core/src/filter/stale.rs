//! `updated_at` order keys left behind by upserts, and their removal in bulk.
//!
//! An upsert moves a memory's `updated_at` every time. Its old order key lies wherever that
//! time falls in the namespace's history, so deleting it at once dirties a page of its own per
//! memory (a batch of 1000 upserts of ids spread over a 100k namespace wrote ≈ 700 pages for
//! them alone). The old key is left instead, and a note of it written:
//! `ns ‖ TAG_STALE ‖ write sequence (u64 BE) ‖ memory key → old value (8 bytes)`, so the notes
//! of a batch are adjacent keys on a few pages at the end of the namespace's rows. Readers take
//! an order key only when its record has that value (`listing::walk_order`), and candidates
//! from the keys are checked against their records as before (two keys of one memory that
//! disagree on its slot are settled by the record: see `candidates`). Once the notes
//! outnumber half the namespace's memories, the write that finds so deletes their keys in one
//! pass, in key order, except a key whose record has that value again (an import may set an
//! earlier `updated_at`).

use chrono::{DateTime, Utc};
use heed3::RwTxn;
use serde::Deserialize;

use super::keys::TAG_UPDATED;
use crate::datastore::{ns_key, DataTables, NamespaceId, NamespaceStats};
use crate::error::Result;
use crate::records::memory::{chrono_written, decode_record, split_record};

/// Tag of the notes of order keys left behind.
const TAG_STALE: u8 = 0xF2;

/// Notes a namespace may hold beyond half its memories before they are cleaned up: a small
/// namespace updated over and over is cleaned up every few hundred upserts, not every other.
const SLACK: u64 = 256;

fn prefix(ns: NamespaceId) -> Vec<u8> {
    ns_key(ns, &[TAG_STALE])
}

/// Notes that write number `seq` of the namespace (its `vector_writes` once committed) left
/// the `updated_at` keys of `stale` (memory key, old value) in place. Returns how many notes
/// were written.
pub(crate) fn note_stale(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    seq: u64,
    stale: &mut [([u8; 16], [u8; 8])],
) -> Result<u64> {
    // In key order: each note lands beside the one before it.
    stale.sort_unstable();
    let mut key = prefix(ns);
    key.extend_from_slice(&seq.to_be_bytes());
    let at = key.len();
    for (mem, value) in stale.iter() {
        key.truncate(at);
        key.extend_from_slice(mem);
        t.fields.put(w, &key, value)?;
    }
    Ok(stale.len() as u64)
}

/// Whether a namespace with these stats has enough notes to clean them up now.
pub(crate) fn stale_due(stats: &NamespaceStats) -> bool {
    stats.stale_updated > stats.memory_count / 2 + SLACK
}

/// Deletes every noted `updated_at` key whose record no longer has that value (or is gone),
/// and every note. Returns how many keys were deleted.
pub(crate) fn drop_stale(t: &DataTables, w: &mut RwTxn<'_>, ns: NamespaceId) -> Result<u64> {
    let prefix = prefix(ns);
    let mut notes = Vec::new();
    let mut iter = t.fields.prefix_iter_mut(w, &prefix)?;
    while let Some((k, v)) = iter.next().transpose()? {
        let mem = k.get(prefix.len() + 8..).and_then(|m| <[u8; 16]>::try_from(m).ok());
        if let (Some(mem), Ok(value)) = (mem, <[u8; 8]>::try_from(v)) {
            notes.push((mem, value));
        }
        // SAFETY: the note was copied; no reference into the database is kept across this
        // deletion.
        unsafe { iter.del_current()? };
    }
    drop(iter);
    // Records in key order, then the keys to delete in key order: neighbouring pages.
    notes.sort_unstable();
    notes.dedup();
    let mut doomed = Vec::new();
    for (mem, value) in notes {
        let current = match t.memories.get(w, &ns_key(ns, &mem))? {
            Some(bytes) => Some(updated_key(bytes)?),
            None => None,
        };
        if current != Some(value) {
            doomed.push((value, mem));
        }
    }
    doomed.sort_unstable();
    let mut deleted = 0;
    let mut key = ns_key(ns, &[TAG_UPDATED]);
    let at = key.len();
    for (value, mem) in &doomed {
        key.truncate(at);
        key.extend_from_slice(value);
        key.extend_from_slice(mem);
        deleted += u64::from(t.fields.delete(w, &key)?);
    }
    Ok(deleted)
}

/// The `updated_at` order key value of a stored record, read without decoding the memory.
fn updated_key(bytes: &[u8]) -> Result<[u8; 8]> {
    #[derive(Deserialize)]
    struct Updated {
        updated_at: DateTime<Utc>,
    }
    let at = match split_record(bytes) {
        Some((_, json)) => match last_fields(json) {
            Some(at) => at,
            None => serde_json::from_slice::<Updated>(json)?.updated_at,
        },
        None => decode_record(bytes)?.memory.updated_at,
    };
    Ok(super::i64_key(at.timestamp_micros()))
}

/// The `updated_at` of a memory's JSON read from its last two fields alone, as a memory is
/// serialised (`…,"updated_at":"…","expires_at":null}` or a time for `null`), without parsing
/// what comes before (its content and metadata: most of a record). `None` when the JSON does
/// not end so; the whole JSON is read then.
///
/// The text from the last `"updated_at":"` to the end, parsed as an object with exactly those
/// two fields, is the memory's own field: the pattern's unescaped quotes put it outside any
/// string, and an object that ends at the JSON's last byte is the memory itself.
fn last_fields(json: &[u8]) -> Option<DateTime<Utc>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Last<'a> {
        #[serde(borrow)]
        updated_at: std::borrow::Cow<'a, str>,
        #[allow(dead_code)] // only its presence is checked
        expires_at: Option<serde::de::IgnoredAny>,
    }
    const UPDATED_AT: &[u8] = b"\"updated_at\":\"";
    // The two fields take at most about 90 bytes: look no further back than that.
    let from = json.len().saturating_sub(128);
    let at = from + json[from..].windows(UPDATED_AT.len()).rposition(|w| w == UPDATED_AT)?;
    let mut tail = Vec::with_capacity(1 + json.len() - at);
    tail.push(b'{');
    tail.extend_from_slice(&json[at..]);
    let last = serde_json::from_slice::<Last<'_>>(&tail).ok()?;
    // As the field's `DateTime<Utc>` reads it: a time as chrono writes it (every stored one)
    // without chrono's general parser.
    chrono_written(&last.updated_at).or_else(|| last.updated_at.parse().ok())
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::filter::keys::{delete_keys, keys_of, put_keys, update_keys, Layout};
    use crate::records::memory::{encode_record, tests::memory};
    use crate::records::Memory;
    use crate::store::Store;

    /// The `updated_at` values of the namespace's order keys, with their memory keys.
    fn updated_keys(env: &Store<DataTables>, ns: NamespaceId) -> Vec<([u8; 8], [u8; 16])> {
        env.read(|r, t| {
            let mut out = Vec::new();
            for e in t.fields.prefix_iter(r, &ns_key(ns, &[TAG_UPDATED]))? {
                let k = e?.0;
                out.push((k[9..17].try_into().unwrap(), k[17..33].try_into().unwrap()));
            }
            Ok(out)
        })
        .unwrap()
    }

    fn at(m: &Memory) -> [u8; 8] {
        super::super::i64_key(m.updated_at.timestamp_micros())
    }

    /// An upsert leaves the old key and notes it; the clean-up deletes exactly the noted keys
    /// whose record has another value or is gone, keeps one whose record has that value again
    /// (an import of an earlier version), and drops every note.
    #[test]
    fn left_keys_are_noted_and_deleted_unless_current_again() {
        let dir = tempfile::tempdir().unwrap();
        let env: Store<DataTables> = Store::open(dir.path(), 1 << 24, None).unwrap();
        let ns = 3;
        let (a, b, c) = ([1u8; 16], [2u8; 16], [3u8; 16]);
        let first = memory();
        let later = |m: &Memory, s: i64| Memory {
            updated_at: m.updated_at + Duration::seconds(s),
            ..m.clone()
        };
        let put = |w: &mut RwTxn<'_>, t: &DataTables, mem: &[u8; 16], m: &Memory| -> Result<()> {
            t.memories.put(
                w,
                &ns_key(ns, mem),
                &encode_record(Some(1), &serde_json::to_vec(m)?),
            )?;
            Ok(())
        };
        let (a2, b2, c2) = (later(&first, 1), later(&first, 2), later(&first, 3));
        let deleted = env
            .write(|w, t| {
                let mut stale = Vec::new();
                for (mem, m2) in [(&a, &a2), (&b, &b2), (&c, &c2)] {
                    put(w, t, mem, &first)?;
                    put_keys(t, w, ns, mem, &keys_of(&first), Some(1))?;
                    put(w, t, mem, m2)?;
                    let parts = (&keys_of(&first)[..], &keys_of(m2)[..]);
                    let old = update_keys(t, w, ns, (mem, Some(1)), parts, Layout::Current)?;
                    assert_eq!(old, Some(at(&first)), "the old value is left and returned");
                    stale.push((*mem, old.unwrap()));
                }
                assert_eq!(note_stale(t, w, ns, 7, &mut stale)?, 3);
                // b is set back to its first version (as an import may): its first key is
                // current again, its second is left behind.
                put(w, t, &b, &first)?;
                let parts = (&keys_of(&b2)[..], &keys_of(&first)[..]);
                let old = update_keys(t, w, ns, (&b, Some(1)), parts, Layout::Current)?;
                assert_eq!(note_stale(t, w, ns, 8, &mut [(b, old.unwrap())])?, 1);
                // c is deleted: its current key goes at once, the one left at the clean-up.
                delete_keys(t, w, ns, (&c, Some(1)), &c2, Layout::Current)?;
                t.memories.delete(w, &ns_key(ns, &c))?;
                Ok(())
            })
            .and_then(|()| {
                assert_eq!(updated_keys(&env, ns).len(), 5, "two of a, two of b, one of c");
                env.write(|w, t| drop_stale(t, w, ns))
            })
            .unwrap();
        assert_eq!(deleted, 3, "a's first key, b's second, c's first");
        assert_eq!(updated_keys(&env, ns), [(at(&first), b), (at(&a2), a)]);
        let notes = env.read(|r, t| Ok(t.fields.prefix_iter(r, &prefix(ns))?.count())).unwrap();
        assert_eq!(notes, 0, "every note dropped");
    }

    /// The `updated_at` read from a memory's last fields is the one the whole JSON has, also
    /// when its content and metadata hold the same field name; JSON that does not end as a
    /// memory's does is read whole.
    #[test]
    fn updated_at_from_the_last_fields_is_the_memorys() {
        let mut m = memory();
        m.content = r#""updated_at":"2001-01-01T00:00:00Z","expires_at":null}"#.into();
        m.metadata.insert("updated_at".into(), "2002-02-02T00:00:00Z".into());
        m.metadata.insert("x".into(), serde_json::json!({"updated_at": "2003-03-03T00:00:00Z"}));
        for expires_at in [None, Some(m.updated_at + Duration::seconds(60))] {
            for nanos in [0, 123_000_000, 123_456_000, 123_456_789] {
                use chrono::Timelike;
                let updated_at = m.updated_at.with_nanosecond(nanos).unwrap();
                let m = Memory { updated_at, expires_at, ..m.clone() };
                let json = serde_json::to_vec(&m).unwrap();
                assert_eq!(last_fields(&json), Some(updated_at));
                let record = encode_record(Some(1), &json);
                assert_eq!(updated_key(&record).unwrap(), at(&m));
            }
        }
        // A memory with a vector field after its times is read whole, to the same value.
        let m = Memory { vector: Some(vec![0.5]), ..m };
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(last_fields(&json), None);
        assert_eq!(updated_key(&encode_record(Some(1), &json)).unwrap(), at(&m));
    }
}
