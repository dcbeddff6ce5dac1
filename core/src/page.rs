//! Pagination shared by every list: `offset` and `limit` (default 50, at most 100).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default page size.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest page size; larger is `invalid_argument`.
pub const MAX_LIMIT: u64 = 100;

/// A page request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Items to skip.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Items to return (default 50, max 100).
    #[serde(default)]
    pub limit: Option<u64>,
}

impl Page {
    /// A page of `limit` items after `offset`.
    pub fn new(offset: u64, limit: u64) -> Self {
        Page { offset: Some(offset), limit: Some(limit) }
    }

    /// Validated `(offset, limit)`.
    pub fn bounds(self) -> Result<(usize, usize)> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let offset = usize::try_from(self.offset.unwrap_or(0))
            .map_err(|_| Error::invalid("offset", "too large"))?;
        Ok((offset, limit as usize))
    }
}

/// One page of a list, with the total before paging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paged<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Items matching in all pages.
    pub total_count: u64,
    /// Where the next page starts, for the lists paged by cursor (`None`: no page follows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
