//! `memsilo export` and `memsilo import`: a namespace as JSON Lines, to or from a file (or
//! stdout/stdin), from a data directory or from a running server (`--url` and `--key`), with
//! a progress bar when stderr is a terminal. The format, batching and checks are core's
//! (`memsilo::transfer`); this loops over its pages and batches.

use std::io::{BufWriter, Read, Write};

use indicatif::{ProgressBar, ProgressStyle};
use memsilo::api::Backend;
use memsilo::transfer::{ImportSummary, DEFAULT_PAGE};
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
    let db = backend(args)?;
    if args.export {
        return export(db.as_ref(), args);
    }
    import(db.as_ref(), args)
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

/// The file fed to core's importer (`memsilo::api::Importer`): from a data directory the
/// next batch is read and checked while one is written; to a server the file goes as one
/// streamed body, which the server imports the same way (a bad line is its error, naming the
/// line), or where a server takes none (a cluster node, docs/src/cluster.md) one
/// `import_namespace` call a batch.
fn import(db: &dyn Backend, args: &TransferArgs) -> Result<String, String> {
    let (mut source, len) = input(args)?;
    let progress = bar(len, "import");
    let mut importer = db.importer(&args.namespace, args.batch).map_err(|e| e.to_string())?;
    let mut chunk = vec![0u8; 1 << 20];
    let mut read = 0u64;
    let summary = loop {
        let n = match source.read(&mut chunk) {
            Ok(0) => break importer.finish(),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // The importer, dropped, writes the whole batches read before the error.
            Err(e) => return Err(e.to_string()),
        };
        read += n as u64;
        progress.set_position(read);
        if let Err(e) = importer.feed(&chunk[..n]) {
            break Err(e);
        }
    };
    progress.finish_and_clear();
    let summary = summary.map_err(|e| match e.imported() {
        // What the batches before the failure wrote stays: say how much.
        Some(done) => format!("{e} (before it: {})", imported(&done, &args.namespace)),
        None => e.to_string(),
    })?;
    Ok(imported(&summary, &args.namespace))
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
}
