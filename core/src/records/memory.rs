//! The memory record: a [`Memory`] as the `memories` table stores it, and the reads that
//! decode only the part of a record they need.
//!
//! A record is [`RECORD_V2`] ‖ slot (u32 BE, [`NO_SLOT`] if the memory has no vector) ‖ the
//! memory's JSON, so a write serialises each memory once, before its slot is known. Records
//! written by earlier versions are one JSON object with a `slot` field; they are still read.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::datastore::DataTables;
use crate::error::{Error, Result};
use crate::storage::RoTxn;

/// What kind of memory this is (the guide's four kinds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum MemoryType {
    /// Something that happened (the default).
    #[default]
    Episodic,
    /// A fact.
    Semantic,
    /// How to do something.
    Procedural,
    /// Short-lived scratch state.
    Working,
}

impl MemoryType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryType::Episodic => "episodic",
            MemoryType::Semantic => "semantic",
            MemoryType::Procedural => "procedural",
            MemoryType::Working => "working",
        }
    }
}

/// A memory as stored and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Memory {
    /// The caller's id, or a UUID v7.
    pub id: String,
    /// Namespace name.
    pub namespace: String,
    /// Agent or end-user label inside the namespace.
    pub agent_id: Option<String>,
    /// The text.
    pub content: String,
    /// Importance in [0, 1] as stored.
    pub importance: f64,
    /// Tags.
    pub tags: Vec<String>,
    /// Free-form metadata object.
    pub metadata: Map<String, Value>,
    /// Entity names this memory mentions (knowledge graph links).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<String>,
    /// Kind of memory.
    #[serde(default)]
    pub memory_type: MemoryType,
    /// Session label.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Creation time (kept when the id is stored again).
    #[serde(serialize_with = "write_time")]
    pub created_at: DateTime<Utc>,
    /// Last update.
    #[serde(serialize_with = "write_time")]
    pub updated_at: DateTime<Utc>,
    /// Expiry, if any.
    #[serde(serialize_with = "write_time_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The stored vector (only when asked for with `include_vectors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

/// Writes `t` as chrono writes a `DateTime<Utc>` (RFC 3339 with `Z`, the fraction of a second
/// in the fewest of 0, 3, 6 or 9 digits that hold it), without going through `fmt`: every
/// memory written is serialised with two or three times. A time chrono writes otherwise (a
/// year outside 0-9999, a leap second) is written by chrono.
fn write_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    use chrono::{Datelike, Timelike};
    let (year, nano) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        return t.serialize(s);
    }
    // "YYYY-MM-DDTHH:MM:SS", then ".fff", ".ffffff" or ".fffffffff" if any, then "Z".
    let mut text = [0u8; 30];
    let mut at = 0;
    put_digits(&mut text, &mut at, year as u32, 4);
    let fields = [t.month(), t.day(), t.hour(), t.minute(), t.second()];
    for (sep, v) in [b'-', b'-', b'T', b':', b':'].into_iter().zip(fields) {
        text[at] = sep;
        at += 1;
        put_digits(&mut text, &mut at, v, 2);
    }
    let (fraction, width) = if nano == 0 {
        (0, 0)
    } else if nano % 1_000_000 == 0 {
        (nano / 1_000_000, 3)
    } else if nano % 1000 == 0 {
        (nano / 1000, 6)
    } else {
        (nano, 9)
    };
    if width > 0 {
        text[at] = b'.';
        at += 1;
        put_digits(&mut text, &mut at, fraction, width);
    }
    text[at] = b'Z';
    at += 1;
    // Only ASCII digits and separators were written.
    s.serialize_str(std::str::from_utf8(&text[..at]).map_err(serde::ser::Error::custom)?)
}

/// The time `text` is when it is written exactly as chrono writes a `DateTime<Utc>` (RFC 3339
/// with `Z`; seconds with no fraction, or with the shortest of 3, 6 or 9 digits that holds
/// it), so that reading it and writing it again gives `text`: what chrono reads from it,
/// without its general parser. Every time memsilo stores is written so.
pub(crate) fn chrono_written(text: &str) -> Option<DateTime<Utc>> {
    written_time(text.as_bytes())
}

