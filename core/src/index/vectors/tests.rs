use super::scan::ScanAsk;
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

/// A query, its k and its agent key.
type Ask = (Vec<f32>, usize, Option<u64>);

/// A copy of 6,000 rows (the int8 path) with ties (rows 1,000 to 1,099 repeat row 0),
/// agent keys (every third row agent 7) and deleted rows (every 50th), in two segments; and asks of every kind: k of 1, 10 and 100 (the last is scanned in f32),
/// with and without an agent, queries of stored rows and of rows not stored.
fn shared_scan_case() -> (NamespaceVectors, Vec<Ask>) {
    let dims = 96;
    let mut rows = random_rows(6000, dims, 21);
    for i in 1000..1100 {
        rows[i] = rows[0].clone();
    }
    let mut nv = NamespaceVectors::default();
    for (c, range) in [0..4000, 4000..5000, 5000..6000].into_iter().enumerate() {
        let first = range.start;
        let added: Vec<NewRow<'_>> = rows[range]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let slot = (first + i) as u32;
                let id: [u8; 16] = u128::from(slot).to_be_bytes();
                (slot, id, v.as_slice(), if slot.is_multiple_of(3) { 7 } else { 0 })
            })
            .collect();
        nv = nv.with_delta(c as u64 + 1, &added, &[], &[]).unwrap();
    }
    let removed: Vec<u32> = (0..6000).step_by(50).collect();
    let nv = nv.with_delta(10, &[], &[], &removed[..100]).unwrap();
    let others = random_rows(8, dims, 22);
    let mut asks = Vec::new();
    for (n, q) in
        [&rows[0], &rows[1], &rows[777], &rows[5999]].into_iter().chain(&others).enumerate()
    {
        for (limit, agent) in [(1, None), (10, None), (10, Some(7)), (100, None), (1, Some(7))] {
            asks.push((q.clone(), limit + n % 2, agent));
        }
    }
    (nv, asks)
}

/// Queries scanned together get exactly what each gets alone, whichever others share
/// its pass (1 to 40 at once: more than one pass's worth).
#[test]
fn a_shared_scan_answers_each_query_as_alone() {
    let (nv, asks) = shared_scan_case();
    assert!(nv.segments.len() > 1);
    let alone: Vec<Vec<ScanHit>> = asks.iter().map(|(q, k, a)| nv.search(q, *k, *a)).collect();
    assert!(alone.iter().any(|h| h.len() == 100) && alone.iter().any(|h| h.len() == 1));
    // Ties: the query of row 0 finds its copies (row 0 itself is deleted).
    assert!(alone[1].iter().all(|h| (1001..1100).contains(&h.slot)), "{:?}", alone[1]);
    for n in [1, 2, 7, 16, 40] {
        for offset in [0, 3] {
            let pick: Vec<usize> = (0..n).map(|i| (i * 7 + offset) % asks.len()).collect();
            let batch: Vec<ScanAsk<'_>> = pick
                .iter()
                .map(|&i| ScanAsk { query: &asks[i].0, limit: asks[i].1, agent: asks[i].2 })
                .collect();
            let together = nv.search_many(&batch);
            for (got, &i) in together.iter().zip(&pick) {
                assert_eq!(got, &alone[i], "ask {i} among {n}");
            }
        }
    }
}

/// Many threads recalling one copy at once (each waiting for a share of a pass when one
/// is running) get exactly the answers of one-at-a-time searches.
#[test]
fn concurrent_shared_scans_match_one_at_a_time() {
    let (nv, asks) = shared_scan_case();
    let alone: Vec<Vec<ScanHit>> = asks.iter().map(|(q, k, a)| nv.search(q, *k, *a)).collect();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (nv, asks, alone) = (&nv, &asks, &alone);
            s.spawn(move || {
                for round in 0..20 {
                    let i = (t * 13 + round * 7) % asks.len();
                    let (q, k, a) = &asks[i];
                    let got = crate::store::tests::block_on(nv.search_shared(q, *k, *a));
                    assert_eq!(got, alone[i], "thread {t}, ask {i}");
                }
            });
        }
    });
    assert!(!nv.scans.state.lock().running, "the last pass handed the queue back");
}

/// A query that finds no pass running leads one after yielding once (asking to be polled
/// again), and the queries that come meanwhile share it; one dropped while waiting (even when
/// woken to lead the next pass) leaves the others their pass and their answers.
#[test]
fn a_dropped_waiting_query_hands_its_pass_on() {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let (nv, asks) = shared_scan_case();
    let ask = |i: usize| {
        let (q, k, a) = &asks[i];
        Box::pin(nv.search_shared(q, *k, *a))
    };
    let alone = |i: usize| nv.search(&asks[i].0, asks[i].1, asks[i].2);
    let woken = Arc::new(Count(AtomicUsize::new(0)));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    // None running: the first leads, after yielding once; the second joins its pass.
    let (mut lead, mut joins) = (ask(2), ask(3));
    assert!(lead.as_mut().poll(&mut cx).is_pending());
    assert_eq!(woken.0.load(Ordering::Relaxed), 1, "a yield asks to be polled again");
    assert!(joins.as_mut().poll(&mut cx).is_pending());
    assert_eq!(nv.scans.state.lock().pending.len(), 2);
    assert_eq!(lead.as_mut().poll(&mut cx), Poll::Ready(alone(2)));
    assert!(nv.scans.state.lock().pending.is_empty(), "one pass answered both");
    assert_eq!(joins.as_mut().poll(&mut cx), Poll::Ready(alone(3)));
    assert!(!nv.scans.state.lock().running);
    // A leader dropped while it yields hands the queue back.
    let mut dropped = ask(4);
    assert!(dropped.as_mut().poll(&mut cx).is_pending());
    drop(dropped);
    let q = nv.scans.state.lock();
    assert!(!q.running && q.pending.is_empty());
    drop(q);
    // One running (as another thread's would be): these wait.
    nv.scans.state.lock().running = true;
    let (mut a, mut b, mut c) = (ask(5), ask(6), ask(7));
    for f in [&mut a, &mut b, &mut c] {
        assert!(f.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(nv.scans.state.lock().pending.len(), 3);
    nv.hand_on(); // the running pass ends: `a` is to lead the next
    drop(a);
    // `b` leads instead; `c` is answered by its pass.
    assert!(c.as_mut().poll(&mut cx).is_pending());
    assert_eq!(b.as_mut().poll(&mut cx), Poll::Ready(alone(6)));
    assert_eq!(c.as_mut().poll(&mut cx), Poll::Ready(alone(7)));
    let q = nv.scans.state.lock();
    assert!(!q.running && q.pending.is_empty());
}
