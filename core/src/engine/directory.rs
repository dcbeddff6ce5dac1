//! The data directory's lock: one process per directory.

use std::path::Path;

use crate::error::{Error, Result};

/// Takes the data directory's exclusive lock: one process per directory. LMDB itself would
/// allow several, but the engine keeps per-process state that another process's writes
/// would make stale (vector caches, storage usage, key caches), and a purge's compaction
/// replaces files another process still has mapped, losing its later writes. A second
/// process gets `conflict`; it should talk to the first one's server instead.
pub(crate) fn lock_directory(dir: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("LOCK");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    if !try_lock_exclusive(&file)? {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        let by = if holder.is_empty() { String::new() } else { format!(" (pid {holder})") };
        return Err(Error::Conflict(format!(
            "data directory {} is open in another process{by}; one process may open it at a time \
             (connect to that process's server instead)",
            dir.display()
        )));
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

#[cfg(unix)]
fn try_lock_exclusive(file: &std::fs::File) -> Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this function borrows; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err.into())
    }
}

#[cfg(not(unix))]
fn try_lock_exclusive(_file: &std::fs::File) -> Result<bool> {
    Ok(true)
}
