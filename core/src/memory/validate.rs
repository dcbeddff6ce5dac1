//! Validation of memory arguments: each failure is `invalid_argument` naming the field, before
//! anything is written.

use super::{CALLER_EMBEDDER, MAX_CONTENT_BYTES, MAX_ID_CHARS, MAX_TAGS, MAX_TAG_BYTES};
use crate::auth::Principal;
use crate::datastore::NamespaceStats;
use crate::error::{Error, Result};
use crate::records::NamespaceRecord;

/// Which namespace a memory call addresses: the explicit namespace; else the `agent_id`
/// value; else the key's only namespace. The flag says whether `agent_id` was used as the
/// namespace (then it is not also a filter).
pub(crate) fn target_namespace(
    principal: &Principal,
    namespace: Option<&str>,
    agent_id: Option<&str>,
) -> Result<(String, bool)> {
    match (namespace, agent_id) {
        (Some(ns), _) => Ok((ns.to_owned(), false)),
        (None, Some(agent)) => Ok((agent.to_owned(), true)),
        (None, None) => {
            principal.only_namespace().map(|n| (n.to_owned(), false)).ok_or_else(|| {
                Error::invalid(
                    "namespace",
                    "required (the key does not reach exactly one namespace)",
                )
            })
        }
    }
}

pub(crate) fn validate_tags(tags: &[String], field: &str) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid(field, format!("at most {MAX_TAGS} tags")));
    }
    for (i, t) in tags.iter().enumerate() {
        if t.is_empty() || t.len() > MAX_TAG_BYTES {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!("must be 1-{MAX_TAG_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn validate_content(content: &str, field: &str) -> Result<()> {
    if content.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(Error::invalid(field, format!("must be at most {MAX_CONTENT_BYTES} bytes")));
    }
    Ok(())
}

pub(crate) fn validate_ttl(ttl: Option<u64>, field: &str) -> Result<()> {
    if ttl.is_some_and(|t| t == 0 || t > 100 * 365 * 86_400) {
        return Err(Error::invalid(field, "must be between 1 second and 100 years"));
    }
    Ok(())
}

/// A caller-chosen memory id: 1-256 characters, none of them a control character.
pub(crate) fn validate_id(id: &str, field: &str) -> Result<()> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_ID_CHARS {
        return Err(Error::invalid(field, format!("must be 1-{MAX_ID_CHARS} characters")));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must be printable (no control characters)"));
    }
    Ok(())
}

/// Every id of a list asked for (`field[i]` names a bad one): an id no memory can have is a
/// mistake to report, not an absent memory.
pub(crate) fn validate_ids(ids: &[String], field: &str) -> Result<()> {
    ids.iter().enumerate().try_for_each(|(i, id)| validate_id(id, &format!("{field}[{i}]")))
}

pub(crate) fn validate_session(session: Option<&str>, field: &str) -> Result<()> {
    if session.is_some_and(|s| s.is_empty() || s.len() > 256 || s.chars().any(char::is_control)) {
        return Err(Error::invalid(field, "must be 1-256 bytes of printable characters"));
    }
    Ok(())
}

pub(crate) fn validate_agent(agent: Option<&str>) -> Result<()> {
    if agent.is_some_and(|a| a.is_empty() || a.len() > 256) {
        return Err(Error::invalid("agent_id", "must be 1-256 bytes"));
    }
    Ok(())
}

pub(crate) fn validate_importance(v: f64, field: &str) -> Result<()> {
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(Error::invalid(field, "must be a number between 0 and 1"));
    }
    Ok(())
}

/// Fixes the namespace's dimension and embedder on first write; refuses a mismatch after.
pub(super) fn check_vector_space(
    rec: &NamespaceRecord,
    stats: &mut NamespaceStats,
    dims: Option<usize>,
    embedder: &str,
) -> Result<()> {
    let Some(dims) = dims else { return Ok(()) };
    match stats.embedder.as_deref() {
        Some(CALLER_EMBEDDER) if embedder != CALLER_EMBEDDER => {
            return Err(Error::invalid(
                "embedding",
                "this namespace holds caller-supplied vectors; pass embedding",
            ));
        }
        Some(e) if e != CALLER_EMBEDDER && embedder != CALLER_EMBEDDER && e != embedder => {
            return Err(Error::invalid(
                "content",
                format!("this namespace was embedded with {e}, not {embedder}"),
            ));
        }
        _ => {}
    }
    if let Some(want) = stats.dimensions.or(rec.dimensions) {
        if want as usize != dims {
            let field = if embedder == CALLER_EMBEDDER { "embedding" } else { "content" };
            return Err(Error::invalid(
                field,
                format!("vector has {dims} dimensions, the namespace uses {want}"),
            ));
        }
    }
    stats.embedder.get_or_insert_with(|| embedder.to_owned());
    stats.dimensions = Some(dims as u32);
    Ok(())
}
