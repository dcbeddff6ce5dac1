//! The reader of `memsilo-dump-v0`'s stream (its framing is specified in
//! `tools/dump-v0/src/main.rs`): frames checked as they come, each environment's row count and
//! SHA-256 compared with the dump's own at its end, and the stream's end frame required.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const MAGIC: &[u8; 16] = b"MEMSILO-DUMP-V0\n";
const VERSION: u32 = 1;

/// An environment as the dump lists it: its path under the data directory and its tables'
/// row counts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct EnvListing {
    pub path: String,
    pub tables: BTreeMap<String, u64>,
}

impl EnvListing {
    pub(crate) fn rows(&self) -> u64 {
        self.tables.values().sum()
    }
}

#[derive(Deserialize)]
struct Header {
    version: u32,
    environments: Vec<EnvListing>,
}

#[derive(Deserialize)]
struct EnvEnd {
    path: String,
    rows: u64,
    sha256: String,
}

#[derive(Deserialize)]
struct StreamEnd {
    environments: u64,
    rows: u64,
}

/// What the reader hands the loader, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Item {
    /// An environment begins.
    Env(EnvListing),
    /// A table of it begins.
    Table(String),
    /// A row of that table.
    Row(Vec<u8>, Vec<u8>),
    /// The environment ended, its rows and checksum verified.
    EnvEnd,
}

/// Reads a dump stream, verifying it as it goes.
pub(crate) struct DumpReader<R> {
    input: R,
    /// The environments the header lists.
    pub environments: Vec<EnvListing>,
    current: Option<(EnvListing, Sha256, u64)>,
    seen_envs: u64,
    seen_rows: u64,
    ended: bool,
    frame: Vec<u8>,
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::Internal(format!("the 0.1.0 dump stream is not valid: {what}"))
}

impl<R: Read> DumpReader<R> {
    /// Reads the magic bytes and the header.
    pub(crate) fn new(mut input: R) -> Result<Self> {
        let mut magic = [0u8; 16];
        input.read_exact(&mut magic).map_err(|e| {
            Error::internal_from(
                "the 0.1.0 dump stream was cut short (did memsilo-dump-v0 fail?)",
                e,
            )
        })?;
        if &magic != MAGIC {
            return Err(bad("it does not start with MEMSILO-DUMP-V0"));
        }
        let mut reader = DumpReader {
            input,
            environments: Vec::new(),
            current: None,
            seen_envs: 0,
            seen_rows: 0,
            ended: false,
            frame: Vec::new(),
        };
        let (tag, payload) = reader.next_frame()?;
        if tag != b'H' {
            return Err(bad("no header"));
        }
        let header: Header = serde_json::from_slice(payload).map_err(bad)?;
        if header.version != VERSION {
            return Err(bad(format!("version {} (this memsilo reads {VERSION})", header.version)));
        }
        reader.environments = header.environments;
        Ok(reader)
    }

    fn next_frame(&mut self) -> Result<(u8, &[u8])> {
        let mut head = [0u8; 5];
        self.input.read_exact(&mut head).map_err(|e| {
            Error::internal_from(
                "the 0.1.0 dump stream was cut short (did memsilo-dump-v0 fail?)",
                e,
            )
        })?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        self.frame.resize(5 + len, 0);
        self.frame[..5].copy_from_slice(&head);
        self.input
            .read_exact(&mut self.frame[5..])
            .map_err(|e| Error::internal_from("the 0.1.0 dump stream was cut short", e))?;
        Ok((head[0], &self.frame[5..]))
    }

