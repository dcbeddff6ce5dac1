//! A recall's hits written as JSON straight from their records: the text a transport sends is
//! the serialisation of the [`RecallHit`]s [`materialize`] would build, byte for byte, without
//! building them (which decodes each record's metadata map, tags and times only to write them
//! out again: about 14% of a vector recall's server CPU over HTTP, by `perf`). The JSON is
//! written by hand, field by field as `serde_json` writes them: its keys copied, and the
//! record's strings that have no escapes (most of them) copied as they are in the record,
//! neither checked nor escaped again.
//!
//! [`materialize`]: crate::rank::materialize

use chrono::{DateTime, Utc};

use crate::datastore::DataTables;
use crate::error::Result;
use crate::rank::{Kept, Ranked};
use crate::records::memory::{hit_fields, written_time, HitParts, HitText};
use crate::storage::RoTxn;

#[cfg(doc)]
use crate::rank::RecallHit;

/// Writes a string as `serde_json` writes it: a [`HitText::Plain`] as it is (it has nothing
/// `serde_json` escapes), a [`HitText::Text`] escaped.
fn write_str(out: &mut Vec<u8>, text: HitText<'_>) -> Result<()> {
    match text {
        HitText::Plain(bytes) => {
            out.push(b'"');
            out.extend_from_slice(bytes);
            out.push(b'"');
        }
        HitText::Text(s) => serde_json::to_writer(&mut *out, s)?,
    }
    Ok(())
}

/// Writes an optional string as `serde_json` writes an `Option<&str>`.
fn write_opt_str(out: &mut Vec<u8>, text: Option<HitText<'_>>) -> Result<()> {
    let Some(t) = text else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    write_str(out, t)
}

/// Writes a record's time as its `DateTime<Utc>` field writes it: as it is when chrono writes
/// it so (every time memsilo stores), else read and written again (a record written by hand,
/// say).
fn write_time(out: &mut Vec<u8>, text: HitText<'_>) -> Result<()> {
    let bytes = match text {
        HitText::Plain(b) => b,
        HitText::Text(s) => s.as_bytes(),
    };
    if written_time(bytes).is_some() {
        // Digits, `-`, `T`, `:`, `.` and `Z`: nothing to escape.
        return write_str(out, HitText::Plain(bytes));
    }
    let text =
        std::str::from_utf8(bytes).map_err(<serde_json::Error as serde::de::Error>::custom)?;
    let parsed = text.parse::<DateTime<chrono::FixedOffset>>();
    let parsed = parsed.map_err(<serde_json::Error as serde::ser::Error>::custom)?;
    serde_json::to_writer(&mut *out, &parsed.with_timezone(&Utc))?;
    Ok(())
}

/// Writes a number as `serde_json` writes an `f64` (`null` when not finite).
fn write_f64(out: &mut Vec<u8>, x: f64) -> Result<()> {
    serde_json::to_writer(&mut *out, &x)?;
    Ok(())
}

/// Writes an optional number as `serde_json` writes an `Option<f64>`.
fn write_opt_f64(out: &mut Vec<u8>, x: Option<f64>) -> Result<()> {
    let Some(x) = x else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    write_f64(out, x)
}

/// Writes one hit as `serde_json` writes a [`RecallHit`]: the same fields in the same order,
/// but `via_graph`, left out when false, as it always is here (graph hits are only made by
/// expansion, which answers decoded hits). Its keys and its record's strings without
/// escapes are copied, not escaped.
fn write_hit(out: &mut Vec<u8>, f: &HitParts<'_>, c: &Ranked) -> Result<()> {
    out.extend_from_slice(b"{\"id\":");
    write_str(out, f.id)?;
    out.extend_from_slice(b",\"content\":");
    write_str(out, f.content)?;
    out.extend_from_slice(b",\"score\":");
    write_f64(out, c.score)?;
    out.extend_from_slice(b",\"similarity\":");
    write_f64(out, c.sim)?;
    out.extend_from_slice(b",\"importance\":");
    write_f64(out, f.importance)?;
    out.extend_from_slice(b",\"effective_importance\":");
    write_f64(out, c.eff)?;
    out.extend_from_slice(b",\"agent_id\":");
    write_opt_str(out, f.agent_id)?;
    out.extend_from_slice(b",\"tags\":");
    out.extend_from_slice(f.tags);
    out.extend_from_slice(b",\"metadata\":");
    out.extend_from_slice(f.metadata);
    out.extend_from_slice(b",\"memory_type\":\"");
    out.extend_from_slice(f.memory_type.as_str().as_bytes());
    out.extend_from_slice(b"\",\"session_id\":");
    write_opt_str(out, f.session_id)?;
    out.extend_from_slice(b",\"created_at\":");
    write_time(out, f.created_at)?;
    out.extend_from_slice(b",\"updated_at\":");
    write_time(out, f.updated_at)?;
    out.extend_from_slice(b",\"keyword_score\":");
    write_opt_f64(out, c.keyword)?;
    out.extend_from_slice(b",\"vector_score\":");
    write_opt_f64(out, c.vector)?;
    out.push(b'}');
    Ok(())
}

