//! [`Importer`]: one import fed the text of an export in chunks of any size, the way every face
//! imports (Python, Node, Go and C give it what they read; each face only converts). How it
//! runs depends on the handle ([`Backend::importer`]): in process, the batches go to
//! [`Handle::import_batches`] on a thread of their own, which checks the next batch while one is
//! written; on a remote handle the bytes go to the server as one streamed request body, which
//! the server imports the same way; where the server takes no streamed body (a cluster node),
//! each batch is one `import_namespace` call ([`Importer::by_calls`]).
//!
//! Each batch is all or nothing and an import stops at the first failure, naming its line: the
//! batches before the failing one are written, the failing batch (and so the lines before the
//! bad line in that batch) and everything after it are not. The error says so, however the
//! import ran: it keeps the failure's code and words, and [`Error::imported`] (the error
//! body's `imported`) is what the batches before it wrote, [`Error::line`] (`line`) the line
//! it names. Importing again is idempotent (see the module docs), so a failed import is run
//! again from the start once the line is fixed.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use super::Backend;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::transfer::{check_batch_size, Batch, ChunkBatcher, ImportSummary};

/// One way of running an [`Importer`]: in process, streamed to a server, or a call a batch.
pub trait ImportRun: Send {
    /// Takes the next chunk of the text. An error ends the import: it is the import's
    /// error (the first failure, naming its line), after the batches before it are written.
    fn feed(&mut self, chunk: &[u8]) -> Result<()>;
    /// Ends the text and answers once every batch is written.
    fn finish(self: Box<Self>) -> Result<ImportSummary>;
}

/// An import under way: [`Importer::feed`] the text of an export (JSON Lines, in chunks cut
/// anywhere), then [`Importer::finish`] for what it wrote. Made by a handle's
/// [`Backend::importer`] (in process: [`Handle::importer`]). After an error, or
/// once finished, it takes nothing more. Dropped unfinished, the batches already handed on are
/// written and the rest of the text is not.
pub struct Importer {
    run: Option<Box<dyn ImportRun>>,
    /// Whether the text fed so far ends inside a line (see [`Importer::feed_lines`]).
    in_line: bool,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("open", &self.run.is_some())
            .field("in_line", &self.in_line)
            .finish()
    }
}

impl Importer {
    /// An importer that runs as `run` does.
    pub fn new(run: impl ImportRun + 'static) -> Importer {
        Importer { run: Some(Box::new(run)), in_line: false }
    }

    /// An import whose batches are one `import_namespace` call each on `backend`, one after
    /// the other (for a server that takes no streamed body).
    pub fn by_calls(
        backend: Box<dyn Backend>,
        namespace: &str,
        batch_size: usize,
    ) -> Result<Importer> {
        check_batch_size(batch_size)?;
        Ok(Importer::new(ByCalls {
            backend,
            namespace: namespace.to_owned(),
            lines: ChunkBatcher::new(batch_size),
            total: ImportSummary::default(),
        }))
    }

    /// Takes the next chunk of the text (any part of it: whole lines or not).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        let run = self.run.as_mut().ok_or_else(ended)?;
        let fed = run.feed(chunk);
        if fed.is_err() {
            self.run = None;
        }
        if let Some(last) = chunk.last() {
            self.in_line = *last != b'\n';
        }
        fed
    }

    /// Takes whole lines, one an item (what the items of a Python or Node iterable of lines
    /// are): each item is one line of the text, and one line in the numbers errors give,
    /// whatever it holds. A line break at its end is optional. One inside it (a JSON object
    /// written over several lines) is read as the carriage return JSON takes it for: the same
    /// whitespace between tokens, and refused inside a string as a line break is, so the item
    /// reads as it would over several lines while it stays one. Text fed before that ends
    /// inside a line ends there.
    pub fn feed_lines<'a>(&mut self, lines: impl IntoIterator<Item = &'a [u8]>) -> Result<()> {
        let mut text = Vec::new();
        if self.in_line {
            text.push(b'\n');
        }
        for line in lines {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            text.extend(line.iter().map(|&b| if b == b'\n' { b'\r' } else { b }));
            text.push(b'\n');
        }
        self.feed(&text)
    }

    /// Ends the text; what the import wrote once every batch is written.
    pub fn finish(&mut self) -> Result<ImportSummary> {
        self.run.take().ok_or_else(ended)?.finish()
    }
}

fn ended() -> Error {
    Error::invalid("importer", "this import has ended (finished, or stopped at an error)")
}

/// The thread an import writes on (its batches in process, its request body to a server), and
/// the import's answer once that ends.
pub struct ImportThread(Option<JoinHandle<Result<ImportSummary>>>);

