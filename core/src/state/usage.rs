//! The engine as [`StorageUsage`]'s source of a tenant tree's figures.
//!
//! [`StorageUsage`]: crate::quota::StorageUsage

use super::State;
use crate::error::Result;
use crate::quota::UsageSource;

impl UsageSource for State {
    fn tree_usage(&self, root: &str) -> Result<std::collections::HashMap<String, u64>> {
        State::tree_usage(self, root)
    }
}
