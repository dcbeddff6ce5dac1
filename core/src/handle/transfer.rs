//! Export and import of a namespace as JSON lines (see [`crate::transfer`] for the format).

use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::audit::Subject;
use crate::auth::NamespaceAction;
use crate::catalog::namespace_tenant;
use crate::error::{Error, Result};
use crate::handle::memory::PreparedBatch;
use crate::handle::{Caller, Handle};
use crate::transfer::{
    at_line, decode_cursor, encode_cursor, export_graph_row, export_memory, line_head, line_kind,
    name_line, parse_line, prepare_group, source_embedder, Batch, ExportArgs, ExportPage, Group,
    ImportArgs, ImportSummary, Kind, LineIn, MemoryLineIn, Numbered, Vectors, DEFAULT_PAGE, FORMAT,
    MAX_PAGE,
};

/// Longest an import's writer leaves the audit entries of the batches it wrote queued
/// (see [`Handle::import_batches`]).
///
/// [`Handle::import_batches`]: crate::Handle::import_batches
const AUDIT_FLUSH: Duration = Duration::from_secs(1);

impl Handle {
    /// One page of the JSON Lines export of a namespace (see the module docs).
    pub fn export_page(&self, args: ExportArgs) -> Result<ExportPage> {
        let limit = args.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid("limit", format!("must be between 1 and {MAX_PAGE}")));
        }
        let ns = args.namespace.as_str();
        let mut lines = Vec::new();
        let (mut phase, mut after) = match &args.cursor {
            None => {
                let info = self.get_namespace(ns)?;
                lines.push(serde_json::value::to_raw_value(&json!({
                    "kind": "namespace", "format": FORMAT, "name": info.name,
                    "dimensions": info.dimensions, "embedder": info.embedder,
                    "policy": info.policy,
                }))?);
                ('e', String::new())
            }
            Some(c) => {
                let (p, a) = decode_cursor(c)?;
                (p, a.to_owned())
            }
        };
        loop {
            let room = limit.saturating_sub(lines.len());
            if room == 0 {
                return Ok(ExportPage { lines, next_cursor: Some(encode_cursor(phase, &after)) });
            }
            match phase {
                'e' | 'r' => {
                    let relations = phase == 'r';
                    let from = (!after.is_empty()).then_some(after.as_str());
                    let rows = self.graph_rows(ns, relations, from, room)?;
                    let full = rows.len() == room;
                    if let Some(last) = rows.last() {
                        last["id"].as_str().unwrap_or("").clone_into(&mut after);
                    }
                    let kind = if relations { "relation" } else { "entity" };
                    for row in rows {
                        lines.push(serde_json::value::to_raw_value(&export_graph_row(kind, row))?);
                    }
                    if !full {
                        phase = if relations { 'm' } else { 'r' };
                        after.clear();
                    }
                }
                _ => {
                    let from = (!after.is_empty()).then_some(after.as_str());
                    let (memories, next) = self.memory_rows(ns, from, room)?;
                    for m in &memories {
                        lines.push(export_memory(m)?);
                    }
                    match next {
                        Some(next) => after = next,
                        None => return Ok(ExportPage { lines, next_cursor: None }),
                    }
                }
            }
        }
    }

    /// Imports one batch of export lines into `namespace` (see the module docs).
    pub fn import_batch(&self, args: ImportArgs) -> Result<ImportSummary> {
        self.check_import(&args.namespace)?;
        let ready = self.prepare_import(args)?;
        self.apply_import(ready)
    }

    /// Imports batches of export lines into `namespace` in order, as the operation
    /// `import_namespace` (audit entries included) of each would, and returns what they wrote.
    /// While batches are written (their transaction and the sync that makes it durable) the
    /// next ones are read and checked on the calling thread (`batches` is read there too), so
    /// an import keeps two cores busy. A batch that sets what the next one is checked against
    /// (the namespace's policy, or its first vectors, which fix its dimensions and embedder)
    /// is written before the next one is read. The first failure stops the import: batches
    /// after the failing one are not written. `done` is told the running total after each
    /// batch written. Its error ([`Error::stopped_import`]) says what the batches written
    /// before the failure wrote.
    ///
    /// Batches of memory lines that are ready when the writer is free (up to `COMBINED`)
    /// are written in one transaction, made durable by one commit: a commit's sync costs
    /// about as much for a few pages more, and the pages the batches share (the namespace's
    /// newest vector rows and records, the keys of values they have in common) are written
    /// once. Each batch stays all or nothing: if that write fails, nothing of it is written,
    /// and the batches are written again one at a time, so the first failing batch is the
    /// one that fails, after those before it are written.
    ///
    /// Each batch's audit entry is queued when the batch is written and committed with the
    /// catalog's next commit (whoever makes it), by this import a second after it last did
    /// (when a batch is written then, or while it waits that long for the next one), and
    /// before it returns, failed or not: one catalog commit and sync for the entries of many
    /// batches instead of one per batch, the chain as it was, and no entry of an answered
    /// import left unwritten.
    pub fn import_batches<I>(
        &self,
        namespace: &str,
        batches: I,
        done: impl FnMut(&ImportSummary),
    ) -> Result<ImportSummary>
    where
        I: IntoIterator<Item = Result<Batch>>,
    {
        if let Err(e) = self.check_import(namespace) {
            let subject =
                Subject::transfer(namespace_tenant(&self.state.catalog, namespace), namespace);
            self.audit_queued("import_namespace", subject, Err(e.code()));
            self.state.audit.flush(&self.state.catalog);
            return Err(e.stopped_import(ImportSummary::default()));
        }
        self.import_checked_batches(namespace, batches, done)
    }

    /// [`Handle::import_batches`] once the caller may write `namespace`.
    ///
    /// [`Handle::import_batches`]: crate::Handle::import_batches
    fn import_checked_batches<I>(
        &self,
        namespace: &str,
        batches: I,
        mut done: impl FnMut(&ImportSummary),
    ) -> Result<ImportSummary>
    where
        I: IntoIterator<Item = Result<Batch>>,
    {
        const OP: &str = "import_namespace";
        let stopped = || Error::Internal("the import's writer stopped".into());
        let mut total = ImportSummary::default();
        let imported = std::thread::scope(|s| {
            // The writer takes the batch it waited for and those queued behind it.
            let (to_writer, inbox) =
                std::sync::mpsc::sync_channel::<(ImportReady, Subject)>(COMBINED - 1);
            let (to_reader, written) = std::sync::mpsc::channel::<Result<ImportSummary>>();
            s.spawn(move || {
                let flush = || self.state.audit.flush(&self.state.catalog);
                let mut flushed = Instant::now();
                loop {
                    let first = match inbox.recv_timeout(AUDIT_FLUSH) {
                        Ok(next) => next,
                        Err(RecvTimeoutError::Disconnected) => break,
                        Err(RecvTimeoutError::Timeout) => {
                            // A slow stream: the entries written so far wait no longer.
                            flush();
                            flushed = Instant::now();
                            match inbox.recv() {
                                Ok(next) => next,
                                Err(_) => break,
                            }
                        }
                    };
                    let mut ready = vec![first];
                    while ready.len() < COMBINED {
                        match inbox.try_recv() {
                            Ok(next) => ready.push(next),
                            Err(_) => break,
                        }
                    }
                    let mut stop = false;
                    for result in self.write_imports(ready) {
                        let failed = result.is_err();
                        stop |= to_reader.send(result).is_err() || failed;
                    }
                    if flushed.elapsed() >= AUDIT_FLUSH {
                        flush();
                        flushed = Instant::now();
                    }
                    if stop {
                        break;
                    }
                }
            });
            // Adds what the batches in flight wrote, in order, telling `done`: those written
            // so far, or (`all`) every one, waiting for them.
            let mut in_flight = 0usize;
            let mut settle = |total: &mut ImportSummary, in_flight: &mut usize, all: bool| {
                while *in_flight > 0 {
                    let next = if all {
                        written.recv().map_err(|_| stopped())?
                    } else {
                        match written.try_recv() {
                            Ok(next) => next,
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => return Err(stopped()),
                        }
                    };
                    *in_flight -= 1;
                    total.add(next?);
                    done(total);
                }
                Ok(())
            };
            for batch in batches {
                // A failure of a batch written meanwhile stops the reading here.
                settle(&mut total, &mut in_flight, false)?;
                let batch = batch.map(|b| b.into_args(namespace));
                let prepared = batch.map(|args| {
                    let subject = Subject::transfer(
                        namespace_tenant(&self.state.catalog, &args.namespace),
                        &args.namespace,
                    );
                    (self.prepare_import(args), subject)
                });
                // An earlier batch's failure comes first, as it would one batch at a time.
                let ready = match prepared {
                    Ok((Ok(ready), subject)) => (ready, subject),
                    Ok((Err(e), subject)) => {
                        settle(&mut total, &mut in_flight, true)?;
                        self.audit_queued(OP, subject, Err(e.code()));
                        return Err(e);
                    }
                    Err(e) => {
                        settle(&mut total, &mut in_flight, true)?;
                        return Err(e);
                    }
                };
                let wait = !ready.0.leaves_namespace;
                if to_writer.send(ready).is_err() {
                    // The writer stopped at a failure, which is among its answers.
                    settle(&mut total, &mut in_flight, true)?;
                    return Err(stopped());
                }
                in_flight += 1;
                if wait {
                    settle(&mut total, &mut in_flight, true)?;
                }
            }
            settle(&mut total, &mut in_flight, true)?;
            Ok(total)
        });
        // The entries of the batches written (and of a failure) before the answer.
        self.state.audit.flush(&self.state.catalog);
        imported.map_err(|e| e.stopped_import(total))
    }

    /// Refuses an import into `namespace` by a caller that may not write it, before any line
    /// is read, so an import without lines is answered as one with lines would be: a key
    /// without the namespace gets `forbidden` whether or not it exists, root `not_found` for
    /// a namespace that does not. Charges no request to the rate limit (its batches do).
    fn check_import(&self, namespace: &str) -> Result<()> {
        let caller = Caller { authed: self.authed()?, compute: Vec::new() };
        self.namespace_for(&caller, namespace, NamespaceAction::Write).map(drop)
    }

    /// Writes prepared import batches in order (see [`Handle::import_batches`]): each run of
    /// batches of memory lines in one transaction, any other batch alone; each batch's audit
    /// entry queued. The answers of the batches written, up to the first failure included.
    ///
    /// [`Handle::import_batches`]: crate::Handle::import_batches
    fn write_imports(&self, ready: Vec<(ImportReady, Subject)>) -> Vec<Result<ImportSummary>> {
        const OP: &str = "import_namespace";
        let mut out = Vec::with_capacity(ready.len());
        let mut ready = ready.into_iter().peekable();
        while let Some(next) = ready.next() {
            let mut run = vec![next];
            while run[0].0.memories_only()
                && ready
                    .peek()
                    .is_some_and(|(r, _)| r.memories_only() && r.namespace == run[0].0.namespace)
            {
                run.extend(ready.next());
            }
            let written = if run.len() > 1 { self.write_combined(&mut run) } else { None };
            if let Some(summaries) = written {
                for ((_, subject), summary) in run.into_iter().zip(summaries) {
                    self.audit_queued(OP, subject, Ok(&json!(summary)));
                    out.push(Ok(summary));
                }
                continue;
            }
            for (ready, subject) in run {
                // As `Handle::execute` records a control-plane request, but queued.
                let (result, in_commit) =
                    self.with_entry_in_commit(OP, &subject, || self.apply_import(ready));
                if !in_commit || result.is_err() {
                    let reply = result.as_ref().map(|r| json!(r));
                    self.audit_queued(OP, subject, reply.as_ref().map_err(|e| e.code()));
                }
                let failed = result.is_err();
                out.push(result);
                if failed {
                    return out;
                }
            }
        }
        out
    }

    /// Batches of memory lines only, written in one transaction ([`Handle::write_batches`]):
    /// what each wrote, or `None` (nothing written, `run` as it was) if that write failed.
    ///
    /// [`Handle::write_batches`]: crate::Handle::write_batches
    fn write_combined(&self, run: &mut [(ImportReady, Subject)]) -> Option<Vec<ImportSummary>> {
        let mut lines = Vec::with_capacity(run.len());
        let mut batches = Vec::with_capacity(run.len());
        for (ready, _) in run.iter_mut() {
            match ready.groups.pop() {
                Some(Ready::Memories(numbers, batch, expired)) => {
                    lines.push((numbers, expired));
                    batches.push(*batch);
                }
                _ => unreachable!("a batch of memory lines only"),
            }
        }
        if let Ok(counts) = self.write_batches(&mut batches) {
            let summaries = run.iter().zip(&lines).zip(counts);
            return Some(
                summaries
                    .map(|(((ready, _), (_, expired)), n)| ImportSummary {
                        memories: n as u64,
                        expired: ready.summary.expired + expired,
                        ..ready.summary
                    })
                    .collect(),
            );
        }
        for (((ready, _), (numbers, expired)), batch) in run.iter_mut().zip(lines).zip(batches) {
            ready.groups.push(Ready::Memories(numbers, Box::new(batch), expired));
        }
        None
    }

    /// The part of an import batch before its writes: every line read and checked, and a
    /// batch of memory lines prepared as `store_memories` prepares its items.
    fn prepare_import(&self, args: ImportArgs) -> Result<ImportReady> {
        let first = args.first_line.unwrap_or(1);
        let ns = args.namespace;
        let summary = ImportSummary { lines: args.lines.len() as u64, ..Default::default() };
        let mut groups: Vec<(Kind, Numbered)> = Vec::new();
        for (i, line) in args.lines.into_iter().enumerate() {
            let number = first + i as u64;
            let (kind, map) = match line {
                // A line as text (what a file holds) is checked here, so its errors name it. A
                // memory line is read once, typed (see `MemoryLineIn::read`): here, or, if it
                // does not read so, after its check.
                Value::String(text) => {
                    if let Some(line) = MemoryLineIn::read(&text) {
                        (Kind::Memory, LineIn::Typed(line))
                    } else if line_head(number, text.as_bytes())? == Kind::Memory {
                        (Kind::Memory, LineIn::Text(text))
                    } else {
                        let (kind, map) = parse_line(number, text.as_bytes())?;
                        (kind, LineIn::Object(map))
                    }
                }
                Value::Object(map) => {
                    let kind =
                        line_kind(&map).map_err(|r| Error::invalid(format!("line {number}"), r))?;
                    (kind, LineIn::Object(map))
                }
                _ => {
                    return Err(Error::invalid(
                        format!("line {number}"),
                        "not a JSON object (or its text)",
                    ))
                }
            };
            match groups.last_mut() {
                Some((k, items)) if *k == kind => items.push((number, map)),
                _ => groups.push((kind, vec![(number, map)])),
            }
        }
        // Check every line before writing any.
        let target = self.get_namespace(&ns)?;
        let default = self.state.options.embedder.name();
        let mut source = args.embedder;
        let mut prepared = Vec::with_capacity(groups.len());
        for (kind, items) in groups {
            if kind == Kind::Namespace {
                source = items.last().and_then(|(_, line)| match line {
                    LineIn::Object(map) => source_embedder(map),
                    LineIn::Text(_) | LineIn::Typed(_) => None,
                });
            }
            let plan = Vectors::plan(source.as_deref(), target.embedder.as_deref(), default);
            prepared.push(prepare_group(kind, items, target.dimensions, &plan)?);
        }
        let memories_only = prepared.iter().all(|g| matches!(g, Group::Memories(..)));
        // What the next batch is checked against: the namespace's policy (a policy line sets
        // it) and its dimensions and embedder (fixed by its first vectors).
        let leaves_namespace = !prepared.iter().any(|g| matches!(g, Group::Policy(..)))
            && (!prepared.iter().any(|g| matches!(g, Group::Memories(..)))
                || (target.dimensions.is_some() && target.embedder.is_some()));
        let groups = prepared
            .into_iter()
            .map(|group| match group {
                // A batch of memory lines only (what `Batcher` makes) is prepared here, as
                // `store_memories` would before its write, so that this work too is done
                // while the previous batch is written.
                Group::Memories(numbers, items, expired, by)
                    if memories_only && !items.is_empty() =>
                {
                    let batch = self
                        .prepare_memories(&ns, items, &by)
                        .map_err(|e| name_line(e, "memories", &numbers))?;
                    Ok(Ready::Memories(numbers, Box::new(batch), expired))
                }
                other => Ok(Ready::Group(other)),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ImportReady { namespace: ns, summary, groups, leaves_namespace })
    }

    /// Writes a batch [`Handle::prepare_import`] prepared, group by group.
    ///
    /// [`Handle::prepare_import`]: crate::Handle::prepare_import
    fn apply_import(&self, ready: ImportReady) -> Result<ImportSummary> {
        let ImportReady { namespace, mut summary, groups, .. } = ready;
        let ns = namespace.as_str();
        for group in groups {
            let group = match group {
                Ready::Memories(numbers, batch, expired) => {
                    summary.expired += expired;
                    let n =
                        self.write_batch(*batch).map_err(|e| name_line(e, "memories", &numbers))?;
                    summary.memories += n.len() as u64;
                    continue;
                }
                Ready::Group(group) => group,
            };
            match group {
                Group::Policy(line, policy) => {
                    // Retention is administration: only a changed policy needs the right.
                    let current = serde_json::to_value(self.get_memory_policy(ns)?)?;
                    if policy != current {
                        let set = json!({ "namespace": ns, "policy": policy });
                        self.call("set_memory_policy", set).map_err(|e| match e {
                            Error::Forbidden { namespace, .. } => Error::Forbidden {
                                message: format!(
                                    "line {line}: the export's decay policy differs and setting \
                                     it needs an admin key"
                                ),
                                namespace,
                            },
                            other => at_line(line, other),
                        })?;
                    }
                }
                Group::Entities(numbers, items) => {
                    let done = self
                        .import_entities(ns, items, |i| format!("entities[{i}]"))
                        .map_err(|e| name_line(e, "entities", &numbers))?;
                    summary.entities += done.len() as u64;
                }
                Group::Relations(numbers, items) => {
                    let done = self
                        .import_relations(ns, items, |i| format!("relations[{i}]"))
                        .map_err(|e| name_line(e, "relations", &numbers))?;
                    summary.relations += done.len() as u64;
                }
                Group::Memories(numbers, items, expired, by) => {
                    summary.expired += expired;
                    if items.is_empty() {
                        continue;
                    }
                    let n = items.len() as u64;
                    self.store_memories_by(ns, items, &by)
                        .map_err(|e| name_line(e, "memories", &numbers))?;
                    summary.memories += n;
                }
            }
        }
        Ok(summary)
    }
}

/// Batches of memory lines an import's writer writes in one transaction at most (see
/// [`Handle::import_batches`]): with batches of 1000, a commit of up to 4000 memories.
///
/// [`Handle::import_batches`]: crate::Handle::import_batches
const COMBINED: usize = 4;

/// An import batch read and checked, waiting for its writes (see [`Handle::import_batches`]).
///
/// [`Handle::import_batches`]: crate::Handle::import_batches
struct ImportReady {
    namespace: String,
    /// Its lines counted.
    summary: ImportSummary,
    groups: Vec<Ready>,
    /// Whether the next batch may be checked while this one is written: its writes change
    /// nothing that check reads.
    leaves_namespace: bool,
}

impl ImportReady {
    /// Whether it is one group of memory lines prepared as `store_memories` items (what a
    /// batch of memory lines is), which can be written with others in one transaction.
    fn memories_only(&self) -> bool {
        matches!(self.groups.as_slice(), [Ready::Memories(..)])
    }
}

/// A group of an import batch, ready to write.
enum Ready {
    /// Memory lines prepared as `store_memories` items: line numbers, the batch, how many
    /// were left out as expired.
    Memories(Vec<u64>, Box<PreparedBatch>, u64),
    /// Any other group, prepared when written.
    Group(Group),
}