/// [`chrono_written`] of a time's bytes.
pub(crate) fn written_time(b: &[u8]) -> Option<DateTime<Utc>> {
    let num = |at: usize, len: usize| -> Option<u32> {
        let digits = b.get(at..at + len)?;
        digits
            .iter()
            .try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[b.len() - 1] == b'Z';
    if !shape {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let fraction = &b[19..b.len() - 1];
    let nanos = match fraction.len() {
        0 => 0,
        4 | 7 | 10 if fraction[0] == b'.' && !fraction.ends_with(b"000") => {
            num(20, fraction.len() - 1)? * 10u32.pow(10 - fraction.len() as u32)
        }
        _ => return None,
    };
    if hour >= 24 || minute >= 60 || second >= 60 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    Some(date.and_hms_nano_opt(hour, minute, second, nanos)?.and_utc())
}

/// Writes the `width` last decimal digits of `n` at `text[*at..]`, moving `at` past them.
fn put_digits(text: &mut [u8], at: &mut usize, n: u32, width: u32) {
    for i in (0..width).rev() {
        text[*at] = b'0' + (n / 10u32.pow(i) % 10) as u8;
        *at += 1;
    }
}

/// [`write_time`] of an optional time (`null` without one).
#[allow(clippy::ref_option)] // the signature serde's `serialize_with` calls
fn write_time_opt<S: serde::Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => write_time(t, s),
        None => s.serialize_none(),
    }
}

/// A memory as stored: the record and the slot of its vector row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredMemory {
    #[serde(flatten)]
    pub memory: Memory,
    pub slot: Option<u32>,
}

/// First byte of a current record (a legacy record starts with `{`).
const RECORD_V2: u8 = 2;
/// Bytes before the JSON of a current record.
pub(crate) const RECORD_HEADER: usize = 5;
/// Slot field of a memory without a vector.
const NO_SLOT: u32 = u32::MAX;

/// Encodes a record from a memory's JSON and its slot.
pub(crate) fn encode_record(slot: Option<u32>, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER + json.len());
    out.push(RECORD_V2);
    out.extend_from_slice(&slot.unwrap_or(NO_SLOT).to_be_bytes());
    out.extend_from_slice(json);
    out
}

/// Splits a record into its slot and its JSON; `None` for a legacy record (its JSON, the
/// whole record, holds the slot).
pub(crate) fn split_record(bytes: &[u8]) -> Option<(Option<u32>, &[u8])> {
    match bytes.split_first() {
        Some((&RECORD_V2, rest)) if rest.len() >= RECORD_HEADER - 1 => {
            let (slot, json) = rest.split_at(RECORD_HEADER - 1);
            let slot = u32::from_be_bytes([slot[0], slot[1], slot[2], slot[3]]);
            Some(((slot != NO_SLOT).then_some(slot), json))
        }
        _ => None,
    }
}

/// The vector slot of a record.
pub(crate) fn record_slot(bytes: &[u8]) -> Option<u32> {
    match split_record(bytes) {
        Some((slot, _)) => slot,
        None => decode_record(bytes).ok().and_then(|s| s.slot),
    }
}

/// Decodes a record (current or legacy format).
pub(crate) fn decode_record(bytes: &[u8]) -> Result<StoredMemory> {
    match split_record(bytes) {
        Some((slot, json)) => Ok(StoredMemory { memory: serde_json::from_slice(json)?, slot }),
        None => Ok(serde_json::from_slice(bytes)?),
    }
}

/// The 16-byte key a memory id is stored under: the bytes of a UUID in its canonical form
/// (every generated id, so their keys sort by time), else a hash of the id. Reads check the
/// record's id, so a key can never answer for another id.
pub(crate) fn memory_key(id: &str) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    if let Ok(u) = uuid::Uuid::parse_str(id) {
        if u.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()) == id {
            return *u.as_bytes();
        }
    }
    let mut h = Sha256::new();
    h.update(b"memsilo memory id\0");
    h.update(id.as_bytes());
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// Key of a memory's agent for scans that filter by agent: a hash of its `agent_id` (never 0),
/// or 0 without one. Equal ids give equal keys; a collision only lets a row through to the
/// exact filter on the memory's record.
pub(crate) fn agent_key(agent: Option<&str>) -> u64 {
    agent.map_or(0, |a| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in a.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h | 1
    })
}

/// Agent keys of a namespace's vector slots, sorted by slot.
#[derive(Debug, Default)]
pub(crate) struct SlotAgents(pub Vec<(u32, u64)>);

