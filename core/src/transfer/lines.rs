//! Reading lines of an export: each line's kind and fields, and the batches an import is
//! applied in (one kind per batch, in file order).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ImportArgs, Kind, MAX_LINE_BYTES, MAX_PAGE};
use crate::error::{Error, Result};

/// Reads one line of an export: a JSON object with a known `kind`. Errors name the line.
pub fn parse_line(number: u64, text: &[u8]) -> Result<(Kind, Map<String, Value>)> {
    let bad = |reason: String| Error::invalid(format!("line {number}"), reason);
    if text.len() > MAX_LINE_BYTES {
        return Err(bad(format!("longer than {MAX_LINE_BYTES} bytes")));
    }
    let value: Value = serde_json::from_slice(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(bad("not a JSON object".into()));
    };
    let kind = line_kind(&map).map_err(bad)?;
    Ok((kind, map))
}

/// The kind of one line of an export, as [`parse_line`] reads it (with its errors) but without
/// building the line: a line that is a JSON object with a known `kind` string is only checked.
pub(crate) fn line_head(number: u64, text: &[u8]) -> Result<Kind> {
    head_and_text(number, text).map(|(kind, _)| kind)
}

/// [`line_head`], and the line as text when it was checked to be UTF-8 on the way (a line of
/// a kind is always UTF-8, being JSON; `None` says only that it was not checked so).
fn head_and_text(number: u64, text: &[u8]) -> Result<(Kind, Option<&str>)> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    let object = text.len() <= MAX_LINE_BYTES
        && text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if let Some(line) = object.then(|| std::str::from_utf8(text).ok()).flatten() {
        if let Ok(head) = serde_json::from_str::<Head<'_>>(line) {
            if let Ok(kind) = kind_named(Some(&head.kind)) {
                return Ok((kind, Some(line)));
            }
        }
    }
    // Anything else (not JSON, not an object, no kind, ...) as parse_line says it.
    parse_line(number, text).map(|(kind, _)| (kind, None))
}

/// The embedder a namespace line names for its file's vectors (`memsilo-export/3` on; lines of
/// earlier formats have none, and their vectors are caller vectors).
pub(crate) fn source_embedder(map: &Map<String, Value>) -> Option<String> {
    map.get("embedder").and_then(Value::as_str).map(str::to_owned)
}

pub(crate) fn line_kind(map: &Map<String, Value>) -> std::result::Result<Kind, String> {
    kind_named(map.get("kind").and_then(Value::as_str))
}

pub(super) fn kind_named(kind: Option<&str>) -> std::result::Result<Kind, String> {
    match kind {
        Some("namespace") => Ok(Kind::Namespace),
        Some("entity") => Ok(Kind::Entity),
        Some("relation") => Ok(Kind::Relation),
        Some("memory") => Ok(Kind::Memory),
        Some(other) => Err(format!("unknown kind {other:?}")),
        None => Err("no `kind` (namespace, entity, relation or memory)".into()),
    }
}

/// Splits a stream of lines into import batches: at most `size` lines, one kind each (so a
/// batch is one transaction). Blank lines are skipped but counted.
pub struct Batcher {
    size: usize,
    embedder: Option<String>,
    next_line: u64,
    pending: Vec<Value>,
    pending_kind: Option<Kind>,
    first: u64,
}

/// A batch ready to import.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Number of its first line.
    pub first_line: u64,
    /// Its lines.
    pub lines: Vec<Value>,
    /// The vectors' embedder named by the file's namespace line (see [`ImportArgs::embedder`]).
    pub embedder: Option<String>,
}

impl Batch {
    /// The `import_namespace` arguments of this batch into `namespace`.
    pub fn into_args(self, namespace: &str) -> ImportArgs {
        ImportArgs {
            namespace: namespace.to_owned(),
            lines: self.lines,
            first_line: Some(self.first_line),
            embedder: self.embedder,
        }
    }
}

