use super::*;
use crate::index::topk::quantization_error;
use crate::vector::tests::random_rows;
use crate::vector::{dot, kernels, normalize, quantize};

pub(crate) fn exact(rows: &[Vec<f32>], q: &[f32], k: usize) -> Vec<u32> {
    let mut s: Vec<(f32, u32)> =
        rows.iter().enumerate().map(|(i, r)| (dot(r, q), i as u32)).collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0));
    s.into_iter().take(k).map(|x| x.1).collect()
}

pub(crate) fn build(rows: &[Vec<f32>], step: usize) -> NamespaceVectors {
    let mut nv = NamespaceVectors::default();
    for (c, chunk) in rows.chunks(step).enumerate() {
        let added: Vec<NewRow<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let slot = (c * step + i) as u32;
                (slot, [slot as u8; 16], v.as_slice(), 0)
            })
            .collect();
        nv = nv.with_delta(c as u64 + 1, &added, &[], &[]).unwrap();
    }
    nv
}
#[test]
fn search_ranks_by_cosine_and_truncates() {
    let rows = vec![vec![1.0f32, 0.0], vec![0.0, 1.0], vec![std::f32::consts::FRAC_1_SQRT_2; 2]];
    let nv = build(&rows, 1);
    let hits = nv.search(&[1.0, 0.0], 2, None);
    assert_eq!(hits.iter().map(|h| h.slot).collect::<Vec<_>>(), [0, 2]);
    assert!((hits[0].similarity - 1.0).abs() < 1e-6);
    assert!(nv.search(&[1.0, 0.0, 0.0], 2, None).is_empty());
}

#[test]
fn quantized_scan_returns_the_exact_top_k_with_exact_scores() {
    let rows = random_rows(5000, 64, 7);
    // Appended in uneven batches, so several segments are searched.
    let nv = build(&rows, 333);
    assert!(nv.segments.len() > 1);
    for qi in 0..20 {
        let q = &rows[qi * 37];
        let hits = nv.search(q, 10, None);
        assert_eq!(hits.iter().map(|h| h.slot).collect::<Vec<_>>(), exact(&rows, q, 10));
        assert!((hits[0].similarity - 1.0).abs() < 1e-5);
    }
}

/// The int8 estimate of a row's dot product lies within `quantization_error` of the
/// exact one; when the best rows stand out, the candidates below them by more than that
/// are not scored exactly, and the result is still the exact top k.
#[test]
fn the_int8_error_bound_holds_and_spares_exact_scores() {
    let dims = 384;
    let mut rows = random_rows(3000, dims, 11);
    let q = rows[0].clone();
    // Ten rows close to the query.
    let noise = random_rows(10, dims, 12);
    for (i, n) in noise.iter().enumerate() {
        let mut v: Vec<f32> = q.iter().zip(n).map(|(a, b)| a + 0.3 * b).collect();
        normalize(&mut v);
        rows[100 + i] = v;
    }
    let (mut qc, mut rc) = (Vec::new(), Vec::new());
    let t = quantize(&q, &mut qc);
    let q_l1: f32 = q.iter().map(|x| x.abs()).sum();
    for r in &rows {
        rc.clear();
        let s = quantize(r, &mut rc);
        let d: i32 = rc.iter().zip(&qc).map(|(a, b)| i32::from(*a) * i32::from(*b)).sum();
        let error = (dot(r, &q) - d as f32 * s * t).abs();
        assert!(error <= quantization_error(dims, s, t, q_l1), "{error}");
    }
    let nv = build(&rows, rows.len());
    let seg = &nv.segments[0];
    let mut candidates = Vec::new();
    kernels::scan_i8(&seg.codes, dims, &qc, |i, d| {
        candidates.push((d as f32 * seg.scales[i], 0, i as u32));
    });
    let mut scored = nv.rescored(candidates, &q, t, 11);
    assert!(scored.len() < 100, "{} of 3000 scored exactly", scored.len());
    scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let slots: Vec<u32> = scored.iter().take(11).map(|c| seg.slots[c.2 as usize]).collect();
    assert_eq!(slots, exact(&rows, &q, 11));
    assert_eq!(nv.search(&q, 11, None).iter().map(|h| h.slot).collect::<Vec<_>>(), slots);
}

#[test]
fn deletes_and_appends_apply_to_the_copy() {
    let rows = random_rows(3000, 32, 9);
    let nv = build(&rows, 1000);
    let q = rows[5].clone();
    let top = nv.search(&q, 3, None);
    assert_eq!(top[0].slot, 5);
    let nv = nv.with_delta(100, &[], &[], &[5]).unwrap();
    assert!(nv.search(&q, 3, None).iter().all(|h| h.slot != 5));
    assert_eq!(nv.len(), 2999);
    // A row deleted before its append was applied stays deleted.
    let late = [(5u32, [5u8; 16], q.as_slice(), 0)];
    let nv2 = nv.with_delta(101, &late, &[], &[]).unwrap();
    assert!(nv2.search(&q, 3, None).iter().all(|h| h.slot != 5));
    // Many deletes compact the copy.
    let many: Vec<u32> = (100..1000).collect();
    let nv = nv.with_delta(102, &[], &[], &many).unwrap();
    assert!(nv.deleted.is_empty());
    assert_eq!(nv.len(), 2099);
    // Rows below the index boundary are dropped.
    let nv = nv.compacted(2000);
    assert_eq!(nv.len(), 1000);
    assert!(nv.search(&rows[10], 5, None).iter().all(|h| h.slot >= 2000));
    // A row of the wrong size makes the caller reload.
    assert!(nv.with_delta(103, &[(9999, [0; 16], &[1.0, 0.0][..], 0)], &[], &[]).is_none());
}
