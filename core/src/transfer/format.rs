//! The export format's public types: arguments and pages of an export, arguments and summary of
//! an import, and the kinds of line.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `format` of an export's first line (`/2`: vectors as base64 strings; `/3`: the
/// namespace line names the vectors' embedder).
pub const FORMAT: &str = "memsilo-export/3";

/// Formats an import reads: the current one, `memsilo-export/2` (no `embedder`) and
/// `memsilo-export/1` (vectors as arrays).
pub const FORMATS: &[&str] = &["memsilo-export/1", "memsilo-export/2", FORMAT];

/// Lines per export page by default, and at most.
pub const DEFAULT_PAGE: usize = 1000;

/// Largest page.
pub const MAX_PAGE: usize = 10_000;

/// Longest line an import reads, in bytes.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Arguments of `export_namespace`: one page.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ExportArgs {
    /// Namespace.
    pub namespace: String,
    /// Where the previous page stopped (absent: the first page, which starts with the
    /// `namespace` line).
    #[serde(default)]
    pub cursor: Option<String>,
    /// Lines in this page (default 1000, at most 10000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One line of an export: a JSON object with a `kind`, as JSON text. Serialised, it is written
/// as it is (not parsed and formatted again).
pub type Line = Box<serde_json::value::RawValue>;

/// One page of an export.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ExportPage {
    /// The lines, each a JSON object with a `kind`.
    #[cfg_attr(feature = "schema", schemars(with = "Vec<Value>"))]
    pub lines: Vec<Line>,
    /// Where the next page starts; `null` after the last page.
    pub next_cursor: Option<String>,
}

/// Arguments of `import_namespace`: one batch of lines.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportArgs {
    /// The namespace to import into (it must exist).
    pub namespace: String,
    /// The lines, as exported: JSON objects, or their text (one line each).
    pub lines: Vec<Value>,
    /// The number of the first line in its file (for error messages; default 1).
    #[serde(default)]
    pub first_line: Option<u64>,
    /// The embedder that made the vectors of these lines, as the export's namespace line
    /// names it (`caller` for caller-supplied vectors), for a batch after the one holding that
    /// line. Absent: the vectors are caller vectors, as in files before `memsilo-export/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
}

// What an import wrote: defined beside the error, which carries it for an import that failed.
pub use crate::error::ImportSummary;

/// The kinds of line, in export order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The first line.
    Namespace,
    /// A graph entity.
    Entity,
    /// A graph relation.
    Relation,
    /// A memory.
    Memory,
}
