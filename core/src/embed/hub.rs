//! Downloading a model's files from the Hugging Face hub (or a mirror: `MEMSILO_HF_ENDPOINT`,
//! `HF_ENDPOINT`), with a progress line on stderr and a checksum.
//!
//! The hub answers `GET {endpoint}/{repo}/resolve/main/{file}` for a large (LFS) file with a
//! redirect carrying `X-Linked-Etag: "<sha256 of the file>"`, and for a small file with an
//! `ETag` that is the git blob SHA-1. Each file is checked against whichever the hub gave, and
//! the files go into place only once all of them arrived whole: a model directory is never
//! half-written.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::Digest;

use crate::error::{Error, Result};

/// Files of a model directory, in download order.
pub(crate) const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Largest file accepted (a model matrix of a few hundred MB at most).
const MAX_FILE_BYTES: u64 = 4 << 30;

fn fetch_error(url: &str, reason: impl std::fmt::Display) -> Error {
    Error::Internal(format!("download {url}: {reason}"))
}

/// A download that failed underneath (the connection, a read): that failure is the cause.
fn fetch_failed(url: &str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::internal_from(format!("download {url}"), source)
}

/// Downloads `repo`'s model files from `endpoint` into `dest` (which must not exist yet; it is
/// created by renaming a complete temporary directory beside it).
pub(crate) fn download(endpoint: &str, repo: &str, dest: &Path) -> Result<()> {
    let parent = dest.parent().ok_or_else(|| Error::Internal("model path has no parent".into()))?;
    std::fs::create_dir_all(parent)?;
    let partial = parent.join(format!(
        ".{}.partial-{}",
        super::models::dir_model_name(dest),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    let result = (|| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent(concat!("memsilo/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        for file in MODEL_FILES {
            let url = format!("{}/{repo}/resolve/main/{file}", endpoint.trim_end_matches('/'));
            fetch_file(&agent, &url, file, &partial.join(file))?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => match std::fs::rename(&partial, dest) {
            // Another process finished the same download first: use its copy.
            Err(_) if dest.join("model.safetensors").exists() => {
                let _ = std::fs::remove_dir_all(&partial);
                Ok(())
            }
            other => other.map_err(Error::from),
        },
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

/// The checksum the hub gave for a file.
enum Expected {
    Sha256(String),
    GitBlobSha1(String),
    None,
}

fn expected_from(headers: &ureq::http::HeaderMap) -> Expected {
    let tag = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().trim_start_matches("W/").trim_matches('"').to_ascii_lowercase())
    };
    let hex = |s: &String, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    match tag("x-linked-etag").or_else(|| tag("etag")) {
        Some(t) if hex(&t, 64) => Expected::Sha256(t),
        Some(t) if hex(&t, 40) => Expected::GitBlobSha1(t),
        _ => Expected::None,
    }
}

fn fetch_file(agent: &ureq::Agent, url: &str, file: &str, out: &Path) -> Result<()> {
    let mut url = url.to_owned();
    let mut expected = Expected::None;
    let mut response = None;
    for _ in 0..5 {
        let r = agent.get(&url).call().map_err(|e| fetch_failed(&url, e))?;
        if matches!(expected, Expected::None) {
            expected = expected_from(r.headers());
        }
        if r.status().is_redirection() {
            let location = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| fetch_error(&url, "redirect without a location"))?;
            url = resolve_location(&url, location);
            continue;
        }
        if !r.status().is_success() {
            return Err(fetch_error(&url, format!("HTTP {}", r.status())));
        }
        response = Some(r);
        break;
    }
    let mut response = response.ok_or_else(|| fetch_error(&url, "too many redirects"))?;
    let total: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut reader = response.body_mut().with_config().limit(MAX_FILE_BYTES).reader();
    let mut sink = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut sha256 = sha2::Sha256::new();
    let mut bytes = Vec::new();
    let mut progress = Progress::new(file, total);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| fetch_failed(&url, e))?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        if matches!(expected, Expected::GitBlobSha1(_)) {
            bytes.extend_from_slice(&buf[..n]);
        }
        sink.write_all(&buf[..n])?;
        progress.advance(n as u64);
    }
    sink.flush()?;
    sink.get_ref().sync_all()?;
    progress.finish();
    let got = progress.done;
    if total.is_some_and(|t| t != got) {
        return Err(fetch_error(&url, format!("got {got} bytes of {}", total.unwrap_or(0))));
    }
    let ok = match &expected {
        Expected::Sha256(want) => hex(&sha256.finalize()) == *want,
        Expected::GitBlobSha1(want) => git_blob_sha1(&bytes) == *want,
        Expected::None => true,
    };
    if !ok {
        return Err(fetch_error(&url, "checksum mismatch (the file arrived corrupted)"));
    }
    Ok(())
}

fn resolve_location(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    // A relative redirect: keep the scheme and authority of `base`.
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[after_scheme..].find('/').map_or(base.len(), |i| after_scheme + i);
    format!("{}/{}", &base[..authority_end], location.trim_start_matches('/'))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Git's object id of a blob: SHA-1 over `blob <len>\0` and the content.
fn git_blob_sha1(content: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    hex(&h.finalize())
}

/// The `tracing` target of download progress events. Each event has the fields `file`,
/// `done` (bytes so far), `total` (bytes, when the server sent a length) and `finished`; the
/// command line draws them as a progress bar (memsilo-http's `log`), a library user's
/// subscriber gets them like any other event. Nothing is printed by the library itself.
pub const DOWNLOAD_PROGRESS: &str = "memsilo::download";

/// A file's download progress, reported at most once a percent (once a MB without a length).
struct Progress {
    file: String,
    total: Option<u64>,
    done: u64,
    shown: u64,
}

impl Progress {
    fn new(file: &str, total: Option<u64>) -> Self {
        Progress { file: file.to_owned(), total, done: 0, shown: u64::MAX }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        let step = self.total.map_or(1 << 20, |t| (t / 100).max(1));
        if self.shown == u64::MAX || self.done / step != self.shown / step {
            self.shown = self.done;
            self.report(false);
        }
    }

    fn report(&self, finished: bool) {
        tracing::info!(
            target: DOWNLOAD_PROGRESS,
            file = self.file.as_str(),
            done = self.done,
            total = self.total,
            finished,
            "downloading {}",
            self.file
        );
    }

    fn finish(&self) {
        self.report(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(git_blob_sha1(b"hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
    }

    #[test]
    fn relative_redirects_keep_the_host() {
        assert_eq!(
            resolve_location("http://127.0.0.1:9/a/resolve/main/x", "/cdn/x?sig=1"),
            "http://127.0.0.1:9/cdn/x?sig=1"
        );
        assert_eq!(resolve_location("http://h/a", "https://cdn/x"), "https://cdn/x");
    }
}