    /// The next item, or `None` after the stream's verified end.
    pub(crate) fn next_item(&mut self) -> Result<Option<Item>> {
        if self.ended {
            return Ok(None);
        }
        let (tag, _) = self.next_frame()?;
        let payload = &self.frame[5..];
        match (tag, &mut self.current) {
            (b'E', None) => {
                let env: EnvListing = serde_json::from_slice(payload).map_err(bad)?;
                let listed = self.environments.get(self.seen_envs as usize);
                if listed != Some(&env) {
                    return Err(bad(format!("environment {} is not the header's next", env.path)));
                }
                self.current = Some((env.clone(), Sha256::new(), 0));
                Ok(Some(Item::Env(env)))
            }
            (b'T', Some((env, hash, _))) => {
                hash.update(&self.frame);
                let name = String::from_utf8(payload.to_vec()).map_err(bad)?;
                if !env.tables.contains_key(&name) {
                    return Err(bad(format!("{}: table {name} is not in its listing", env.path)));
                }
                Ok(Some(Item::Table(name)))
            }
            (b'R', Some((_, hash, rows))) => {
                hash.update(&self.frame);
                *rows += 1;
                if payload.len() < 4 {
                    return Err(bad("a row frame without its key length"));
                }
                let klen = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
                let (key, value) = payload[4..]
                    .split_at_checked(klen as usize)
                    .ok_or_else(|| bad("a row's key overruns its frame"))?;
                Ok(Some(Item::Row(key.to_vec(), value.to_vec())))
            }
            (b'e', Some(_)) => {
                let end: EnvEnd = serde_json::from_slice(payload).map_err(bad)?;
                let (env, hash, rows) = self.current.take().unwrap_or_else(|| unreachable!());
                let sha = crate::auth::to_hex(&hash.finalize());
                if end.path != env.path
                    || end.rows != rows
                    || rows != env.rows()
                    || end.sha256 != sha
                {
                    return Err(bad(format!(
                        "{}: {rows} rows received with SHA-256 {sha}; the dump read {} ({} listed) \
                         with {}",
                        env.path,
                        end.rows,
                        env.rows(),
                        end.sha256
                    )));
                }
                self.seen_envs += 1;
                self.seen_rows += rows;
                Ok(Some(Item::EnvEnd))
            }
            (b'Z', None) => {
                let end: StreamEnd = serde_json::from_slice(payload).map_err(bad)?;
                let listed = self.environments.len() as u64;
                if end.environments != self.seen_envs
                    || self.seen_envs != listed
                    || end.rows != self.seen_rows
                {
                    return Err(bad(format!(
                        "it ended after {} of {listed} environments and {} rows; the dump counted {} and {}",
                        self.seen_envs, self.seen_rows, end.environments, end.rows
                    )));
                }
                self.ended = true;
                Ok(None)
            }
            (tag, _) => Err(bad(format!("unexpected frame {:?}", char::from(tag)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
        out.push(tag);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
    }

    /// A stream of one environment with one table of two rows, as memsilo-dump-v0 writes it.
    fn stream(tamper: impl Fn(&mut Vec<u8>, &mut Vec<u8>)) -> Vec<u8> {
        let listing = br#"{"path":"catalog","tables":{"meta":2}}"#;
        let mut out = MAGIC.to_vec();
        frame(&mut out, b'H', br#"{"version":1,"source":"t","environments":[{"path":"catalog","tables":{"meta":2}}]}"#);
        frame(&mut out, b'E', listing);
        let mut body = Vec::new();
        frame(&mut body, b'T', b"meta");
        for (k, v) in [(&b"a"[..], &b"1"[..]), (b"b", b"22")] {
            let mut p = (k.len() as u32).to_le_bytes().to_vec();
            p.extend_from_slice(k);
            p.extend_from_slice(v);
            frame(&mut body, b'R', &p);
        }
        let sha = crate::auth::to_hex(&Sha256::digest(&body));
        let mut tail = Vec::new();
        tamper(&mut body, &mut tail);
        out.extend_from_slice(&body);
        let end = format!(r#"{{"path":"catalog","rows":2,"sha256":"{sha}"}}"#);
        frame(&mut out, b'e', end.as_bytes());
        frame(&mut out, b'Z', br#"{"environments":1,"rows":2}"#);
        out.extend_from_slice(&tail);
        out
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Item>> {
        let mut r = DumpReader::new(bytes)?;
        let mut items = Vec::new();
        while let Some(item) = r.next_item()? {
            items.push(item);
        }
        Ok(items)
    }

    #[test]
    fn a_whole_stream_is_read_and_verified() {
        let items = read_all(&stream(|_, _| {})).unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(items[2], Item::Row(b"a".to_vec(), b"1".to_vec()));
        assert_eq!(items[3], Item::Row(b"b".to_vec(), b"22".to_vec()));
    }

    #[test]
    fn a_changed_byte_a_lost_row_or_a_cut_is_refused() {
        let flipped = stream(|body, _| *body.last_mut().unwrap() ^= 1);
        let e = read_all(&flipped).unwrap_err().to_string();
        assert!(e.contains("SHA-256"), "{e}");
        let short = stream(|body, _| body.truncate(body.len() - 7));
        assert!(read_all(&short).is_err());
        let whole = stream(|_, _| {});
        for cut in [10, 40, whole.len() - 3] {
            let e = read_all(&whole[..cut]).unwrap_err().to_string();
            assert!(e.contains("cut short") || e.contains("not valid"), "{cut}: {e}");
        }
        let e = DumpReader::new(&b"not a dump stream at all"[..]).err().unwrap().to_string();
        assert!(e.contains("MEMSILO-DUMP-V0"), "{e}");
    }
}