impl SlotAgents {
    /// The agent key of `slot` (0 if unknown).
    pub(crate) fn get(&self, slot: u32) -> u64 {
        self.0.binary_search_by_key(&slot, |e| e.0).map_or(0, |at| self.0[at].1)
    }
}

/// The [`agent_key`] of every vector slot of a namespace, read from its memory records
/// without decoding them whole.
pub(crate) fn slot_agents(t: &DataTables, r: &mut RoTxn<'_>, ns: u64) -> Result<SlotAgents> {
    #[derive(Deserialize)]
    struct AgentOf<'a> {
        #[serde(borrow, default)]
        agent_id: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        slot: Option<u32>,
    }
    let mut out = Vec::new();
    for e in t.memories.prefix_iter(r, &ns.to_be_bytes())? {
        let (_, bytes) = e?;
        let (slot, json) = split_record(bytes).unwrap_or((None, bytes));
        let parsed: AgentOf<'_> = serde_json::from_slice(json)?;
        if let Some(slot) = slot.or(parsed.slot) {
            out.push((slot, agent_key(parsed.agent_id.as_deref())));
        }
    }
    out.sort_unstable_by_key(|e| e.0);
    Ok(SlotAgents(out))
}

/// The memory stored under `key`.
pub(crate) fn read_memory(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    key: &[u8],
) -> Result<Option<StoredMemory>> {
    Ok(match t.memories.get(r, key)? {
        Some(bytes) => Some(decode_record(bytes)?),
        None => None,
    })
}

/// The content of the memory at `key`, read from its record without decoding the rest (hybrid
/// recall's token match reads the text of many candidates it does not return).
pub(crate) fn read_content<'t>(
    t: &DataTables,
    r: &'t mut RoTxn<'_>,
    key: &[u8],
) -> Result<Option<std::borrow::Cow<'t, str>>> {
    #[derive(Deserialize)]
    struct ContentView<'a> {
        #[serde(borrow)]
        content: std::borrow::Cow<'a, str>,
    }
    let Some(bytes) = t.memories.get(r, key)? else { return Ok(None) };
    let json = split_record(bytes).map_or(bytes, |(_, json)| json);
    Ok(Some(serde_json::from_slice::<ContentView<'t>>(json)?.content))
}

/// What a recall hit shows of its memory, borrowed from the record: a hit answered as JSON
/// is written from these without building a [`Memory`] (its metadata map, its tags, its
/// parsed times) only to write it out again. The tags and the metadata are the record's JSON
/// text, which `serde_json` wrote from the same values it would write again; the times are the
/// record's text (see `crate::memory::encode_hits` for when it is written as it is).
#[derive(Deserialize)]
pub(crate) struct HitFields<'a> {
    #[serde(borrow)]
    pub id: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    pub agent_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    pub content: std::borrow::Cow<'a, str>,
    pub importance: f64,
    #[serde(borrow)]
    pub tags: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    pub metadata: &'a serde_json::value::RawValue,
    #[serde(default)]
    pub memory_type: MemoryType,
    #[serde(borrow, default)]
    pub session_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    pub created_at: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub updated_at: std::borrow::Cow<'a, str>,
}

/// The [`HitFields`] of a record (current or legacy format).
pub(crate) fn hit_fields(bytes: &[u8]) -> Result<HitFields<'_>> {
    let json = split_record(bytes).map_or(bytes, |(_, json)| json);
    Ok(serde_json::from_slice(json)?)
}

/// Where a record's [`HitFields`] lie in it, found by the parse that judged the record, so
/// that the hit is written from a copy of the record without parsing it again (see
/// `crate::memory::encode_hits`).
#[derive(Debug, Clone)]
pub(crate) struct HitSpans {
    id: Span,
    agent_id: Option<Span>,
    content: Span,
    importance: f64,
    tags: Span,
    metadata: Span,
    memory_type: MemoryType,
    session_id: Option<Span>,
    created_at: Span,
    updated_at: Span,
}

/// A text of a record's JSON: where it lies in the record, or (a string with escapes, which
/// is not there as it reads) its value.
#[derive(Debug, Clone)]
enum Span {
    At(std::ops::Range<usize>),
    Owned(String),
}

