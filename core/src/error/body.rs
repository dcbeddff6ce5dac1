//! The error body every face sends and reads (API.md): `{"error", "message", "code"}`, the
//! typed fields a caller acts on (`field`, `namespace`, `tenant_id`, `retry_after`; `line`
//! and, for an import that stopped, `imported`), and `causes` when a failure lies underneath. Rebuilding an error from a body keeps the message
//! word for word and makes up no field the body does not hold.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{Error, ErrorCode, ImportSummary};

/// The JSON error body of API.md: `{"error", "message", "code", "namespace"?}`, plus
/// `causes` (the messages of the failures underneath, nearest first) when there are any,
/// `line` when the field is a line of an import's text (`line 12`), and `imported` (what
/// the import wrote before it stopped, as `import_namespace` answers) for an import's error.
pub fn error_body(e: &Error) -> Value {
    match e {
        Error::Remote { body, .. } => return body.clone(),
        Error::Shared(e) => return error_body(e),
        Error::ImportStopped { error, imported } => {
            let mut body = error_body(error);
            body["imported"] = json!(imported);
            return body;
        }
        _ => {}
    }
    let code = e.code();
    let mut body =
        json!({ "error": code.as_str(), "message": e.to_string(), "code": code.http_status() });
    match e {
        Error::Forbidden { namespace: Some(ns), .. } => body["namespace"] = json!(ns),
        Error::QuotaExceeded { tenant, .. } => body["tenant_id"] = json!(tenant),
        Error::RateLimited { tenant, retry_after_secs, .. }
        | Error::ComputeBusy { tenant, retry_after_secs, .. } => {
            body["tenant_id"] = json!(tenant);
            body["retry_after"] = json!(retry_after_secs);
        }
        Error::InvalidArgument { field, .. }
        | Error::Validation { field, .. }
        | Error::PayloadTooLarge { field, .. } => {
            body["field"] = json!(field);
        }
        Error::UpgradeRequired { .. } => body["field"] = json!("path"),
        Error::NotFound { kind: "tenant", id } => body["tenant_id"] = json!(id),
        _ => {}
    }
    if let Some(line) = e.line() {
        body["line"] = json!(line);
    }
    let causes = e.causes();
    if !causes.is_empty() {
        body["causes"] = json!(causes);
    }
    body
}

