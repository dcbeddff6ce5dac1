//! One tantivy index per namespace, measured: `cargo run --release -- [N]` creates N indexes
//! (default 10,000) of one short document each, as a namespace's first memory would, and
//! prints files, bytes on disk and time per index; the resident memory of 100 open writers
//! (a server would keep one per busy namespace); then what erasing one memory from an index
//! of 1,000 takes (delete + commit, then a merge and garbage collection before its words are
//! gone from the files).

use std::path::Path;
use std::time::Instant;

use tantivy::schema::{Schema, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexWriter, TantivyDocument, Term};

fn du(dir: &Path) -> (u64, u64, u64) {
    // (files, apparent bytes, allocated bytes)
    let mut out = (0, 0, 0);
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            let (f, a, b) = du(&e.path());
            out = (out.0 + f, out.1 + a, out.2 + b);
        } else {
            use std::os::unix::fs::MetadataExt;
            out = (out.0 + 1, out.1 + m.len(), out.2 + m.blocks() * 512);
        }
    }
    out
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether the deleted memory's word is still in a segment's term dictionary (its postings,
/// positions and stored text stay in the files with it until a merge drops the segment).
fn still_indexed(index: &Index, field: tantivy::schema::Field, word: &str) -> bool {
    let reader = index.reader().unwrap();
    reader.reload().unwrap();
    reader.searcher().segment_readers().iter().any(|s| {
        s.inverted_index(field).unwrap().terms().get(word.as_bytes()).unwrap().is_some()
    })
}

fn main() -> tantivy::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let mut sb = Schema::builder();
    let id = sb.add_text_field("id", STRING | STORED);
    let text = sb.add_text_field("text", TEXT);
    let schema = sb.build();
    let root = tempfile::tempdir_in(std::env::var("PROBE_DIR").unwrap_or_else(|_| ".".into()))?;

    // 1. N namespaces, one memory each.
    let t = Instant::now();
    for i in 0..n {
        let dir = root.path().join(format!("ns-{i}"));
        std::fs::create_dir(&dir)?;
        let index = Index::create_in_dir(&dir, schema.clone())?;
        let mut w: IndexWriter<TantivyDocument> = index.writer_with_num_threads(1, 15_000_000)?;
        w.add_document(doc!(id => format!("m{i}"), text => "Hiring 4 ML engineers for Omega"))?;
        w.commit()?;
        w.wait_merging_threads()?;
    }
    let took = t.elapsed().as_secs_f64();
    let (files, bytes, alloc) = du(root.path());
    println!(
        "{n} indexes of one memory: {:.2} ms each to create + commit; {:.1} files, {:.0} bytes \
         ({:.0} allocated) per index",
        took * 1e3 / n as f64,
        files as f64 / n as f64,
        bytes as f64 / n as f64,
        alloc as f64 / n as f64,
    );

    // 2. Open writers: what keeping one per busy namespace costs in memory.
    let before = rss_kib();
    let mut writers = Vec::new();
    for i in 0..100 {
        let index = Index::open_in_dir(root.path().join(format!("ns-{i}")))?;
        let w: IndexWriter<TantivyDocument> = index.writer_with_num_threads(1, 15_000_000)?;
        w.add_document(doc!(id => "x", text => "one more memory"))?;
        writers.push(w);
    }
    println!(
        "100 open writers (one pending memory each): +{:.1} MiB resident",
        (rss_kib() - before) as f64 / 1024.0
    );
    drop(writers);

    // 3. Erasure: delete one memory of 1,000 and look for its words in the files.
    let dir = root.path().join("erase");
    std::fs::create_dir(&dir)?;
    let index = Index::create_in_dir(&dir, schema.clone())?;
    let mut w: IndexWriter<TantivyDocument> = index.writer_with_num_threads(1, 15_000_000)?;
    for batch in 0..10 {
        for j in 0..100 {
            let k = batch * 100 + j;
            let body = if k == 500 { "secret zebracorn ledger".to_owned() } else { format!("note {k}") };
            w.add_document(doc!(id => format!("m{k}"), text => body))?;
        }
        w.commit()?; // ten commits: ten segments, as writes arriving over time make
    }
    let t = Instant::now();
    w.delete_term(Term::from_field_text(id, "m500"));
    w.commit()?;
    let delete_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "erase: delete + commit {delete_ms:.1} ms; its word still in a segment: {}",
        still_indexed(&index, text, "zebracorn")
    );
    let t = Instant::now();
    let ids = index.searchable_segment_ids()?;
    let segments = ids.len();
    w.merge(&ids).wait()?;
    w.garbage_collect_files().wait()?;
    println!(
        "erase: merge of {segments} segments + garbage collection {:.1} ms; its word still in a \
         segment: {} ({} files)",
        t.elapsed().as_secs_f64() * 1e3,
        still_indexed(&index, text, "zebracorn"),
        du(&dir).0
    );
    w.wait_merging_threads()?;
    Ok(())
}
