//! Verification of a chain: every entry's hash recomputed and its link to the one before checked.

use super::{entry_hash, AuditEntry, AuditTables, AuditVerification, BrokenEntry, Head, GENESIS};
use crate::error::Result;
use crate::storage::RoTxn;

pub(crate) fn verify_chain(
    r: &mut RoTxn<'_>,
    t: &AuditTables,
    tenant_id: &str,
) -> Result<AuditVerification> {
    let head = t.heads.get(r, tenant_id)?.unwrap_or_else(|| Head {
        hash: GENESIS.into(),
        anchor_hash: GENESIS.into(),
        ..Head::default()
    });
    let raw = t.entries.remap_data_type::<heed3::types::Bytes>();
    let stored = raw.prefix_iter(r, &format!("{tenant_id}/"))?.map(|item| {
        let (key, bytes) = item?;
        let key_seq = key.rsplit('/').next().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        Ok((key_seq, bytes))
    });
    verify_entries(
        tenant_id,
        (head.anchor_seq, &head.anchor_hash),
        Some((head.seq, &head.hash)),
        stored,
    )
}

/// Checks a chain from its anchor on and names the first entry that was edited, removed or
/// moved. `stored` is the chain's entries in order, each with the position it is stored at and
/// its bytes; `anchor` is the sequence number and hash the first entry links to (`(0,`
/// [`GENESIS_HASH`]`)` when nothing was pruned); `head` is the last appended entry when it is
/// kept apart from the entries (then a chain cut short at its end is reported), else the
/// last entry read is taken as the head. The check of the engine's log and of the cluster's.
///
/// [`GENESIS_HASH`]: super::GENESIS_HASH
pub fn verify_entries<B: AsRef<[u8]>>(
    tenant_id: &str,
    anchor: (u64, &str),
    head: Option<(u64, &str)>,
    stored: impl IntoIterator<Item = Result<(u64, B)>>,
) -> Result<AuditVerification> {
    let mut expect_seq = anchor.0 + 1;
    let mut expect_prev = anchor.1.to_owned();
    let mut checked = 0u64;
    let mut broken = None;
    for item in stored {
        let (key_seq, bytes) = item?;
        checked += 1;
        let fail = |seq: u64, reason: String| Some(BrokenEntry { seq, reason });
        let entry: AuditEntry = match serde_json::from_slice(bytes.as_ref()) {
            Ok(e) => e,
            Err(e) => {
                broken = fail(key_seq, format!("entry cannot be read: {e}"));
                break;
            }
        };
        if key_seq > expect_seq || entry.seq > expect_seq {
            broken = fail(expect_seq, "entry is missing".into());
            break;
        }
        if entry.seq != key_seq || entry.seq != expect_seq || entry.tenant_id != tenant_id {
            broken = fail(key_seq, "entry was moved (its sequence or tenant changed)".into());
            break;
        }
        if entry.prev_hash != expect_prev {
            broken = fail(
                entry.seq,
                "prev_hash does not match the entry before (an entry was edited or removed)".into(),
            );
            break;
        }
        if entry_hash(&entry) != entry.hash {
            broken = fail(entry.seq, "entry was edited (its hash does not match)".into());
            break;
        }
        expect_seq += 1;
        expect_prev = entry.hash;
    }
    let (head_seq, head_hash) = match head {
        Some((seq, hash)) => (seq, hash.to_owned()),
        None => (expect_seq - 1, expect_prev.clone()),
    };
    if broken.is_none() && (expect_seq != head_seq + 1 || expect_prev != head_hash) {
        broken = Some(BrokenEntry {
            seq: expect_seq,
            reason: format!(
                "the chain ends before its head (entry {head_seq} was appended; entries from {expect_seq} are missing)"
            ),
        });
    }
    Ok(AuditVerification {
        tenant_id: tenant_id.to_owned(),
        ok: broken.is_none(),
        checked,
        first_broken: broken,
        head_seq,
        head_hash,
    })
}