/// What a hit's text may take beyond its record's: the keys and values of its scores (a
/// record lacks them, while it has fields a hit leaves out).
const HIT_EXTRA: usize = 256;

/// The JSON text of the hits of ranked candidates (best first), written from their records (as
/// judged when kept, from the spans found when they were judged if they were, else read in the
/// same read transaction): what serialising
/// [`materialize`]'s answer gives. A candidate removed since it was ranked is left out.
///
/// [`materialize`]: crate::rank::materialize
pub(crate) fn encode_hits(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: u64,
    ranked: &[Ranked],
) -> Result<Vec<u8>> {
    // A hit is about its record's length (the same strings, escaped alike) and its scores.
    let sized = |c: &Ranked| c.record.as_ref().map_or(512, |k| k.bytes.len() + HIT_EXTRA);
    let mut out = Vec::with_capacity(2 + ranked.iter().map(sized).sum::<usize>());
    out.push(b'[');
    for c in ranked {
        // A record judged by the parse that found where its fields lie is not parsed again.
        if let Some(Kept { bytes, spans: Some(spans) }) = &c.record {
            let parts = spans.parts(bytes)?;
            if out.len() > 1 {
                out.push(b',');
            }
            write_hit(&mut out, &parts, c)?;
        } else {
            let Some(bytes) = c.stored(t, r, ns)? else { continue };
            let fields = hit_fields(bytes)?;
            if out.len() > 1 {
                out.push(b',');
            }
            write_hit(&mut out, &fields.parts(), c)?;
        }
    }
    out.push(b']');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::memory::chrono_written;
    use chrono::{Duration, TimeZone};

    /// What the record's `DateTime<Utc>` field makes of `text`, written again.
    fn through_chrono(text: &str) -> Option<String> {
        let parsed: DateTime<Utc> = serde_json::from_value(serde_json::json!(text)).ok()?;
        serde_json::to_value(parsed).ok()?.as_str().map(str::to_owned)
    }

    /// What [`write_time`] writes of `text`, read back (as plain and as escaped text alike).
    fn written(text: &str) -> Option<String> {
        let mut plain = Vec::new();
        write_time(&mut plain, HitText::Plain(text.as_bytes())).ok()?;
        let mut escaped = Vec::new();
        write_time(&mut escaped, HitText::Text(text)).ok()?;
        assert_eq!(plain, escaped, "{text}");
        serde_json::from_slice::<String>(&plain).ok()
    }

    fn as_chrono_writes(text: &str) -> bool {
        chrono_written(text).is_some()
    }

    #[test]
    fn times_are_written_as_a_datetime_field_writes_them() {
        // Times as chrono writes them, over the years it writes with four digits and every
        // width of fraction: each is taken as it is.
        let mut next = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15);
        let start = Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap();
        for i in 0..20_000 {
            let secs = (next() % (10_000 * 366 * 86_400)) as i64;
            let nanos = match i % 4 {
                0 => 0,
                1 => (next() % 1000) * 1_000_000,
                2 => (next() % 1_000_000) * 1000,
                _ => next() % 1_000_000_000,
            };
            let t = start + Duration::seconds(secs) + Duration::nanoseconds(nanos as i64);
            if t.format("%Y").to_string().len() != 4 {
                continue;
            }
            let text = serde_json::to_value(t).unwrap().as_str().unwrap().to_owned();
            assert!(as_chrono_writes(&text), "{text}");
            assert_eq!(chrono_written(&text), Some(t), "{text}");
            assert_eq!(written(&text).as_deref(), Some(text.as_str()));
        }
        // Anything else is read and written again, as the field would be.
        for text in [
            "2026-12-03T10:00:00.000Z",
            "2026-12-03T10:00:00.120000Z",
            "2026-12-03T10:00:00.123456000Z",
            "2026-12-03T10:00:00+02:00",
            "2026-12-03T10:00:00.5+00:00",
            "2026-12-03 10:00:00Z",
            "2026-12-03T10:00:00z",
            "2026-12-03T23:59:60Z",
            "2024-02-29T00:00:00Z",
            "+12026-12-03T10:00:00Z",
        ] {
            assert_eq!(written(text), through_chrono(text), "{text}");
        }
        for bad in ["2026-02-30T10:00:00Z", "2026-13-01T10:00:00Z", "yesterday", ""] {
            assert!(!as_chrono_writes(bad), "{bad}");
            assert_eq!(written(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_time_taken_as_it_is_is_what_chrono_writes() {
        // Every variation of one character of a few times: whenever one is taken as it is,
        // reading and writing it gives it back.
        for base in
            ["2024-02-29T23:59:59.123Z", "1999-12-31T00:00:00Z", "2026-06-30T12:30:45.123456789Z"]
        {
            for at in 0..base.len() {
                for c in "0123456789-:.TZ+ ".chars() {
                    let mut text = base.to_owned();
                    text.replace_range(at..=at, &c.to_string());
                    if as_chrono_writes(&text) {
                        assert_eq!(through_chrono(&text).as_deref(), Some(text.as_str()), "{text}");
                        assert_eq!(chrono_written(&text), text.parse().ok(), "{text}");
                    }
                }
            }
        }
    }
}
