//! Snapshots of an owned namespace: its export lines (`export_namespace`, vectors included),
//! read while its writes wait, so a snapshot is the state after every write logged before it;
//! then stored and published (the manifest moved to it) without holding the writes. Loading a
//! snapshot is `import_namespace` of those lines.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use memsilo::{Engine, Error, Result};
use serde_json::json;

use super::{blocking, Node, Owned};
use crate::wal::Published;

impl Node {
    /// Snapshots an owned namespace now (what `snapshot_every` does on its own): the export is
    /// read while its writes wait, then stored and published without holding them.
    pub async fn snapshot(&self, owned: &Arc<Owned>) -> Result<Published> {
        snapshot(self.engine.clone(), owned.clone()).await
    }

    /// Starts a snapshot in the background once `snapshot_every` log objects were written
    /// since the last one; the task goes on while more are due (writes that came in while it
    /// ran do not start a second one).
    pub(super) fn snapshot_if_due(&self, owned: &Arc<Owned>, next: u64) {
        let every = self.config.snapshot_every;
        let due = move |owned: &Owned, next: u64| {
            every > 0 && next.saturating_sub(owned.snapshot_from.load(Ordering::Relaxed)) >= every
        };
        if !due(owned, next) || owned.snapshotting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (engine, owned, node) =
            (self.engine.clone(), owned.clone(), self.config.node_id.clone());
        tokio::spawn(async move {
            loop {
                let started = Instant::now();
                let result = snapshot(engine.clone(), owned.clone()).await;
                match &result {
                    Ok(p) => eprintln!(
                        "memsilo cluster: node {node} snapshot of namespace {} up to log position {}: {} log objects deleted, {} ms",
                        owned.name,
                        p.log_from,
                        p.deleted,
                        started.elapsed().as_millis()
                    ),
                    Err(e) => eprintln!(
                        "memsilo cluster: node {node} snapshot of namespace {} failed: {e}",
                        owned.name
                    ),
                }
                owned.snapshotting.store(false, Ordering::Release);
                let next = owned.writer.lock().await.next_seq();
                if result.is_err()
                    || !due(&owned, next)
                    || owned.snapshotting.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        });
    }
}

/// Exports an owned namespace while its writes wait (so the export is the state after every
/// logged write so far), then stores it and moves the manifest to it.
async fn snapshot(engine: Engine, owned: Arc<Owned>) -> Result<Published> {
    let mut checkpoint = owned.checkpoint.lock().await;
    let (log_from, bytes) = {
        let writer = owned.writer.lock().await;
        let name = owned.name.clone();
        let bytes = blocking(move || export_snapshot(&engine.root(), &name)).await?;
        (writer.next_seq(), bytes)
    };
    let published = checkpoint.publish(log_from, bytes).await.map_err(|e| {
        Error::internal_from(format!("namespace {}: snapshot not published", owned.name), e)
    })?;
    owned.snapshot_from.store(published.log_from, Ordering::Relaxed);
    Ok(published)
}

/// The namespace as export lines (JSON Lines), the format of `export_namespace`, vectors
/// included: the namespace line names the embedder that made them (`memsilo-export/3`), so a
/// node loading the snapshot with the same embedder keeps them instead of embedding every
/// memory again (with another embedder, the import embeds them again itself).
fn export_snapshot(root: &memsilo::Handle, ns: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let args =
            json!({ "namespace": ns, "cursor": cursor, "limit": memsilo::transfer::MAX_PAGE });
        let page: memsilo::transfer::ExportPage =
            serde_json::from_value(root.call("export_namespace", args)?.value)?;
        for line in page.lines {
            serde_json::to_writer(&mut out, &line)?;
            out.push(b'\n');
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// Bytes namespace `ns` uses in the local engine (core's own figure).
pub(super) fn storage_bytes(root: &memsilo::Handle, ns: &str) -> Result<u64> {
    Ok(root.get_namespace(ns)?.storage_bytes)
}

/// Loads a snapshot into namespace `ns` (created empty) with `import_namespace`.
pub(super) fn import_snapshot(
    root: &memsilo::Handle,
    ns: &str,
    bytes: &[u8],
) -> Result<memsilo::transfer::ImportSummary> {
    let mut summary = memsilo::transfer::ImportSummary::default();
    let mut batcher = memsilo::transfer::Batcher::new(memsilo::transfer::DEFAULT_PAGE);
    let mut import = |batch: memsilo::transfer::Batch| -> Result<()> {
        // Later batches name the vectors' embedder too (the namespace line is in the first).
        summary.add(root.import_batch(batch.into_args(ns))?);
        Ok(())
    };
    for line in bytes.split(|b| *b == b'\n') {
        if let Some(batch) = batcher.push(line)? {
            import(batch)?;
        }
    }
    if let Some(batch) = batcher.finish() {
        import(batch)?;
    }
    Ok(summary)
}
