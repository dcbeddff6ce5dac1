//! One error type for every face of memsilo. Each variant has a stable `snake_case` code
//! (the Python exception's `.code`, the JS `error.code`, the Go `Code`, the C integer)
//! and an HTTP status; the table lives in [`ErrorCode`]. The lists the other faces spell out
//! (Python's and Node's classes, Go's constants, C's integers, the docs' table) are tested
//! against [`ErrorCode::ALL`], so a code added here fails their tests until they have it.
//!
//! An error caused by an I/O, storage (LMDB) or encoding failure keeps that failure as its
//! [`std::error::Error::source`]; [`Error::causes`] lists the chain's messages, and the error
//! body carries them as `causes`, which is how every binding shows them.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

mod body;
mod code;
mod import;

pub use body::{error_body, error_from_body};
pub use code::ErrorCode;
pub use import::ImportSummary;

/// Result with memsilo's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure memsilo reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request field failed validation.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The offending field, as named on the wire.
        field: String,
        /// Why it was refused.
        reason: String,
    },
    /// A request field failed validation, worded as the tenant API's reference words it
    /// (`Validation error: name must be at least 3 characters`); code `invalid_argument`.
    #[error("Validation error: {field} {reason}")]
    Validation {
        /// The offending field, as named on the wire.
        field: String,
        /// Why it was refused (follows the field name in the message).
        reason: String,
    },
    /// The key is missing, malformed, unknown, expired or revoked.
    #[error("{0}")]
    Unauthorized(String),
    /// The principal may not do this.
    #[error("{message}")]
    Forbidden {
        /// Human-readable reason.
        message: String,
        /// The namespace asked for, when the refusal is about one.
        namespace: Option<String>,
    },
    /// The named thing does not exist.
    #[error("{} not found: {id}", capitalized(kind))]
    NotFound {
        /// What kind of thing (tenant, member, key, memory, entity, namespace).
        kind: &'static str,
        /// The identifier asked for.
        id: String,
    },
    /// The request conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// A quota would be exceeded.
    #[error("{quota} quota exceeded for tenant {tenant}: limit {limit}, would be {requested}")]
    QuotaExceeded {
        /// The tenant whose quota binds (may be a parent).
        tenant: String,
        /// Which quota: `storage_quota_bytes`, `max_members`, `max_namespaces`.
        quota: &'static str,
        /// The limit in force.
        limit: u64,
        /// What the usage would have become.
        requested: u64,
    },
    /// Too many requests for the tenant's qps limit.
    #[error("rate limit of {limit} requests/s exceeded for tenant {tenant}; retry after {retry_after_secs}s")]
    RateLimited {
        /// The tenant being throttled.
        tenant: String,
        /// Its qps limit.
        limit: u32,
        /// Seconds until a request would be admitted (at least 1).
        retry_after_secs: u64,
    },
    /// The tenant's heavy operations already use its `compute_quota_cores` (code
    /// `rate_limited`): the operation waited for a slot and got none.
    #[error(
        "compute quota of tenant {tenant} in use: compute_quota_cores {cores} runs {} heavy operation(s) at once{} and none finished in time; retry after {retry_after_secs}s",
        (cores.floor() as u64).max(1),
        if *shared { ", shared with its parent tenant" } else { "" }
    )]
    ComputeBusy {
        /// The caller's tenant.
        tenant: String,
        /// Its `compute_quota_cores`.
        cores: f64,
        /// An ancestor's quota, not the tenant's own, is the one in use.
        shared: bool,
        /// Seconds to wait before retrying.
        retry_after_secs: u64,
    },
    /// A body or field is beyond the documented limits.
    #[error("{field}: {reason}")]
    PayloadTooLarge {
        /// The offending field (or `body`).
        field: String,
        /// Which limit.
        reason: String,
    },
    /// The data directory was written in a storage format this version does not open: that
    /// of an earlier version (code `invalid_argument`, field `path`).
    #[error(
        "path: data directory {dir} was written by memsilo {version}, whose storage format \
         this version cannot open; run `memsilo upgrade {dir}` to convert it"
    )]
    UpgradeRequired {
        /// The data directory.
        dir: String,
        /// The version whose format it holds.
        version: String,
    },
    /// Encrypted data could not be opened: its key is not configured, not in the key
    /// provider, or does not decrypt it (code `internal`: the server's configuration).
    #[error("cannot open the encrypted data of {owner} (key id {key_id}): the key {problem}")]
    EncryptionKey {
        /// Whose data: `instance`, or `tenant <id>`.
        owner: String,
        /// The key's id in the key provider.
        key_id: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A bug or environment failure.
    #[error("internal error: {0}")]
    Internal(String),
    /// The storage engine (LMDB) failed; reported with code `internal`.
    #[error("storage error: {0}")]
    Storage(#[from] heed3::Error),
    /// An I/O failure, kept as the source; reported with code `internal`.
    #[error("internal error: io: {0}")]
    Io(#[from] std::io::Error),
    /// JSON that could not be encoded or decoded, kept as the source; code `internal`.
    #[error("internal error: encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    /// An environment failure, with what was being done; the failure is the source. Code
    /// `internal`. Built by [`Error::internal_from`].
    #[error("internal error: {context}: {source}")]
    Caused {
        /// What was being done (`random source`, `session record`, ...).
        context: String,
        /// The failure underneath.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// One failure reported to each of several callers (every write of a group commit that
    /// failed): it reads, codes and chains exactly as that failure.
    #[error(transparent)]
    Shared(Arc<Error>),
    /// The failure that stopped an import, with what the import wrote before it (the batches
    /// before the failing one): it reads, codes and chains exactly as that failure, and its
    /// error body adds `imported` (and `line`, the line it names). Built by
    /// [`Error::stopped_import`].
    #[error("{error}")]
    ImportStopped {
        /// The failure.
        error: Box<Error>,
        /// What the import wrote before it.
        imported: ImportSummary,
    },
    /// An error known by its code and words only, kept as sent: one a remote memsilo reported
    /// (with its whole error body: `tenant_id`, `retry_after`, `causes`, ...), or one rebuilt
    /// by [`Error::from_code`]. It reads the same as in-process.
    #[error("{message}")]
    Remote {
        /// The code the server sent.
        code: ErrorCode,
        /// The server's message.
        message: String,
        /// The server's error body.
        body: serde_json::Value,
    },
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument { .. }
            | Error::Validation { .. }
            | Error::UpgradeRequired { .. } => ErrorCode::InvalidArgument,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Forbidden { .. } => ErrorCode::Forbidden,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            Error::RateLimited { .. } | Error::ComputeBusy { .. } => ErrorCode::RateLimited,
            Error::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::Internal(_)
            | Error::EncryptionKey { .. }
            | Error::Storage(_)
            | Error::Io(_)
            | Error::Encoding(_)
            | Error::Caused { .. } => ErrorCode::Internal,
            Error::Remote { code, .. } => *code,
            Error::Shared(e) => e.code(),
            Error::ImportStopped { error, .. } => error.code(),
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { field: field.into(), reason: reason.into() }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound { kind, id: id.into() }
    }

    /// The refusal given for any namespace outside a key's scope, whether it exists or not.
    pub fn namespace_forbidden(namespace: &str) -> Self {
        Error::Forbidden {
            message: format!("Key not authorized for namespace {namespace}"),
            namespace: Some(namespace.to_owned()),
        }
    }

    /// A refusal that names no namespace.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::Forbidden { message: message.into(), namespace: None }
    }

    /// Seconds to wait before retrying, for `rate_limited`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after_secs, .. }
            | Error::ComputeBusy { retry_after_secs, .. } => Some(*retry_after_secs),
            Error::Remote { code: ErrorCode::RateLimited, body, .. } => {
                Some(body["retry_after"].as_u64().unwrap_or(1))
            }
            Error::Shared(e) => e.retry_after(),
            Error::ImportStopped { error, .. } => error.retry_after(),
            _ => None,
        }
    }

    /// Builds an error from a wire code and message (remote clients, FFI callers). The
    /// message is kept word for word and no field is made up: codes whose variants need
    /// typed fields (a tenant, a limit, a field name) become [`Error::Remote`] with a body of
    /// the code and message alone.
    pub fn from_code(code: ErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        match code {
            ErrorCode::Unauthorized => Error::Unauthorized(message),
            ErrorCode::Forbidden => Error::Forbidden { message, namespace: None },
            ErrorCode::Conflict => Error::Conflict(message),
            _ => {
                let body = serde_json::json!({
                    "error": code.as_str(),
                    "message": message,
                    "code": code.http_status(),
                });
                Error::Remote { code, message, body }
            }
        }
    }

    /// An `internal` error for an environment failure, keeping `source` as the cause:
    /// `internal error: <context>: <source>`.
    pub fn internal_from(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Caused { context: context.into(), source: source.into() }
    }

    /// The messages of the failures underneath this error, nearest first (an I/O, storage or
    /// encoding failure in its own words); empty when it has none. A remote error's are the
    /// server's (`causes` in its body).
    pub fn causes(&self) -> Vec<String> {
        match self {
            Error::Remote { body, .. } => {
                let sent = body["causes"].as_array().into_iter().flatten();
                return sent.filter_map(|c| c.as_str().map(str::to_owned)).collect();
            }
            Error::Shared(e) => return e.causes(),
            Error::ImportStopped { error, .. } => return error.causes(),
            _ => {}
        }
        let mut causes: Vec<String> = Vec::new();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            let message = e.to_string();
            if causes.last() != Some(&message) {
                causes.push(message);
            }
            next = e.source();
        }
        causes
    }
}

