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
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use zeroize::Zeroize;

use crate::error::{Error, Result};

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

/// A keyring directory: one file per key id, holding the key as 64 hex digits.
#[derive(Debug, Clone)]
pub struct KeyringDir {
    dir: PathBuf,
}

impl KeyringDir {
    /// Opens (creating it, mode 0700, if missing) the keyring directory `dir`. Refused with
    /// `invalid_argument` (field `keyring`) when it lies inside `data_dir`: keys are never
    /// written next to the data they protect.
    pub fn open(dir: impl AsRef<Path>, data_dir: Option<&Path>) -> Result<KeyringDir> {
        let given = dir.as_ref();
        let dir = resolve(given).map_err(|e| {
            Error::internal_from(format!("keyring directory {}", given.display()), e)
        })?;
        // Checked before anything is created, so a refused setting leaves nothing behind.
        if let Some(data) = data_dir.and_then(|d| d.canonicalize().ok()) {
            if dir.starts_with(&data) {
                return Err(Error::invalid(
                    "keyring",
                    format!(
                        "{} is inside the data directory {}; keys are never written next to the data",
                        dir.display(),
                        data.display()
                    ),
                ));
            }
        }
        if !dir.exists() {
            create_private_dir(&dir)?;
        }
        if !dir.is_dir() {
            return Err(Error::invalid("keyring", format!("{} is not a directory", dir.display())));
        }
        Ok(KeyringDir { dir })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, id: &str) -> Result<PathBuf> {
        validate_key_id(id)?;
        Ok(self.dir.join(id))
    }

    fn io(&self, what: &str, id: &str, e: std::io::Error) -> Error {
        Error::internal_from(format!("{what} key {id} in keyring {}", self.dir.display()), e)
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

impl KeyProvider for KeyringDir {
    fn get(&self, id: &str) -> Result<Option<Key>> {
        let path = self.file(id)?;
        match fs::read_to_string(&path) {
            Ok(mut text) => {
                let key = Key::parse(&text, &format!("keyring file {}", path.display()));
                text.zeroize();
                key.map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("reading", id, e)),
        }
    }

    fn create(&self, id: &str) -> Result<Key> {
        let path = self.file(id)?;
        let key = Key::generate()?;
        // Write a private temporary file and sync it, then link it to its name (which fails
        // if the name is taken: a key is never replaced), drop the temporary name and sync
        // the directory. A crash leaves either no key or the whole key.
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| Error::internal_from("random source", e))?;
        let tmp = self.dir.join(format!(".{id}.tmp-{:016x}", u64::from_le_bytes(suffix)));
        let written = (|| {
            let mut file = private_file(&tmp)?;
            let mut text = key.to_hex();
            text.push('\n');
            let result = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
            text.zeroize();
            result?;
            fs::hard_link(&tmp, &path)
        })();
        let _ = fs::remove_file(&tmp);
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Conflict(format!(
                    "key {id} already exists in keyring {}",
                    self.dir.display()
                )));
            }
            Err(e) => return Err(self.io("creating", id, e)),
        }
        self.sync_dir().map_err(|e| self.io("creating", id, e))?;
        Ok(key)
    }

    fn destroy(&self, id: &str) -> Result<()> {
        let path = self.file(id)?;
        // Overwrite the bytes in place before unlinking, so the file system's free blocks do
        // not keep the key (as far as an overwrite in place reaches on this file system).
        let overwrite = || -> std::io::Result<()> {
            let mut file = OpenOptions::new().write(true).open(&path)?;
            let len = file.metadata()?.len();
            file.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0).max(2 * KEY_LEN + 1)])?;
            file.sync_all()
        };
        match overwrite() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            other => other.map_err(|e| self.io("destroying", id, e))?,
        }
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(self.io("destroying", id, e))
            }
            _ => {}
        }
        self.sync_dir().map_err(|e| self.io("destroying", id, e))
    }

    fn describe(&self) -> String {
        format!("keyring directory {}", self.dir.display())
    }
}

