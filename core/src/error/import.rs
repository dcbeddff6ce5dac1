//! What an import that failed had written: [`Error::ImportStopped`] keeps the failure's code,
//! words and causes, and adds the counts of the batches written before it, so that every face
//! (an error body's `imported` and `line`) tells a caller how far a large import got.

use serde::{Deserialize, Serialize};

use super::Error;

/// What an import wrote (`memsilo::transfer` re-exports it; it lives here because an import's
/// error carries it too, see [`Error::imported`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ImportSummary {
    /// Lines read.
    pub lines: u64,
    /// Memories stored or replaced.
    pub memories: u64,
    /// Entities created or updated.
    pub entities: u64,
    /// Relations added (those already there are not counted).
    pub relations: u64,
    /// Memories left out because they had expired.
    pub expired: u64,
}

impl ImportSummary {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: ImportSummary) {
        self.lines += other.lines;
        self.memories += other.memories;
        self.entities += other.entities;
        self.relations += other.relations;
        self.expired += other.expired;
    }
}

impl Error {
    /// This error as the one that stopped an import after it wrote `imported` (the batches
    /// before the failing one). An error that already says what its import wrote (a remote
    /// server's answer) is given these counts instead.
    pub fn stopped_import(self, imported: ImportSummary) -> Error {
        let error = match self {
            Error::ImportStopped { error, .. } => error,
            other => Box::new(other),
        };
        Error::ImportStopped { error, imported }
    }

    /// What the import this error stopped had written before it (the batches before the
    /// failing one), for the error of an import; `None` for any other.
    pub fn imported(&self) -> Option<ImportSummary> {
        match self {
            Error::ImportStopped { imported, .. } => Some(*imported),
            Error::Shared(e) => e.imported(),
            _ => None,
        }
    }

    /// The number of the line of an import's text this error names (`line 12: ...`), if it
    /// names one.
    pub fn line(&self) -> Option<u64> {
        let field = match self {
            Error::InvalidArgument { field, .. } | Error::PayloadTooLarge { field, .. } => {
                field.as_str()
            }
            Error::Remote { body, .. } => body["field"].as_str()?,
            Error::ImportStopped { error, .. } => return error.line(),
            Error::Shared(e) => return e.line(),
            _ => return None,
        };
        field.strip_prefix("line ")?.parse().ok()
    }
}