/// Runs `f`, turning a panic into an `internal` error (`panic in memsilo: <message>`): what
/// every binding does so that no panic unwinds into another language.
pub fn catch_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        Err(Error::Internal(format!("panic in memsilo: {}", panic_message(&*panic))))
    })
}

/// The text a panic was raised with (`panic!` carries a `&str` or a `String`), or
/// `unknown panic`.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic")
}

/// `tenant` -> `Tenant`: messages start with a capital (`Tenant not found: <id>`).
fn capitalized(kind: &str) -> String {
    let mut chars = kind.chars();
    chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_every_representation() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_str_code(code.as_str()), Some(code));
            assert_eq!(ErrorCode::from_i32(code.as_i32()), Some(code));
            let rebuilt = Error::from_code(code, "x: y");
            assert_eq!((rebuilt.code(), rebuilt.to_string().as_str()), (code, "x: y"));
            assert_eq!(error_body(&rebuilt)["error"], code.as_str());
        }
        assert_eq!(ErrorCode::QuotaExceeded.http_status(), 403);
        assert_eq!(ErrorCode::RateLimited.http_status(), 429);
        assert_eq!(ErrorCode::MethodNotAllowed.http_status(), 405);
        // The C integers of the first nine codes never change.
        assert_eq!((ErrorCode::Internal.as_i32(), ErrorCode::MethodNotAllowed.as_i32()), (9, 10));
        assert_eq!(ErrorCode::from_i32(0), None);
    }

    /// docs/src/api/errors.md has one row per code, with its status, in the table's order.
    #[test]
    fn the_documented_error_table_is_this_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/api/errors.md");
        let doc = std::fs::read_to_string(path).expect("docs/src/api/errors.md");
        let rows: Vec<(&str, u16)> = doc
            .lines()
            .filter_map(|l| {
                let mut cells = l.strip_prefix("| `")?.splitn(2, "` | ");
                let (code, rest) = (cells.next()?, cells.next()?);
                Some((code, rest.split(' ').next()?.parse().ok()?))
            })
            .collect();
        let table: Vec<(&str, u16)> =
            ErrorCode::ALL.iter().map(|c| (c.as_str(), c.http_status())).collect();
        assert_eq!(rows, table);
    }

    #[test]
    fn a_failure_underneath_is_kept_as_the_cause_and_the_message_reads_as_before() {
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        let words = json.to_string();
        let e = Error::from(json);
        assert_eq!(e.to_string(), format!("internal error: encoding: {words}"));
        assert_eq!(e.causes(), [words]);
        let e = Error::internal_from("session record", std::io::Error::other("disk gone"));
        assert_eq!(e.to_string(), "internal error: session record: disk gone");
        assert_eq!((e.code(), e.causes()), (ErrorCode::Internal, vec!["disk gone".to_owned()]));
        // A remote client's error keeps the causes the server sent.
        let remote = error_from_body(&error_body(&e));
        assert_eq!((remote.to_string(), remote.causes()), (e.to_string(), e.causes()));
    }

    #[test]
    fn a_panic_becomes_an_internal_error_with_its_message() {
        let e = catch_panic::<()>(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string()),
            (ErrorCode::Internal, "internal error: panic in memsilo: boom 7".to_owned())
        );
        let e = catch_panic::<()>(|| std::panic::panic_any(3_u8)).unwrap_err();
        assert!(e.to_string().ends_with("panic in memsilo: unknown panic"), "{e}");
        assert_eq!(catch_panic(|| Ok(5)).unwrap(), 5);
    }

    #[test]
    fn namespace_refusal_names_the_namespace() {
        let e = Error::namespace_forbidden("tenant-acme-corp");
        assert_eq!(e.to_string(), "Key not authorized for namespace tenant-acme-corp");
        assert_eq!(e.code(), ErrorCode::Forbidden);
    }

    #[test]
    fn not_found_and_validation_read_as_the_tenant_reference_words_them() {
        assert_eq!(Error::not_found("tenant", "t-1").to_string(), "Tenant not found: t-1");
        let e = Error::Validation {
            field: "name".into(),
            reason: "must be at least 3 characters".into(),
        };
        assert_eq!(e.to_string(), "Validation error: name must be at least 3 characters");
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
    }
}
