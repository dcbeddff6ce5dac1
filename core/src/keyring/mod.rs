//! Encryption keys and where they come from.
//!
//! A [`Key`] is 32 random bytes (a ChaCha20-Poly1305 key for LMDB's page encryption), wiped
//! from memory when dropped and never printed. A [`KeyProvider`] gets, creates and destroys
//! keys by id; the trait is small so that a cloud KMS can be added beside the two built in:
//!
//! - [`KeyringDir`]: a directory holding one file per key id (mode 0600, written atomically).
//!   It must not lie inside the data directory: keys are never written next to the data.
//! - [`EnvKeys`]: keys given in the process environment as `MEMSILO_KEY_<ID>` (hex or base64);
//!   read-only.
//!
//! Key ids are 1 to 128 characters of ASCII letters, digits, `-`, `_` and `.`, not starting
//! with `.`; errors about them name the field `encryption_key_id`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use zeroize::Zeroize;

use crate::error::{Error, Result};

mod dir;
mod env;
#[cfg(test)]
mod tests;

pub use dir::KeyringDir;
pub use env::EnvKeys;

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// Longest key id accepted.
pub const MAX_KEY_ID_LEN: usize = 128;

/// The field key-id errors name.
const FIELD: &str = "encryption_key_id";

/// Id of the instance key: the key of the catalog, the audit log and the environments of
/// `logical` tenants (and of tenants without a key of their own). No tenant may take it.
pub const INSTANCE_KEY_ID: &str = "instance";

/// Prefix of the environment variables [`EnvKeys`] reads.
pub const ENV_PREFIX: &str = "MEMSILO_KEY_";

/// A 32-byte encryption key. Zeroized when dropped; its `Debug` shows no byte of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// A new key of random bytes from the operating system.
    pub fn generate() -> Result<Key> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|e| Error::internal_from("random source", e))?;
        Ok(Key(bytes))
    }

    /// A key from its bytes (the caller's copy is the caller's to wipe).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key(bytes)
    }

    /// The key's bytes, for handing to the cipher.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Parses a key written as 64 hex digits or as base64 (standard or URL-safe, padded or
    /// not) of 32 bytes; surrounding whitespace is ignored. `what` names the source in errors.
    pub fn parse(text: &str, what: &str) -> Result<Key> {
        let text = text.trim();
        let mut bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            decode_hex(text)
        } else {
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines.iter().find_map(|e| e.decode(text).ok()).unwrap_or_default()
        };
        if bytes.len() != KEY_LEN {
            bytes.zeroize();
            return Err(Error::invalid(
                FIELD,
                format!("{what} is not a key: expected 64 hex digits or base64 of 32 bytes"),
            ));
        }
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&bytes);
        bytes.zeroize();
        Ok(Key(key))
    }

    /// The key as 64 lowercase hex digits (the keyring file's contents).
    fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(2 * KEY_LEN + 1);
        for b in self.0 {
            s.push(DIGITS[usize::from(b >> 4)] as char);
            s.push(DIGITS[usize::from(b & 0xf)] as char);
        }
        s
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

fn decode_hex(text: &str) -> Vec<u8> {
    let nibble = |b: u8| match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    };
    text.as_bytes().chunks(2).map(|p| nibble(p[0]) << 4 | nibble(p[1])).collect()
}

/// Checks a key id: 1 to [`MAX_KEY_ID_LEN`] ASCII letters, digits, `-`, `_`, `.`, not
/// starting with `.` (so it is a plain file name and never a hidden or temporary one).
pub fn validate_key_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(FIELD, "must not be empty"));
    }
    if id.len() > MAX_KEY_ID_LEN {
        return Err(Error::invalid(FIELD, format!("must be at most {MAX_KEY_ID_LEN} characters")));
    }
    if id.starts_with('.') {
        return Err(Error::invalid(FIELD, "must not start with '.'"));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c))) {
        return Err(Error::invalid(
            FIELD,
            format!("may hold only ASCII letters, digits, '-', '_' and '.' (found {c:?})"),
        ));
    }
    Ok(())
}

/// Where encryption keys come from. Small on purpose, so a cloud KMS can implement it.
pub trait KeyProvider: Send + Sync {
    /// The key `id`, or `None` when the provider has none by that id.
    fn get(&self, id: &str) -> Result<Option<Key>>;
    /// Creates a new random key `id`; `conflict` if it exists already.
    fn create(&self, id: &str) -> Result<Key>;
    /// Destroys key `id` for good (nothing is left to recover it from); destroying a key that
    /// is not there succeeds, so an interrupted destruction can be repeated.
    fn destroy(&self, id: &str) -> Result<()>;
    /// One line naming the provider for logs and errors (`keyring directory /etc/memsilo/keys`).
    fn describe(&self) -> String;
    /// Where key `id` is kept (the environment keyring: its variable). Two ids kept in one
    /// place would be one key, so memsilo refuses that (see [`shared_location`]).
    /// Default: the id itself (each id is a place of its own).
    fn location(&self, id: &str) -> Result<String> {
        Ok(id.to_owned())
    }
}

/// Two of `ids` that `provider` keeps in one place (`MEMSILO_KEY_ACME_KEY` holds both
/// `acme-key` and `acme.key`), with that place: they would be one key, shared by two owners,
/// so destroying one's would shred the other's data.
pub fn shared_location<'a>(
    provider: &dyn KeyProvider,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<Option<SharedLocation>> {
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for id in ids {
        let place = provider.location(id)?;
        match seen.get(place.as_str()) {
            Some(other) if *other != id => {
                return Ok(Some(SharedLocation {
                    ids: [(*other).to_owned(), id.to_owned()],
                    place: format!("{place} of {}", provider.describe()),
                }));
            }
            _ => {
                seen.insert(place, id);
            }
        }
    }
    Ok(None)
}

/// Two key ids a provider keeps in one place (see [`shared_location`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLocation {
    /// The two ids.
    pub ids: [String; 2],
    /// Where both are kept, and the provider (`variable MEMSILO_KEY_ACME_KEY of environment
    /// (MEMSILO_KEY_<ID>)`).
    pub place: String,
}

impl fmt::Display for SharedLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = &self.ids;
        write!(
            f,
            "keys {a} and {b} are both kept in {}: they would be one key (use ids that differ \
             in more than letter case and '-', '.', '_', or a keyring directory: --keyring DIR)",
            self.place
        )
    }
}

/// The key `id`, created in `provider` if it has none.
pub fn get_or_create(provider: &dyn KeyProvider, id: &str) -> Result<Key> {
    if let Some(key) = provider.get(id)? {
        return Ok(key);
    }
    match provider.create(id) {
        // Created by someone else in between: theirs is the key.
        Err(Error::Conflict(_)) => provider.get(id)?.ok_or_else(|| {
            Error::Internal(format!("key {id} vanished from {}", provider.describe()))
        }),
        other => other,
    }
}

/// The provider a `--keyring` setting names: `env:` for [`EnvKeys`], anything else a
/// [`KeyringDir`] (created if missing), which must not lie inside `data_dir`.
pub fn provider_for(setting: &Path, data_dir: &Path) -> Result<Arc<dyn KeyProvider>> {
    if setting.as_os_str() == "env:" {
        return Ok(Arc::new(EnvKeys));
    }
    Ok(Arc::new(KeyringDir::open(setting, Some(data_dir))?))
}
