//! `memsilo export` and `memsilo import`: a namespace as JSON Lines, to or from a file (or
//! stdout/stdin), from a data directory or from a running server (`--url` and `--key`), with
//! a progress bar when stderr is a terminal. The format, batching and checks are core's
//! (`memsilo::transfer`); this loops over its pages and batches.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};

use indicatif::{ProgressBar, ProgressStyle};
use memsilo::api::Backend;
use memsilo::transfer::{Batch, Batcher, ImportSummary, DEFAULT_PAGE, MAX_LINE_BYTES};
use memsilo::{Engine, Options};
use serde_json::json;

/// What to transfer, and with whom.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TransferArgs {
    pub export: bool,
    pub namespace: String,
    pub data: String,
    /// `--keyring` (or `MEMSILO_KEYRING`) for a data directory with tenants' own keys.
    pub keyring: Option<String>,
    pub url: Option<String>,
    pub key: Option<String>,
    /// `-` for stdout (export) or stdin (import).
    pub file: String,
    pub batch: usize,
}

pub(crate) const USAGE: &str = "\
usage: memsilo export NAMESPACE [--output FILE] [--data DIR [--keyring DIR] | --url URL --key KEY]
       memsilo import NAMESPACE [--input FILE] [--batch N] [--data DIR [--keyring DIR] | --url URL --key KEY]

Copies a namespace as JSON Lines (memories with ids and vectors, graph entities and
relations, the policy). Import into an existing namespace; running it again is idempotent.
  --output/--input FILE  file to write or read (default - : stdout / stdin)
  --batch N              lines per import batch (default 1000; each batch is all or nothing)
  --data DIR             data directory (env MEMSILO_DATA; default ./data; not while served)
  --keyring DIR          its keyring, or `env:` (env MEMSILO_KEYRING), as `memsilo serve` takes it
  --url URL, --key KEY   a running server and an API key (env MEMSILO_URL, MEMSILO_KEY)";

pub(crate) fn parse(export: bool, args: &[String]) -> Result<TransferArgs, String> {
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
    let mut out = TransferArgs {
        export,
        namespace: String::new(),
        data: env("MEMSILO_DATA").unwrap_or_else(|| "./data".into()),
        keyring: env("MEMSILO_KEYRING"),
        url: env("MEMSILO_URL"),
        key: env("MEMSILO_KEY"),
        file: "-".into(),
        batch: DEFAULT_PAGE,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        if !flag.starts_with("--") {
            if !out.namespace.is_empty() {
                return Err(format!("unexpected argument {arg:?}"));
            }
            out.namespace.clone_from(arg);
            continue;
        }
        let mut value =
            || inline.clone().or_else(|| it.next().cloned()).ok_or(format!("{flag} needs a value"));
        match (flag, export) {
            ("--data", _) => out.data = value()?,
            ("--keyring", _) => out.keyring = Some(value()?),
            ("--url", _) => out.url = Some(value()?),
            ("--key", _) => out.key = Some(value()?),
            ("--output", true) | ("--input", false) => out.file = value()?,
            ("--batch", false) => {
                let v = value()?;
                out.batch = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=memsilo::transfer::MAX_PAGE).contains(n))
                    .ok_or(format!(
                        "--batch must be 1 to {}, got {v:?}",
                        memsilo::transfer::MAX_PAGE
                    ))?;
            }
            (other, _) => return Err(format!("unknown option {other:?}")),
        }
    }
    if out.namespace.is_empty() {
        return Err("which namespace? (memsilo export NAMESPACE)".into());
    }
    if out.url.is_some() && out.key.is_none() {
        return Err("--url needs --key (or MEMSILO_KEY)".into());
    }
    Ok(out)
}

fn backend(args: &TransferArgs) -> Result<Box<dyn Backend>, String> {
    match remote(args) {
        Some(client) => Ok(Box::new(client?)),
        None => Ok(Box::new(open_local(args)?)),
    }
}

/// The server `--url` names, connected with `--key`.
fn remote(args: &TransferArgs) -> Option<Result<crate::Client, String>> {
    let (url, key) = (args.url.as_ref()?, args.key.as_ref()?);
    Some(crate::Client::connect(url, key).map_err(|e| format!("cannot reach {url}: {e}")))
}

