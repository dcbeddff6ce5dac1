//! Results: a JSON value ([`Reply`]) or JSON text ([`EncodedReply`]), with the total and
//! cursor of a listed page.

use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::handle::Handle;
use crate::memory::Recall;
use crate::page::Paged;

/// An operation's result. `total_count` is set for the lists whose value is a bare array
/// (namespaces, keys), and `next_cursor` for those paged by cursor (namespaces) when a page
/// follows; HTTP carries them in `X-Total-Count` and `X-Next-Cursor`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The JSON result.
    pub value: Value,
    /// Items in all pages, for bare-array lists.
    pub total_count: Option<u64>,
    /// Where the next page of a bare-array list starts (`None`: no page follows).
    pub next_cursor: Option<String>,
}

impl Reply {
    /// A result that is not a bare-array list.
    pub fn of_value(value: Value) -> Reply {
        Reply { value, total_count: None, next_cursor: None }
    }
}

/// An operation's result as JSON text, serialised once from the operation's own types (see
/// [`Handle::call_encoded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedReply {
    /// The JSON result, as bytes.
    pub body: Vec<u8>,
    /// Items in all pages, for bare-array lists.
    pub total_count: Option<u64>,
    /// Where the next page of a bare-array list starts.
    pub next_cursor: Option<String>,
}

/// What [`Handle::run`] builds a result into: a JSON value ([`Reply`]) or JSON text
/// ([`EncodedReply`]).
pub(super) trait Answer: Sized {
    /// The result `v`.
    fn of<T: Serialize>(v: T) -> Result<Self>;
    /// A bare-array list with its total and the cursor of the page after it.
    fn listed<T: Serialize>(page: Paged<T>) -> Result<Self>;
    /// A result already built as a JSON value.
    fn from_reply(r: Reply) -> Result<Self>;
    /// A recall's hits: decoded for a value, written from their records for text (see
    /// `Handle::recall_json`), each only as much as it needs.
    fn recall(h: &Handle, req: Recall) -> Result<Self>;
}

impl Answer for Reply {
    fn of<T: Serialize>(v: T) -> Result<Reply> {
        Ok(Reply::of_value(serde_json::to_value(v)?))
    }

    fn listed<T: Serialize>(page: Paged<T>) -> Result<Reply> {
        Ok(Reply {
            value: serde_json::to_value(page.items)?,
            total_count: Some(page.total_count),
            next_cursor: page.next_cursor,
        })
    }

    fn from_reply(r: Reply) -> Result<Reply> {
        Ok(r)
    }

    fn recall(h: &Handle, req: Recall) -> Result<Reply> {
        Reply::of(h.recall(req)?)
    }
}

impl Answer for EncodedReply {
    fn of<T: Serialize>(v: T) -> Result<EncodedReply> {
        Ok(EncodedReply { body: to_json(&v)?, total_count: None, next_cursor: None })
    }

    fn listed<T: Serialize>(page: Paged<T>) -> Result<EncodedReply> {
        Ok(EncodedReply {
            body: to_json(&page.items)?,
            total_count: Some(page.total_count),
            next_cursor: page.next_cursor,
        })
    }

    fn from_reply(r: Reply) -> Result<EncodedReply> {
        Ok(EncodedReply {
            body: to_json(&r.value)?,
            total_count: r.total_count,
            next_cursor: r.next_cursor,
        })
    }

    fn recall(h: &Handle, req: Recall) -> Result<EncodedReply> {
        Ok(EncodedReply { body: h.recall_json(req)?, total_count: None, next_cursor: None })
    }
}

/// Writes numbers as a [`Value`] holds them (an `f32` widened to `f64`), so a reply's
/// text is the same whether or not it went through a `Value`.
struct AsValue;

impl serde_json::ser::Formatter for AsValue {
    fn write_f32<W: ?Sized + std::io::Write>(&mut self, w: &mut W, v: f32) -> std::io::Result<()> {
        self.write_f64(w, f64::from(v))
    }
}

pub(super) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    v.serialize(&mut serde_json::Serializer::with_formatter(&mut out, AsValue))?;
    Ok(out)
}

pub(super) fn with_message<T: Serialize>(v: T, message: &str) -> Result<Reply> {
    let mut value = serde_json::to_value(v)?;
    if let Value::Object(map) = &mut value {
        map.insert("message".into(), Value::String(message.into()));
    }
    Ok(Reply::of_value(value))
}