/// `path` made absolute with its existing part's symbolic links and `..` resolved (the rest,
/// not yet created, is resolved by its words).
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        let Some(parent) = existing.parent() else { break };
        rest.push(existing.file_name().map(std::ffi::OsStr::to_os_string));
        existing = parent;
    }
    let mut resolved = existing.canonicalize()?;
    for part in rest.into_iter().rev() {
        match part {
            Some(name) => resolved.push(name),
            None => {
                resolved.pop();
            }
        }
    }
    Ok(resolved)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        Error::internal_from(format!("creating keyring directory {}", dir.display()), e)
    })
}

/// Keys from the process environment: key `id` is the variable `MEMSILO_KEY_<ID>`, where
/// `<ID>` is the id in upper case with `-` and `.` written as `_`, holding 64 hex digits or
/// base64 of 32 bytes. Read-only: `create` succeeds only for a key already there (returning
/// it) and `destroy` is refused while it is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvKeys;

impl EnvKeys {
    /// The variable holding key `id`.
    pub fn variable(id: &str) -> Result<String> {
        validate_key_id(id)?;
        let name: String = id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
            .collect();
        Ok(format!("{ENV_PREFIX}{name}"))
    }
}

impl KeyProvider for EnvKeys {
    fn get(&self, id: &str) -> Result<Option<Key>> {
        let var = Self::variable(id)?;
        match std::env::var(&var) {
            Ok(mut text) => {
                let key = Key::parse(&text, &format!("environment variable {var}"));
                text.zeroize();
                key.map(Some)
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::invalid(
                FIELD,
                format!("environment variable {var} is not a key: not UTF-8"),
            )),
        }
    }

    fn create(&self, id: &str) -> Result<Key> {
        let var = Self::variable(id)?;
        self.get(id)?.ok_or_else(|| {
            Error::invalid(
                FIELD,
                format!(
                    "key {id} is not in the environment and the environment keyring is read-only: set {var} (64 hex digits) or use a keyring directory"
                ),
            )
        })
    }

    fn destroy(&self, id: &str) -> Result<()> {
        let var = Self::variable(id)?;
        if std::env::var_os(&var).is_none() {
            return Ok(());
        }
        Err(Error::invalid(
            FIELD,
            format!(
                "key {id} comes from the environment and the environment keyring is read-only: unset {var} where it is configured to destroy it"
            ),
        ))
    }

