//! The data directory's storage format, recorded in a plain file at its top (`storage.json`)
//! so that a directory is known before any environment in it is opened.
//!
//! Format 2 is LMDB mdb.master3 (heed3), the first with page encryption. Directories of
//! memsilo 0.1.0 (LMDB 0.9 through heed 0.23, which mdb.master3 does not read) have no such
//! file but have a catalog: they are refused at open, with the command that converts them.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The file's name under the data directory.
pub(crate) const FILE: &str = "storage.json";

/// The format this version writes and opens.
pub(crate) const CURRENT: u32 = 2;

/// What `storage.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Format {
    /// Storage format number ([`CURRENT`]).
    pub format: u32,
    /// The LMDB branch the environments are written with.
    pub lmdb: String,
}

impl Format {
    fn current() -> Format {
        Format { format: CURRENT, lmdb: "mdb.master3".into() }
    }
}

/// Checks the data directory `dir` before its environments are opened: a directory in the
/// current format passes, a new one is marked with it, and any other is refused naming
/// what it is and how to convert it.
pub(crate) fn check_or_mark(dir: &Path) -> Result<Format> {
    let path = dir.join(FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let found: Format = serde_json::from_slice(&bytes)
                .map_err(|e| Error::internal_from(format!("reading {}", path.display()), e))?;
            if found.format != CURRENT {
                return Err(Error::invalid(
                    "path",
                    format!(
                        "data directory {} is in storage format {}; this version of memsilo \
                         opens format {CURRENT} only",
                        dir.display(),
                        found.format
                    ),
                ));
            }
            Ok(found)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.join("catalog").join("data.mdb").exists() {
                return Err(Error::UpgradeRequired {
                    dir: dir.display().to_string(),
                    version: "0.1.0".into(),
                });
            }
            let format = Format::current();
            write_synced(dir, &path, &serde_json::to_vec_pretty(&format)?)?;
            Ok(format)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `dir` is marked as in the current format (its `storage.json` says so).
pub(crate) fn is_current(dir: &Path) -> Result<bool> {
    let path = dir.join(FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let found: Format = serde_json::from_slice(&bytes)
                .map_err(|e| Error::internal_from(format!("reading {}", path.display()), e))?;
            Ok(found.format == CURRENT)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Marks `dir` as in the current format, synced: the last step of `memsilo upgrade`'s copy.
pub(crate) fn mark_current(dir: &Path) -> Result<()> {
    write_synced(dir, &dir.join(FILE), &serde_json::to_vec_pretty(&Format::current())?)
}

/// Writes `bytes` to `path` (in directory `dir`) through a temporary file, synced and
/// renamed, so the file is whole or absent after a crash.
fn write_synced(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_is_marked_and_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_or_mark(dir.path()).unwrap(), Format::current());
        let written = fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(written.contains("\"format\": 2"), "{written}");
        assert_eq!(check_or_mark(dir.path()).unwrap(), Format::current());
    }

    #[test]
    fn a_directory_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), r#"{"format": 3, "lmdb": "x"}"#).unwrap();
        let e = check_or_mark(dir.path()).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidArgument);
        assert!(e.to_string().contains("storage format 3"), "{e}");
    }
}