impl Span {
    /// The span of `text`, parsed from `record`.
    fn of(record: &[u8], text: &str) -> Span {
        let start = (text.as_ptr() as usize).wrapping_sub(record.as_ptr() as usize);
        if start <= record.len() && text.len() <= record.len() - start {
            Span::At(start..start + text.len())
        } else {
            Span::Owned(text.to_owned())
        }
    }

    /// The bytes in `record`, a copy of the record the span was found in.
    fn bytes<'a>(&'a self, record: &'a [u8]) -> Result<&'a [u8]> {
        match self {
            Span::At(at) => record.get(at.clone()).ok_or_else(|| Error::Internal("span".into())),
            Span::Owned(s) => Ok(s.as_bytes()),
        }
    }

    /// The text in `record` (see [`Span::bytes`]) as a hit writes it.
    fn hit_text<'a>(&'a self, record: &'a [u8]) -> Result<HitText<'a>> {
        match self {
            Span::At(_) => self.bytes(record).map(HitText::Plain),
            Span::Owned(s) => Ok(HitText::Text(s)),
        }
    }
}

impl HitSpans {
    /// Where `fields`, parsed from `record`, lie in it.
    pub(crate) fn of(record: &[u8], fields: &HitFields<'_>) -> HitSpans {
        HitSpans {
            id: Span::of(record, &fields.id),
            agent_id: fields.agent_id.as_ref().map(|a| Span::of(record, a)),
            content: Span::of(record, &fields.content),
            importance: fields.importance,
            tags: Span::of(record, fields.tags.get()),
            metadata: Span::of(record, fields.metadata.get()),
            memory_type: fields.memory_type,
            session_id: fields.session_id.as_ref().map(|s| Span::of(record, s)),
            created_at: Span::of(record, &fields.created_at),
            updated_at: Span::of(record, &fields.updated_at),
        }
    }

    /// The [`HitParts`] of `record`, a copy of the record these spans were found in: the
    /// fields [`hit_fields`] of it gives, without checking again the text the parse that
    /// found the spans checked.
    pub(crate) fn parts<'a>(&'a self, record: &'a [u8]) -> Result<HitParts<'a>> {
        let opt = |s: &'a Option<Span>| s.as_ref().map(|s| s.hit_text(record)).transpose();
        Ok(HitParts {
            id: self.id.hit_text(record)?,
            agent_id: opt(&self.agent_id)?,
            content: self.content.hit_text(record)?,
            importance: self.importance,
            tags: self.tags.bytes(record)?,
            metadata: self.metadata.bytes(record)?,
            memory_type: self.memory_type,
            session_id: opt(&self.session_id)?,
            created_at: self.created_at.hit_text(record)?,
            updated_at: self.updated_at.hit_text(record)?,
        })
    }
}

/// A string of a hit as it is written from its record.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HitText<'a> {
    /// The text between the quotes of a string in the record's JSON that has no escapes:
    /// valid UTF-8 without a quote, a backslash or a control character (`serde_json` reads
    /// no other without an escape), so the string is written as it is.
    Plain(&'a [u8]),
    /// A string to be escaped when it is written.
    Text(&'a str),
}

/// [`HitFields`] as a hit is written from them: its strings as [`HitText`], its tags and
/// metadata as their JSON text.
#[derive(Debug)]
pub(crate) struct HitParts<'a> {
    pub id: HitText<'a>,
    pub agent_id: Option<HitText<'a>>,
    pub content: HitText<'a>,
    pub importance: f64,
    pub tags: &'a [u8],
    pub metadata: &'a [u8],
    pub memory_type: MemoryType,
    pub session_id: Option<HitText<'a>>,
    pub created_at: HitText<'a>,
    pub updated_at: HitText<'a>,
}