    fn describe(&self) -> String {
        format!("environment ({ENV_PREFIX}<ID>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn a_key_never_shows_its_bytes() {
        let key = Key::from_bytes([0xab; KEY_LEN]);
        assert_eq!(format!("{key:?}"), "Key(..)");
        assert_eq!(key.to_hex(), "ab".repeat(KEY_LEN));
    }

    #[test]
    fn generated_keys_differ() {
        let (a, b) = (Key::generate().unwrap(), Key::generate().unwrap());
        assert_ne!(a, b);
        assert_ne!(a.as_bytes(), &[0u8; KEY_LEN]);
    }

    #[test]
    fn keys_parse_from_hex_and_base64_and_nothing_else() {
        let key = Key::from_bytes(std::array::from_fn(|i| i as u8));
        assert_eq!(Key::parse(&key.to_hex(), "x").unwrap(), key);
        assert_eq!(Key::parse(&key.to_hex().to_uppercase(), "x").unwrap(), key);
        let b64 = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
        assert_eq!(Key::parse(&format!(" {b64}\n"), "x").unwrap(), key);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes());
        assert_eq!(Key::parse(&url, "x").unwrap(), key);
        for bad in ["", "abcd", &"g".repeat(64), &"ab".repeat(31)] {
            let e = Key::parse(bad, "variable X").unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument);
            assert!(e.to_string().starts_with("encryption_key_id: variable X is not a key"), "{e}");
        }
    }

    #[test]
    fn key_ids_are_checked_and_errors_name_the_field() {
        for good in ["k", "tenant-acme.2026_01", &"a".repeat(MAX_KEY_ID_LEN)] {
            validate_key_id(good).unwrap();
        }
        for bad in ["", ".hidden", "..", "a/b", "a b", "ключ", &"a".repeat(MAX_KEY_ID_LEN + 1)]
        {
            let e = validate_key_id(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad}");
            assert!(e.to_string().starts_with("encryption_key_id: "), "{e}");
        }
    }

    #[test]
    fn a_keyring_directory_creates_gets_and_destroys_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let ring = KeyringDir::open(tmp.path().join("keys"), None).unwrap();
        assert!(ring.get("acme").unwrap().is_none());
        let key = ring.create("acme").unwrap();
        assert_eq!(ring.get("acme").unwrap().as_ref(), Some(&key));
        // Reopened (another process), the key is the same.
        let again = KeyringDir::open(tmp.path().join("keys"), None).unwrap();
        assert_eq!(again.get("acme").unwrap(), Some(key.clone()));
        // A key is never replaced.
        let e = ring.create("acme").unwrap_err();
        assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
        assert_eq!(ring.get("acme").unwrap(), Some(key.clone()));
        assert_eq!(get_or_create(&ring, "acme").unwrap(), key);
        // Only the key's file is left: no temporary files.
        let names: Vec<_> = fs::read_dir(ring.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["acme"]);
        ring.destroy("acme").unwrap();
        assert!(ring.get("acme").unwrap().is_none());
        assert_eq!(fs::read_dir(ring.path()).unwrap().count(), 0);
        // Destroying again (a repeated, interrupted destruction) succeeds.
        ring.destroy("acme").unwrap();
        let e = ring.get("../acme").unwrap_err();
        assert!(e.to_string().starts_with("encryption_key_id: "), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn keyring_files_and_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let ring = KeyringDir::open(tmp.path().join("keys"), None).unwrap();
        ring.create("acme").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ring.path().join("acme")), 0o600);
        assert_eq!(mode(ring.path()), 0o700);
    }

    #[test]
    fn a_keyring_inside_the_data_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir(&data).unwrap();
        let e = KeyringDir::open(data.join("keys"), Some(&data)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.to_string().contains("keys are never written next to the data"), "{e}");
        assert!(!data.join("keys").exists(), "a refused keyring directory is not created");
        let e = KeyringDir::open(&data, Some(&data)).unwrap_err();
        assert!(e.to_string().starts_with("keyring: "), "{e}");
        KeyringDir::open(tmp.path().join("keys"), Some(&data)).unwrap();
        // The same refusal through the setting, whatever the spelling of the path.
        let e = provider_for(&data.join("../data/k"), &data).err().unwrap();
        assert!(e.to_string().contains("inside the data directory"), "{e}");
        assert_eq!(provider_for(Path::new("env:"), &data).unwrap().describe(), EnvKeys.describe());
    }

    #[test]
    fn environment_keys_are_read_only() {
        let key = Key::from_bytes([7; KEY_LEN]);
        assert_eq!(EnvKeys::variable("tenant-acme.v2").unwrap(), "MEMSILO_KEY_TENANT_ACME_V2");
        // This test alone uses these variable names.
        std::env::set_var("MEMSILO_KEY_UNIT_ENV_SET", key.to_hex());
        let env = EnvKeys;
        assert_eq!(env.get("unit-env-set").unwrap(), Some(key.clone()));
        assert_eq!(env.create("unit-env-set").unwrap(), key);
        assert_eq!(get_or_create(&env, "unit-env-set").unwrap(), key);
        assert!(env.get("unit-env-unset").unwrap().is_none());
        let e = env.create("unit-env-unset").unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.to_string().contains("set MEMSILO_KEY_UNIT_ENV_UNSET"), "{e}");
        let e = env.destroy("unit-env-set").unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
        env.destroy("unit-env-unset").unwrap();
        std::env::set_var("MEMSILO_KEY_UNIT_ENV_BAD", "not a key");
        let e = env.get("unit-env-bad").unwrap_err();
        assert!(e.to_string().contains("environment variable MEMSILO_KEY_UNIT_ENV_BAD"), "{e}");
    }
}
