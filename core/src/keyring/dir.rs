//! [`KeyringDir`]: keys kept as files of a private directory, outside the data directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroize;

use super::{validate_key_id, Key, KeyProvider, KEY_LEN};
use crate::error::{Error, Result};

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
