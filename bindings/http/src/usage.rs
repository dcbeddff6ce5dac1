//! Per-tenant storage usage for `/metrics`, read as root (bounded to the first
//! [`MAX_TENANTS`] tenants so a scrape stays cheap; the list carries each tenant's usage).
//! Series carry the tenant id only: names are the tenants' own words, not an operator's need.

use std::fmt::Write;

use memsilo::{Engine, Page};

/// Tenants reported at most.
pub const MAX_TENANTS: u64 = 1000;

/// The `memsilo_tenant_storage_bytes` family, or an empty string if it cannot be read.
pub fn tenant_storage(engine: &Engine) -> String {
    let root = engine.root();
    let mut out = String::from(
        "# HELP memsilo_tenant_storage_bytes Bytes charged to a tenant's storage quota.\n\
         # TYPE memsilo_tenant_storage_bytes gauge\n",
    );
    let mut offset = 0;
    while offset < MAX_TENANTS {
        let Ok(page) = root.list_tenants(Page::new(offset, 100), None, None) else {
            return String::new();
        };
        if page.items.is_empty() {
            break;
        }
        offset += page.items.len() as u64;
        for info in page.items {
            let _ = writeln!(
                out,
                "memsilo_tenant_storage_bytes{{tenant_id=\"{}\"}} {}",
                crate::metrics::escape(&info.tenant.id),
                info.usage.storage_bytes
            );
        }
        if offset >= page.total_count {
            break;
        }
    }
    out
}
