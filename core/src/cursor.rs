//! Opaque list cursors: a body followed by its MAC (HMAC-SHA256 cut to 16 bytes), as hex.
//! Only the holder of the key makes cursors that open: one altered or made up does not.
//! The engine keeps its key in the catalog (`CursorKey`); a cluster keeps one every node
//! shares and seals its namespace lists' cursors with [`seal_after_name`], as the engine does.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::catalog::{can_be_key, CatalogTables};
use crate::error::{Error, Result};
use crate::store::Store;

/// Bytes of a cursor's MAC.
const MAC_LEN: usize = 16;

/// First byte of a namespace list's cursor (a memory list's starts with its version, 1).
const NAME_CURSOR: u8 = b'n';

fn mac(key: &[u8; 32], payload: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    m.update(payload);
    m.finalize().into_bytes()[..MAC_LEN].to_vec()
}

/// `body` followed by its MAC under `key`, as hex.
pub fn seal(key: &[u8; 32], mut body: Vec<u8>) -> String {
    let tag = mac(key, &body);
    body.extend_from_slice(&tag);
    body.iter().fold(String::with_capacity(body.len() * 2), |mut out, b| {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The body of a cursor [`seal`] made with `key`; `None` if `text` is not one (altered or
/// made up).
pub fn unseal(key: &[u8; 32], text: &str) -> Option<Vec<u8>> {
    if text.len() < 2 * (1 + MAC_LEN) || !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    let mut bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .ok()?;
    let tag = bytes.split_off(bytes.len() - MAC_LEN);
    let want = mac(key, &bytes);
    bool::from(subtle::ConstantTimeEq::ct_eq(want.as_slice(), tag.as_slice())).then_some(bytes)
}

/// The cursor of a namespace list's position just after `name`.
pub fn seal_after_name(key: &[u8; 32], name: &str) -> String {
    let mut body = Vec::with_capacity(1 + name.len());
    body.push(NAME_CURSOR);
    body.extend_from_slice(name.as_bytes());
    seal(key, body)
}

/// The name a namespace list's cursor (made by [`seal_after_name`]) continues after;
/// `invalid_argument` (field `cursor`) if `text` is not one.
pub fn unseal_after_name(key: &[u8; 32], text: &str) -> Result<String> {
    unseal(key, text)
        .filter(|b| b.first() == Some(&NAME_CURSOR))
        .and_then(|b| String::from_utf8(b[1..].to_vec()).ok())
        .filter(|name| can_be_key(name))
        .ok_or_else(|| {
            Error::invalid(
                "cursor",
                "not a cursor of a namespace list (altered, or of another list)",
            )
        })
}

/// The engine's cursor key: kept in the catalog (`meta/cursor_key`, made on first use), read
/// once.
#[derive(Default)]
pub(crate) struct CursorKey(OnceLock<[u8; 32]>);

impl CursorKey {
    /// The key, read from `catalog` (or made and stored there) on first use.
    pub(crate) fn get(&self, catalog: &Store<CatalogTables>) -> Result<[u8; 32]> {
        if let Some(k) = self.0.get() {
            return Ok(*k);
        }
        let key = catalog.write(|w, t| {
            if let Some(k) = t.meta.get(w, "cursor_key")?.and_then(|b| <[u8; 32]>::try_from(b).ok())
            {
                return Ok(k);
            }
            let mut k = [0u8; 32];
            getrandom::fill(&mut k).map_err(|e| Error::internal_from("random source", e))?;
            t.meta.put(w, "cursor_key", &k)?;
            Ok(k)
        })?;
        Ok(*self.0.get_or_init(|| key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealed body opens with its key only, and not once a byte of it is changed.
    #[test]
    fn a_cursor_opens_with_its_key_only_and_unaltered() {
        let (key, other) = ([7u8; 32], [8u8; 32]);
        let text = seal(&key, b"position".to_vec());
        assert_eq!(unseal(&key, &text).as_deref(), Some(&b"position"[..]));
        assert_eq!(unseal(&other, &text), None);
        let mut altered = text.clone().into_bytes();
        altered[0] = if altered[0] == b'0' { b'1' } else { b'0' };
        assert_eq!(unseal(&key, std::str::from_utf8(&altered).unwrap()), None);
        assert_eq!(unseal(&key, "zz"), None);
        let after = seal_after_name(&key, "acme");
        assert_eq!(unseal_after_name(&key, &after).unwrap(), "acme");
        let err = unseal_after_name(&key, &text).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { field, .. } if field == "cursor"));
    }
}