impl Batcher {
    /// A batcher of `size` lines (at least 1).
    pub fn new(size: usize) -> Self {
        Batcher {
            size: size.max(1),
            embedder: None,
            next_line: 1,
            pending: Vec::new(),
            pending_kind: None,
            first: 1,
        }
    }

    /// Takes the next line; returns a batch when one is full or the kind changes.
    pub fn push(&mut self, text: &[u8]) -> Result<Option<Batch>> {
        let number = self.next_line;
        self.next_line += 1;
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let (kind, checked) = head_and_text(number, text)?;
        if kind == Kind::Namespace {
            self.embedder = source_embedder(&parse_line(number, text)?.1);
        }
        // The line goes on as its text (an import reads a memory line once, typed).
        let line = match checked.map_or_else(|| std::str::from_utf8(text), Ok) {
            Ok(t) => Value::String(t.to_owned()),
            Err(_) => Value::Object(parse_line(number, text)?.1),
        };
        let mut out = None;
        if self.pending_kind.is_some_and(|k| k != kind) || self.pending.len() >= self.size {
            out = self.take();
        }
        if self.pending.is_empty() {
            self.first = number;
        }
        self.pending_kind = Some(kind);
        self.pending.push(line);
        Ok(out)
    }

    /// The last, partial batch.
    pub fn finish(&mut self) -> Option<Batch> {
        self.take()
    }

    fn take(&mut self) -> Option<Batch> {
        self.pending_kind = None;
        if self.pending.is_empty() {
            return None;
        }
        Some(Batch {
            first_line: self.first,
            lines: std::mem::take(&mut self.pending),
            embedder: self.embedder.clone(),
        })
    }
}

/// The text of an export arriving in chunks cut anywhere (inside a line too), read as import
/// batches: lines as [`Batcher`] reads them, in batches of its size.
pub struct ChunkBatcher {
    batcher: Batcher,
    /// Text fed and not yet read from `start` on (at most a partial line once read).
    text: Vec<u8>,
    start: usize,
    /// Lines read so far.
    lines: u64,
}

impl ChunkBatcher {
    /// Batches of `size` lines.
    pub fn new(size: usize) -> Self {
        ChunkBatcher { batcher: Batcher::new(size), text: Vec::new(), start: 0, lines: 0 }
    }

    /// Appends the next chunk of the text.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.text.drain(..self.start);
        self.start = 0;
        self.text.extend_from_slice(chunk);
    }

    /// The next full batch of the text fed so far, or `None` until more is fed. A bad line
    /// (or a partial line longer than [`MAX_LINE_BYTES`]) is an error naming it.
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        while let Some(end) = self.text[self.start..].iter().position(|b| *b == b'\n') {
            let line = &self.text[self.start..self.start + end];
            self.start += end + 1;
            self.lines += 1;
            if let Some(batch) = self.batcher.push(line)? {
                return Ok(Some(batch));
            }
        }
        if self.text.len() - self.start > MAX_LINE_BYTES {
            return Err(Error::PayloadTooLarge {
                field: format!("line {}", self.lines + 1),
                reason: format!("longer than {MAX_LINE_BYTES} bytes"),
            });
        }
        Ok(None)
    }

    /// The batches left at the end of the text: its last line when no newline ends it, and
    /// the last, partial batch (at most two batches).
    pub fn finish(&mut self) -> Result<Vec<Batch>> {
        let mut out = Vec::new();
        while let Some(batch) = self.next_batch()? {
            out.push(batch);
        }
        if self.start < self.text.len() {
            let rest = self.text.split_off(self.start);
            (self.text, self.start) = (Vec::new(), 0);
            out.extend(self.batcher.push(&rest)?);
        }
        out.extend(self.batcher.finish());
        Ok(out)
    }
}

/// `batch_size` as an import takes it (what the streamed route's `page_size` takes).
pub fn check_batch_size(batch_size: usize) -> Result<()> {
    if (1..=MAX_PAGE).contains(&batch_size) {
        Ok(())
    } else {
        Err(Error::invalid("batch_size", format!("must be between 1 and {MAX_PAGE}")))
    }
}