impl ImportThread {
    /// Runs `run` on a thread of its own.
    pub fn spawn(
        run: impl FnOnce() -> Result<ImportSummary> + Send + 'static,
    ) -> Result<ImportThread> {
        std::thread::Builder::new()
            .name("memsilo-import".into())
            .spawn(run)
            .map(|done| ImportThread(Some(done)))
            .map_err(|e| Error::internal_from("cannot start the import's thread", e))
    }

    /// What the thread answered, once it has ended; the first call only (later ones: the
    /// import has ended).
    pub fn answer(&mut self) -> Result<ImportSummary> {
        match self.0.take().map(JoinHandle::join) {
            Some(Ok(answer)) => answer,
            Some(Err(_)) => Err(Error::Internal("the import's thread panicked".into())),
            None => Err(ended()),
        }
    }
}

impl Handle {
    /// An import into `namespace` in batches of `batch_size` lines, run in this process: the
    /// text is cut into batches as it is fed, and [`Handle::import_batches`] imports them on a
    /// thread of its own (reading and checking the next batch while one is written), so a
    /// caller feeding chunks keeps up to three cores busy. See [`Importer`].
    pub fn importer(&self, namespace: &str, batch_size: usize) -> Result<Importer> {
        check_batch_size(batch_size)?;
        // One batch waits while one is checked: feeding blocks when the import lags.
        let (to_import, batches) = sync_channel::<Result<Batch>>(1);
        let (handle, ns) = (self.clone(), namespace.to_owned());
        let done = ImportThread::spawn(move || handle.import_batches(&ns, batches, |_| {}))?;
        Ok(Importer::new(Local {
            lines: ChunkBatcher::new(batch_size),
            to_import: Some(to_import),
            done,
        }))
    }
}

/// An import in this process (see [`Handle::importer`]).
struct Local {
    lines: ChunkBatcher,
    to_import: Option<SyncSender<Result<Batch>>>,
    done: ImportThread,
}

impl Local {
    /// Hands on a batch, or the error that ends the text; `false` once the import stopped.
    fn hand_on(&self, batch: Result<Batch>) -> bool {
        self.to_import.as_ref().is_some_and(|to| to.send(batch).is_ok())
    }

    /// The import's answer once the batches handed on are written.
    fn answer(&mut self) -> Result<ImportSummary> {
        self.to_import = None;
        self.done.answer()
    }

    /// The error that stopped the import (a batch that failed, or `e` after the batches
    /// before it).
    fn stopped(&mut self, e: Option<Error>) -> Error {
        if let Some(e) = e {
            self.hand_on(Err(e));
        }
        match self.answer() {
            Err(e) => e,
            Ok(_) => Error::Internal("the import ended before its text".into()),
        }
    }
}

impl ImportRun for Local {
    fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        self.lines.feed(chunk);
        loop {
            match self.lines.next_batch() {
                Ok(Some(batch)) => {
                    if !self.hand_on(Ok(batch)) {
                        return Err(self.stopped(None));
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.stopped(Some(e))),
            }
        }
    }

    fn finish(mut self: Box<Self>) -> Result<ImportSummary> {
        match self.lines.finish() {
            Ok(batches) => {
                for batch in batches {
                    if !self.hand_on(Ok(batch)) {
                        break;
                    }
                }
            }
            Err(e) => {
                self.hand_on(Err(e));
            }
        }
        self.answer()
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Unfinished: what was handed on is written before the handle is let go.
        let _ = self.answer();
    }
}

/// An import of one `import_namespace` call a batch (see [`Importer::by_calls`]).
struct ByCalls {
    backend: Box<dyn Backend>,
    namespace: String,
    lines: ChunkBatcher,
    total: ImportSummary,
}

impl ByCalls {
    fn send(&mut self, batch: Batch) -> Result<()> {
        let args = serde_json::to_value(batch.into_args(&self.namespace))?;
        let done = self.backend.call("import_namespace", args)?.value;
        self.total.add(serde_json::from_value(done)?);
        Ok(())
    }

    /// Sends the whole batches fed so far.
    fn send_ready(&mut self) -> Result<()> {
        while let Some(batch) = self.lines.next_batch()? {
            self.send(batch)?;
        }
        Ok(())
    }

    /// Sends the batches left at the end of the text.
    fn send_rest(&mut self) -> Result<()> {
        for batch in self.lines.finish()? {
            self.send(batch)?;
        }
        Ok(())
    }
}

impl ImportRun for ByCalls {
    fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        self.lines.feed(chunk);
        self.send_ready().map_err(|e| e.stopped_import(self.total))
    }

    fn finish(mut self: Box<Self>) -> Result<ImportSummary> {
        match self.send_rest() {
            Ok(()) => Ok(self.total),
            Err(e) => Err(e.stopped_import(self.total)),
        }
    }
}
