//! The log's one error type. A conditional put the store refused is [`LogError::Fenced`]
//! (another owner got there first: stop); everything else keeps what failed underneath as its
//! [`source`](std::error::Error::source): the `object_store` error, or the JSON error of an
//! object that does not decode.

use std::fmt;

/// Why a log operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// Another owner wrote this log position (or moved the manifest first): this owner is
    /// fenced and must stop.
    Fenced(u64),
    /// A newer owner than this one (epoch `ours`) already moved the manifest or wrote the log.
    Superseded {
        /// What the newer owner did (`moved the manifest`, `already wrote this log`).
        did: &'static str,
        /// Its epoch.
        theirs: i64,
        /// This owner's.
        ours: i64,
    },
    /// The object store failed; nothing is known to be written (the caller may retry).
    Store {
        /// What was being done (`reading log entry 7`, `listing the log`, ...).
        doing: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A stored object is not what an owner writes (not JSON of its kind).
    Corrupt {
        /// Which object (`log entry 7`, `manifest`).
        object: String,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// An object could not be encoded (JSON).
    Encoding {
        /// Which object.
        object: String,
        /// The encoding error.
        source: serde_json::Error,
    },
}

impl LogError {
    /// A store failure while `doing` something.
    pub(super) fn store(doing: impl Into<String>) -> impl FnOnce(object_store::Error) -> Self {
        let doing = doing.into();
        move |source| LogError::Store { doing, source }
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Fenced(seq) => {
                write!(f, "fenced: log position {seq} was written by a newer owner")
            }
            LogError::Superseded { did, theirs, ours } => {
                write!(f, "a newer owner (epoch {theirs}) {did}; ours is {ours}")
            }
            LogError::Store { doing, source } => write!(f, "object store: {doing}: {source}"),
            LogError::Corrupt { object, source } => write!(f, "{object} is corrupt: {source}"),
            LogError::Encoding { object, source } => {
                write!(f, "{object} cannot be encoded: {source}")
            }
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Fenced(_) | LogError::Superseded { .. } => None,
            LogError::Store { source, .. } => Some(source),
            LogError::Corrupt { source, .. } | LogError::Encoding { source, .. } => Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogError;

    /// A store failure is the log error's source, so the internal error built from it lists
    /// the store's own words among its causes, down to the root.
    #[test]
    fn a_store_failure_is_the_cause() {
        let store =
            object_store::Error::Generic { store: "S3", source: "connection refused".into() };
        let e = LogError::store("reading log entry 7")(store);
        assert_eq!(
            e.to_string(),
            "object store: reading log entry 7: Generic S3 error: connection refused"
        );
        let internal = memsilo::Error::internal_from("namespace a: log", e);
        assert_eq!(internal.code(), memsilo::ErrorCode::Internal);
        assert_eq!(
            internal.causes(),
            [
                "object store: reading log entry 7: Generic S3 error: connection refused",
                "Generic S3 error: connection refused",
                "connection refused",
            ]
        );
    }

    /// An object that does not decode names itself and keeps the JSON error.
    #[test]
    fn a_corrupt_object_keeps_the_json_error() {
        let json = serde_json::from_slice::<super::super::Entry>(b"{").unwrap_err();
        let words = json.to_string();
        let e = LogError::Corrupt { object: "log entry 3".into(), source: json };
        assert_eq!(e.to_string(), format!("log entry 3 is corrupt: {words}"));
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some(words.as_str()));
    }
}