/// The data directory's root handle.
fn open_local(args: &TransferArgs) -> Result<memsilo::Handle, String> {
    let options = Options { keyring: args.keyring.as_ref().map(Into::into), ..Options::default() };
    let engine = Engine::open(&args.data, options)
        .map_err(|e| format!("cannot open data directory {}: {e}", args.data))?;
    Ok(engine.root())
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{what} {{bar:40}} {{pos}}/{{len}} {{per_sec}} eta {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Runs an export or import; returns a one-line summary for stderr.
pub(crate) fn run(args: &TransferArgs) -> Result<String, String> {
    if args.export {
        return export(backend(args)?.as_ref(), args);
    }
    // Either way the next batch is read while one is written (core's `import_batches`,
    // here or in the server, which reads the file as one streamed body).
    match remote(args) {
        Some(client) => import_remote(&client?, args),
        None => import_local(&open_local(args)?, args),
    }
}

fn export(db: &dyn Backend, args: &TransferArgs) -> Result<String, String> {
    let ns = &args.namespace;
    let info = db.call("get_namespace", json!({ "name": ns })).map_err(|e| e.to_string())?.value;
    let total = ["memory_count", "entity_count", "relation_count"]
        .iter()
        .map(|f| info[f].as_u64().unwrap_or(0))
        .sum::<u64>()
        + 1;
    let sink: Box<dyn Write> = if args.file == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(&args.file).map_err(|e| format!("{}: {e}", args.file))?)
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let progress = bar(total, "export");
    let mut cursor: Option<String> = None;
    let mut lines = 0u64;
    loop {
        let page = db
            .call(
                "export_namespace",
                json!({ "namespace": ns, "cursor": cursor, "limit": DEFAULT_PAGE }),
            )
            .map_err(|e| e.to_string())?
            .value;
        for line in page["lines"].as_array().into_iter().flatten() {
            serde_json::to_writer(&mut out, line).map_err(|e| e.to_string())?;
            out.write_all(b"\n").map_err(|e| e.to_string())?;
            lines += 1;
        }
        progress.set_position(lines);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    progress.finish_and_clear();
    Ok(format!("exported {lines} lines of {ns}"))
}

/// The file to import (stdin for `-`) and its length (0 when unknown).
fn input(args: &TransferArgs) -> Result<(Box<dyn Read>, u64), String> {
    if args.file == "-" {
        return Ok((Box::new(std::io::stdin().lock()), 0));
    }
    let f = std::fs::File::open(&args.file).map_err(|e| format!("{}: {e}", args.file))?;
    let len = f.metadata().map_or(0, |m| m.len());
    Ok((Box::new(f), len))
}

fn imported(summary: &ImportSummary, namespace: &str) -> String {
    format!(
        "imported {} memories, {} entities, {} relations into {namespace} ({} expired left out)",
        summary.memories, summary.entities, summary.relations, summary.expired
    )
}

fn import_local(handle: &memsilo::Handle, args: &TransferArgs) -> Result<String, String> {
    read_batches(args, |batches| {
        handle.import_batches(&args.namespace, batches, |_| {}).map_err(|e| e.to_string())
    })
}

/// The file sent as one streamed body: the server checks the lines and imports them in
/// batches as they arrive (a bad line is its error, naming the line). A cluster node serves
/// no streamed body (docs/src/cluster.md): an empty one asks first, and there the batches go
/// one `import_namespace` call each.
fn import_remote(client: &crate::Client, args: &TransferArgs) -> Result<String, String> {
    match client.import_stream(&args.namespace, args.batch, &mut std::io::empty()) {
        Err(memsilo::Error::InvalidArgument { field, .. }) if field == "route" => {
            return import_calls(client, args);
        }
        Err(e) => return Err(e.to_string()),
        Ok(_) => {}
    }
    let (source, len) = input(args)?;
    let progress = bar(len, "import");
    let mut sent = Counted { source, read: 0, bar: &progress };
    let report = client.import_stream(&args.namespace, args.batch, &mut sent);
    progress.finish_and_clear();
    Ok(imported(&report.map_err(|e| e.to_string())?, &args.namespace))
}

/// One `import_namespace` call a batch, one after the other.
fn import_calls(db: &dyn Backend, args: &TransferArgs) -> Result<String, String> {
    read_batches(args, |batches| {
        let mut summary = ImportSummary::default();
        for batch in batches {
            let call =
                serde_json::to_value(batch.map_err(|e| e.to_string())?.into_args(&args.namespace))
                    .map_err(|e| e.to_string())?;
            let done = db.call("import_namespace", call).map_err(|e| e.to_string())?.value;
            summary.add(serde_json::from_value(done).map_err(|e| e.to_string())?);
        }
        Ok(summary)
    })
}

/// Reads the file to import as batches with a progress bar and gives them to `import`.
fn read_batches(
    args: &TransferArgs,
    import: impl FnOnce(
        &mut dyn Iterator<Item = memsilo::Result<Batch>>,
    ) -> Result<ImportSummary, String>,
) -> Result<String, String> {
    let (source, len) = input(args)?;
    let progress = bar(len, "import");
    let mut reader = BatchReader::new(source, args.batch);
    let mut batches = reader.by_ref().map(|b| {
        b.map(|(read, batch)| {
            progress.set_position(read);
            batch
        })
    });
    let report = import(&mut batches);
    progress.finish_and_clear();
    let summary = report?;
    // A read error ends the batches; what was read before it is imported.
    if let Some(e) = reader.failed {
        return Err(e);
    }
    Ok(imported(&summary, &args.namespace))
}

/// A source that moves the progress bar by the bytes read from it.
struct Counted<'a> {
    source: Box<dyn Read>,
    read: u64,
    bar: &'a ProgressBar,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.source.read(buf)?;
        self.read += n as u64;
        self.bar.set_position(self.read);
        Ok(n)
    }
}