impl<'a> HitFields<'a> {
    /// These fields as a hit is written from them (every string escaped when written).
    pub(crate) fn parts(&'a self) -> HitParts<'a> {
        let text = |s: &'a std::borrow::Cow<'a, str>| HitText::Text(s);
        HitParts {
            id: text(&self.id),
            agent_id: self.agent_id.as_ref().map(text),
            content: text(&self.content),
            importance: self.importance,
            tags: self.tags.get().as_bytes(),
            metadata: self.metadata.get().as_bytes(),
            memory_type: self.memory_type,
            session_id: self.session_id.as_ref().map(text),
            created_at: text(&self.created_at),
            updated_at: text(&self.updated_at),
        }
    }
}

/// A stored record's verdict in a recall that keeps it: its vector slot, its effective
/// importance and, when the recall reads its candidates' texts (hybrid recall's token match),
/// its text, taken from the same read.
pub(crate) struct Verdict {
    pub slot: Option<u32>,
    pub eff: f64,
    pub text: Option<String>,
}

/// A stored record's [`Verdict`], or `None` when it is not live or a filter leaves it out.
pub(crate) type Judge<'a> = dyn Fn(&[u8]) -> Result<Option<Verdict>> + 'a;

/// The verdict of `judge` on the memory stored under `key` (`None` if there is none).
pub(crate) fn judge_at(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    key: &[u8],
    judge: &Judge<'_>,
) -> Result<Option<Verdict>> {
    match t.memories.get(r, key)? {
        Some(bytes) => judge(bytes),
        None => Ok(None),
    }
}

/// Every memory of namespace `ns`, decoded.
pub(crate) fn scan_memories<'t>(
    t: &DataTables,
    r: &'t mut RoTxn<'_>,
    ns: u64,
) -> Result<impl Iterator<Item = Result<StoredMemory>> + 't> {
    Ok(t.memories
        .prefix_iter(r, &ns.to_be_bytes())?
        .map(|e| e.map_err(Error::from).and_then(|(_, v)| decode_record(v))))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A memory with every field set but the vector.
    pub(crate) fn memory() -> Memory {
        let now = Utc::now();
        Memory {
            id: uuid::Uuid::now_v7().to_string(),
            namespace: "ns".into(),
            agent_id: Some("agent".into()),
            content: "text".into(),
            importance: 0.25,
            tags: vec!["t".into()],
            metadata: serde_json::Map::new(),
            entities: Vec::new(),
            memory_type: MemoryType::Episodic,
            session_id: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            vector: None,
        }
    }

    /// A memory's times are written as chrono writes them, over the years chrono writes with
    /// four digits, every width of fraction, and the times it writes otherwise.
    #[test]
    fn times_are_written_as_chrono_writes_them() {
        use chrono::{Duration, NaiveDate, TimeZone};
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1d);
        let start = Utc.with_ymd_and_hms(-3, 1, 1, 0, 0, 0).unwrap();
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        let mut times: Vec<DateTime<Utc>> = (0..20_000)
            .map(|i| {
                let secs = (next() % (10_010 * 366 * 86_400)) as i64;
                let nanos = match i % 4 {
                    0 => 0,
                    1 => (next() % 1000) * 1_000_000,
                    2 => (next() % 1_000_000) * 1000,
                    _ => next() % 1_000_000_000,
                };
                start + Duration::seconds(secs) + Duration::nanoseconds(nanos as i64)
            })
            .collect();
        times.extend([leap, Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()]);
        for t in times {
            let m = Memory { created_at: t, updated_at: t, expires_at: Some(t), ..memory() };
            let want = serde_json::to_value(t).unwrap();
            let got = serde_json::to_value(&m).unwrap();
            for field in ["created_at", "updated_at", "expires_at"] {
                assert_eq!(got[field], want, "{t:?}");
            }
        }
        let m = Memory { expires_at: None, ..memory() };
        assert_eq!(serde_json::to_value(m).unwrap()["expires_at"], serde_json::Value::Null);
    }

    #[test]
    fn records_round_trip_in_both_formats() {
        let m = memory();
        let json = serde_json::to_vec(&m).unwrap();
        for slot in [Some(0), Some(7), None] {
            let back = decode_record(&encode_record(slot, &json)).unwrap();
            assert_eq!((back.memory.id.as_str(), back.slot), (m.id.as_str(), slot));
            assert_eq!(record_slot(&encode_record(slot, &json)), slot);
        }
        // Records written before the slot moved out of the JSON.
        let legacy =
            serde_json::to_vec(&StoredMemory { memory: m.clone(), slot: Some(3) }).unwrap();
        let back = decode_record(&legacy).unwrap();
        assert_eq!((back.memory.content.as_str(), back.slot), ("text", Some(3)));
        assert_eq!(record_slot(&legacy), Some(3));
        assert!(decode_record(&[RECORD_V2, 0, 0]).is_err());
    }
}
