//! Values decoded from stored bytes, kept beside those bytes: a read that finds the same
//! bytes under the same key again takes the decoded value instead of decoding them again
//! (every recall reads its namespace's record and statistics, which seldom change).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use parking_lot::RwLock;

use crate::error::Result;

/// Entries kept at most; past that the map starts again empty (an entry is only a saving).
const MAX_ENTRIES: usize = 4096;

/// Decoded values by key, each with the bytes it was decoded from. A value is given again
/// only for the very bytes it came from, so whatever wrote, compacted or rotated the table
/// meanwhile, the answer is the one decoding would give.
pub(crate) struct Decoded<K, V> {
    entries: RwLock<HashMap<K, Entry<V>>>,
}

/// A decoded value and the bytes it was decoded from.
struct Entry<V> {
    bytes: Box<[u8]>,
    value: V,
}

impl<K, V> Default for Decoded<K, V> {
    fn default() -> Self {
        Decoded { entries: RwLock::default() }
    }
}

impl<K: Hash + Eq, V: Clone> Decoded<K, V> {
    /// The value of `bytes`, read under `key`: the one kept for them, or `decode(bytes)`
    /// (then kept).
    pub(crate) fn get<Q>(
        &self,
        key: &Q,
        bytes: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<V>,
    ) -> Result<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(kept) = self.entries.read().get(key) {
            if *kept.bytes == *bytes {
                return Ok(kept.value.clone());
            }
        }
        let value = decode(bytes)?;
        let mut entries = self.entries.write();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            entries.clear();
        }
        entries.insert(key.to_owned(), Entry { bytes: bytes.into(), value: value.clone() });
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_decoded_again_when_its_bytes_change() {
        let cache: Decoded<String, u32> = Decoded::default();
        let decode = |b: &[u8]| Ok(u32::from(b[0]));
        let mut calls = 0;
        let mut count = |b: &[u8]| {
            calls += 1;
            decode(b)
        };
        assert_eq!(cache.get("a", &[1], &mut count).unwrap(), 1);
        assert_eq!(cache.get("a", &[1], &mut count).unwrap(), 1);
        assert_eq!(cache.get("a", &[2], &mut count).unwrap(), 2);
        assert_eq!(cache.get("b", &[2], &mut count).unwrap(), 2);
        assert_eq!(calls, 3, "the same bytes under the same key are decoded once");
    }
}
