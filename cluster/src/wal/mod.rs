//! A namespace's write-ahead log on object storage: numbered objects
//! `PREFIX/ns/<hex of the name>/log/<seq, 20 digits>`, each created with a conditional put
//! (create-if-absent). Each object holds one group of writes and the epoch of the owner that
//! wrote it.
//!
//! Fencing needs no lock service: an owner only ever writes the sequence number right after
//! the last one it saw. A new owner replays the log, then claims the next number with a
//! fence object (no writes, its own epoch). From then on an older owner's next put lands on a
//! number that exists and is refused by the store itself (`AlreadyExists`), so two owners
//! never both append. A new owner that loses the race for the fence number to the old owner's
//! last group replays that group too (it may have been acknowledged) and tries the next number.
//!
//! Snapshots: the owner writes the namespace (as `export_namespace` lines) to
//! `PREFIX/ns/<hex>/snapshots/<log position, 20 digits>-<epoch>.jsonl` and then moves the
//! namespace's **manifest** (`PREFIX/ns/<hex>/manifest`) to it with a compare-and-swap (a put
//! conditional on the manifest's entity tag). The manifest names the snapshot and `log_from`, the first
//! log position the snapshot does not hold; loading a namespace = its snapshot + the log from
//! `log_from` on. A new owner first moves the manifest to its own epoch (same CAS), so an older
//! owner can no longer move it: it reads a newer epoch and stops, or its put fails on the changed
//! entity tag. Log objects below `log_from` are then deleted, except **fences**: an owner that was
//! fenced out always has, as its next position, the fence of the owner after it, so keeping
//! fences keeps every stale owner refused even where the log is gone.

mod checkpoint;
mod error;
mod objects;
mod writer;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use checkpoint::{Checkpointer, Published};
pub use error::LogError;
pub use objects::{ManifestState, NamespaceLog};
pub use writer::{Takeover, Writer};

/// One logged write: an operation of the API table and its arguments, with every id the
/// engine would otherwise choose at random already fixed (so a replay is the same write):
/// memory and session ids in the arguments, the ids of what a graph write creates in `ids`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Operation name (`store_memory`, ...).
    pub op: String,
    /// Its arguments.
    pub args: Value,
    /// The ids a graph write (`add_entity`, `add_relation`) gives the rows it creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<memsilo::GraphIds>,
}

impl Record {
    /// A write with nothing fixed beyond its arguments.
    pub fn new(op: &str, args: Value) -> Record {
        Record { op: op.to_owned(), args, ids: None }
    }

    /// Applies the write to the local engine: the first time on the owner, and again on
    /// replay, with the same ids.
    pub fn apply(self, root: &memsilo::Handle) -> memsilo::Result<memsilo::api::Reply> {
        root.with_graph_ids(self.ids).call(&self.op, self.args)
    }
}

/// One log object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The owner epoch that wrote it (the etcd revision of its ownership claim).
    pub epoch: i64,
    /// The node that wrote it.
    pub writer: String,
    /// The writes, in order; empty for a fence.
    pub records: Vec<Record>,
}

/// A namespace's manifest (`DIR/manifest`): where loading starts. Moved only by
/// compare-and-swap, and only by an owner whose epoch is at least the manifest's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The epoch of the newest owner that moved it.
    pub epoch: i64,
    /// That owner's node.
    pub writer: String,
    /// The snapshot object (path under the namespace's directory), if one was taken.
    pub snapshot: Option<String>,
    /// The first log position the snapshot does not hold (0 without a snapshot).
    pub log_from: u64,
}