/// Rebuilds an [`Error`] from an error body (remote clients, FFI callers). A body whose
/// typed fields are not all there (or whose message is not worded from them) becomes
/// [`Error::Remote`], which keeps the body as sent.
pub fn error_from_body(body: &Value) -> Error {
    if let Some(imported) = body.get("imported").and_then(|v| ImportSummary::deserialize(v).ok()) {
        let mut failure = body.clone();
        if let Some(fields) = failure.as_object_mut() {
            fields.remove("imported");
        }
        return error_from_body(&failure).stopped_import(imported);
    }
    let code =
        body["error"].as_str().and_then(ErrorCode::from_str_code).unwrap_or(ErrorCode::Internal);
    let message = body["message"].as_str().unwrap_or("").to_owned();
    let remote = |message: String| Error::Remote { code, message, body: body.clone() };
    match code {
        ErrorCode::Unauthorized => Error::Unauthorized(message),
        ErrorCode::Conflict => Error::Conflict(message),
        ErrorCode::Forbidden => {
            Error::Forbidden { message, namespace: body["namespace"].as_str().map(str::to_owned) }
        }
        ErrorCode::InvalidArgument | ErrorCode::PayloadTooLarge => {
            let Some(field) = body["field"].as_str().map(str::to_owned) else {
                return remote(message);
            };
            if let Some(reason) = message.strip_prefix(&format!("Validation error: {field} ")) {
                return Error::Validation { field, reason: reason.to_owned() };
            }
            let Some(reason) = message.strip_prefix(&format!("{field}: ")).map(str::to_owned)
            else {
                return remote(message);
            };
            if code == ErrorCode::InvalidArgument {
                Error::InvalidArgument { field, reason }
            } else {
                Error::PayloadTooLarge { field, reason }
            }
        }
        // These variants format their own message from typed fields; keep the server's words.
        ErrorCode::NotFound
        | ErrorCode::QuotaExceeded
        | ErrorCode::RateLimited
        | ErrorCode::Internal
        | ErrorCode::MethodNotAllowed => remote(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_round_trip_with_the_same_message_and_fields() {
        let errors = [
            Error::invalid("name", "too long"),
            Error::Unauthorized("API key revoked".into()),
            Error::namespace_forbidden("tenant-acme"),
            Error::not_found("tenant", "t-1"),
            Error::Validation {
                field: "name".into(),
                reason: "must be at least 3 characters".into(),
            },
            Error::Conflict("namespace exists".into()),
            Error::QuotaExceeded {
                tenant: "t-1".into(),
                quota: "max_namespaces",
                limit: 1,
                requested: 2,
            },
            Error::RateLimited { tenant: "t-1".into(), limit: 5, retry_after_secs: 3 },
            Error::PayloadTooLarge { field: "memories".into(), reason: "at most 1000".into() },
            Error::Internal("disk full".into()),
        ];
        for e in errors {
            let body = error_body(&e);
            let back = error_from_body(&body);
            assert_eq!(back.code(), e.code());
            assert_eq!(back.to_string(), e.to_string());
            assert_eq!(back.retry_after(), e.retry_after());
            assert_eq!(error_body(&back), body);
        }
    }

    /// A body without the field its code's variant names (another server, a C caller's
    /// JSON) keeps its message word for word: no empty field is made up.
    #[test]
    fn a_body_without_its_typed_fields_keeps_its_words() {
        let sent = [
            json!({ "error": "invalid_argument", "message": "name is too long", "code": 400 }),
            json!({ "error": "invalid_argument", "message": "too long", "field": "name" }),
            json!({ "error": "payload_too_large", "message": "body too big", "code": 413 }),
        ];
        for body in sent {
            let e = error_from_body(&body);
            assert!(matches!(e, Error::Remote { .. }), "{e:?}");
            assert_eq!(e.to_string(), body["message"].as_str().unwrap());
            assert_eq!(e.code().as_str(), body["error"].as_str().unwrap());
            assert_eq!(error_body(&e), body);
        }
    }

    /// An import's error keeps the failure's code and words and says what the import wrote
    /// before it and which line it names, in the body and rebuilt from it (a remote import).
    #[test]
    fn an_import_error_says_what_was_written_before_it_and_which_line_failed() {
        let imported = ImportSummary { lines: 3000, memories: 3000, ..Default::default() };
        let bad = Error::invalid("line 3500", "vector has 1 dimensions, namespace has 3");
        let quota = Error::QuotaExceeded {
            tenant: "t-1".into(),
            quota: "storage_quota_bytes",
            limit: 10,
            requested: 11,
        };
        for (failure, line) in [(bad, Some(3500)), (quota, None)] {
            let words = failure.to_string();
            let code = failure.code();
            let e = failure.stopped_import(imported);
            assert_eq!((e.code(), e.to_string(), e.line()), (code, words.clone(), line));
            let body = error_body(&e);
            assert_eq!(body["imported"], json!(imported));
            assert_eq!(body["line"].as_u64(), line);
            assert_eq!(body["message"], words);
            let back = error_from_body(&body);
            assert_eq!((back.imported(), back.line()), (Some(imported), line));
            assert_eq!((back.code(), back.to_string()), (code, words));
            assert_eq!(error_body(&back), body);
        }
        // Stopped again (a remote answer, counted by a caller): the latest counts, once.
        let e = Error::Internal("x".into()).stopped_import(imported);
        let again = e.stopped_import(ImportSummary::default());
        assert_eq!(error_body(&again)["imported"], json!(ImportSummary::default()));
        assert!(!matches!(again, Error::ImportStopped { error, .. } if error.imported().is_some()));
    }

    /// A failure shared by several callers reads, codes and chains as the failure itself.
    #[test]
    fn a_shared_failure_reads_as_itself() {
        let shared = Error::Shared(std::sync::Arc::new(Error::internal_from(
            "commit",
            std::io::Error::other("disk gone"),
        )));
        assert_eq!(shared.to_string(), "internal error: commit: disk gone");
        assert_eq!(
            (shared.code(), shared.causes()),
            (ErrorCode::Internal, vec!["disk gone".into()])
        );
        assert_eq!(error_body(&shared)["causes"], json!(["disk gone"]));
        let limited = Error::Shared(std::sync::Arc::new(Error::RateLimited {
            tenant: "t".into(),
            limit: 1,
            retry_after_secs: 4,
        }));
        assert_eq!(limited.retry_after(), Some(4));
        assert_eq!(error_body(&limited)["tenant_id"], "t");
    }
}
