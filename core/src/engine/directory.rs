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
    if !lock_within(&file, LOCK_WAIT)? {
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

/// How long `lock_directory` waits for a lock held by another process to be released before
/// answering `conflict`. A process that has just closed the directory can still hold the lock
/// for a moment: it is exiting, or a child it forked has not reached `exec` yet (a `flock`
/// belongs to the open file, which a fork shares until the child's `exec` closes it). A
/// process that really has the directory open holds it far longer than this.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Tries the lock until it is had or `wait` has passed.
fn lock_within(file: &std::fs::File, wait: std::time::Duration) -> Result<bool> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if try_lock_exclusive(file)? {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
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