/// JSON Lines read as import batches, each with the bytes read so far. A bad line is an error
/// naming it; a read error ends the batches and is kept in `failed`.
pub(crate) struct BatchReader<R> {
    reader: BufReader<R>,
    batcher: Batcher,
    line: Vec<u8>,
    read: u64,
    ended: bool,
    pub failed: Option<String>,
}

impl<R: Read> BatchReader<R> {
    pub(crate) fn new(source: R, size: usize) -> Self {
        BatchReader {
            reader: BufReader::with_capacity(1 << 20, source),
            batcher: Batcher::new(size),
            line: Vec::new(),
            read: 0,
            ended: false,
            failed: None,
        }
    }
}

impl<R: Read> Iterator for BatchReader<R> {
    type Item = memsilo::Result<(u64, Batch)>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.ended {
            self.line.clear();
            let n = match (&mut self.reader)
                .take(MAX_LINE_BYTES as u64 + 2)
                .read_until(b'\n', &mut self.line)
            {
                Ok(n) => n,
                Err(e) => {
                    self.ended = true;
                    self.failed = Some(e.to_string());
                    return None;
                }
            };
            if n == 0 {
                self.ended = true;
                return self.batcher.finish().map(|b| Ok((self.read, b)));
            }
            self.read += n as u64;
            let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            match self.batcher.push(text) {
                Ok(Some(batch)) => return Some(Ok((self.read, batch))),
                Ok(None) => {}
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_name_the_namespace_and_the_source() {
        let a =
            parse(false, &["ns".into(), "--input=x.jsonl".into(), "--batch".into(), "50".into()])
                .unwrap();
        assert_eq!((a.namespace.as_str(), a.file.as_str(), a.batch), ("ns", "x.jsonl", 50));
        assert!(parse(true, &["--input".into(), "x".into(), "ns".into()]).is_err());
        assert!(parse(true, &[]).is_err());
        assert!(parse(false, &["ns".into(), "--batch".into(), "0".into()]).is_err());
        let k = parse(true, &["ns".into(), "--keyring=/k".into()]).unwrap();
        assert_eq!(k.keyring.as_deref(), Some("/k"));
    }

    #[test]
    fn a_bad_line_stops_the_import_naming_it() {
        let text = "{\"kind\":\"entity\",\"name\":\"a\"}\n\nnot json\n";
        let mut seen = 0;
        let err = BatchReader::new(text.as_bytes(), 10)
            .try_for_each(|b| b.map(|(_, b)| seen += b.lines.len()))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 3: not JSON"), "{err}");
        assert_eq!(seen, 0, "the batch before the bad line is not sent yet: it is not full");
    }
}
