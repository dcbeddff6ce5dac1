//! The error-code table: each code's wire name, HTTP status and C integer, both ways (as heed's
//! `mdb/lmdb_error.rs` does for LMDB's codes). This is the only list of codes: the bindings'
//! lists and the docs' table are tested against [`ErrorCode::ALL`].

use std::fmt;

/// The stable error codes of API.md, with their HTTP status and C integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Validation failed; the message names the field.
    InvalidArgument,
    /// Missing, malformed, unknown, expired or revoked key.
    Unauthorized,
    /// Valid key, not allowed here (also: unknown namespace for non-admins).
    Forbidden,
    /// Tenant, member, key, memory, entity (or, for admins, namespace) not found.
    NotFound,
    /// Duplicate name, tenant with children, member already exists.
    Conflict,
    /// A storage, member or namespace limit would be exceeded; nothing was written.
    QuotaExceeded,
    /// Over the tenant's queries-per-second limit.
    RateLimited,
    /// Body or field beyond the documented limits.
    PayloadTooLarge,
    /// A bug or an environment failure (I/O, LMDB).
    Internal,
    /// An HTTP method the route does not take (the answer's `Allow` header lists those it
    /// does). Only a server answers it; last so that the C integers before it keep theirs.
    MethodNotAllowed,
}

impl ErrorCode {
    /// Every code, in C-integer order.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::InvalidArgument,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::QuotaExceeded,
        ErrorCode::RateLimited,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Internal,
        ErrorCode::MethodNotAllowed,
    ];

    /// The wire name, e.g. `"not_found"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Internal => "internal",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// Parses a wire name; unknown names are `None`.
    pub fn from_str_code(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The HTTP status of API.md's table.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::QuotaExceeded => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Internal => 500,
            ErrorCode::MethodNotAllowed => 405,
        }
    }

    /// The C ABI integer (0 is success, so codes start at 1).
    pub fn as_i32(self) -> i32 {
        Self::ALL.iter().position(|c| *c == self).map_or(0, |i| i as i32 + 1)
    }

    /// Inverse of [`ErrorCode::as_i32`].
    pub fn from_i32(n: i32) -> Option<Self> {
        usize::try_from(n - 1).ok().and_then(|i| Self::ALL.get(i).copied())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl super::Error {
    /// The code a Dakera SDK reads from this error (its `ErrorCode` values), for servers that
    /// answer Dakera clients in Dakera's error shape. Refined by what the error carries: a
    /// refusal that names a namespace, what was not found, a storage failure. `None` where
    /// Dakera has no code for it (a tenant, member, entity, relation, session or graph path
    /// not found, or a not-found reported by another server without its kind).
    pub fn dakera_code(&self) -> Option<&'static str> {
        use super::Error as E;
        Some(match self {
            E::Shared(e) => return e.dakera_code(),
            E::ImportStopped { error, .. } => return error.dakera_code(),
            E::Forbidden { namespace: Some(_), .. } => "NAMESPACE_ACCESS_DENIED",
            E::NotFound { kind, .. } => match *kind {
                "namespace" => "NAMESPACE_NOT_FOUND",
                "memory" => "VECTOR_NOT_FOUND",
                "key" => "API_KEY_NOT_FOUND",
                "route" => "ROUTE_NOT_FOUND",
                _ => return None,
            },
            E::Storage(_) => "STORAGE_ERROR",
            _ => match self.code() {
                ErrorCode::InvalidArgument => "INVALID_REQUEST",
                // Missing, malformed, unknown, expired or revoked: the error says which in
                // words only.
                ErrorCode::Unauthorized => "AUTHENTICATION_REQUIRED",
                ErrorCode::Forbidden => "INSUFFICIENT_SCOPE",
                ErrorCode::NotFound => return None,
                ErrorCode::Conflict => "CONFLICT",
                ErrorCode::QuotaExceeded => "QUOTA_EXCEEDED",
                ErrorCode::RateLimited => "RATE_LIMIT_EXCEEDED",
                ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
                ErrorCode::Internal => "INTERNAL_ERROR",
                ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Error;

    #[test]
    fn dakera_codes_follow_what_the_error_knows() {
        let cases = [
            (Error::invalid("name", "too long"), Some("INVALID_REQUEST")),
            (Error::Unauthorized("API key revoked".into()), Some("AUTHENTICATION_REQUIRED")),
            (Error::namespace_forbidden("acme"), Some("NAMESPACE_ACCESS_DENIED")),
            (Error::forbidden("admin only"), Some("INSUFFICIENT_SCOPE")),
            (Error::not_found("namespace", "n"), Some("NAMESPACE_NOT_FOUND")),
            (Error::not_found("memory", "m"), Some("VECTOR_NOT_FOUND")),
            (Error::not_found("key", "k"), Some("API_KEY_NOT_FOUND")),
            (Error::not_found("route", "GET /x"), Some("ROUTE_NOT_FOUND")),
            (Error::not_found("tenant", "t"), None),
            (Error::Conflict("exists".into()), Some("CONFLICT")),
            (
                Error::QuotaExceeded {
                    tenant: "t".into(),
                    quota: "max_members",
                    limit: 1,
                    requested: 2,
                },
                Some("QUOTA_EXCEEDED"),
            ),
            (
                Error::RateLimited { tenant: "t".into(), limit: 1, retry_after_secs: 1 },
                Some("RATE_LIMIT_EXCEEDED"),
            ),
            (
                Error::PayloadTooLarge { field: "body".into(), reason: "big".into() },
                Some("PAYLOAD_TOO_LARGE"),
            ),
            (Error::Internal("bug".into()), Some("INTERNAL_ERROR")),
            (
                Error::Storage(heed3::Error::Io(std::io::Error::other("disk"))),
                Some("STORAGE_ERROR"),
            ),
            (
                Error::from_code(super::ErrorCode::MethodNotAllowed, "PUT is not allowed here"),
                Some("METHOD_NOT_ALLOWED"),
            ),
            (Error::from_code(super::ErrorCode::NotFound, "Memory not found: m"), None),
            (
                Error::Shared(std::sync::Arc::new(Error::not_found("namespace", "n"))),
                Some("NAMESPACE_NOT_FOUND"),
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.dakera_code(), code, "{e:?}");
        }
    }
}
