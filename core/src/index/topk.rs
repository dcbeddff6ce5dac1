//! Keeping the best-scoring rows of a scan, and the error bound of an int8 score.

/// A bound on `|x·q − s·t·(c·c_q)|`, the error of the int8 estimate of a dot product: the
/// row `x` (unit length, `dims` values) is `s·c + e` with `|e_i| ≤ s/2`, the query `q` is
/// `t·c_q + f` with `|f_i| ≤ t/2`, so the error `e·q + s·c·f` is at most
/// `s/2·‖q‖₁ + t/2·‖s·c‖₁`, and `‖s·c‖₁ ≤ ‖x‖₁ + dims·s/2 ≤ √dims + dims·s/2`. A small
/// allowance covers the rounding of both f32 sums.
pub(super) fn quantization_error(dims: usize, s: f32, t: f32, q_l1: f32) -> f32 {
    let d = dims as f32;
    s / 2.0 * q_l1 + t / 2.0 * (d.sqrt() + d * s / 2.0) + 1e-4
}

/// An f32 ordered by `total_cmp`, for heaps of scores.
#[derive(PartialEq)]
pub(super) struct Score(pub(super) f32);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The `k` highest-scoring (score, segment, row) entries seen, kept with a running threshold
/// so most rows cost one comparison.
///
/// Entries are buffered and cut back to the best `k` when the buffer holds four times as many
/// (at least 128): a cut costs a selection over the buffer, so a larger buffer makes fewer
/// cuts for the same entries. Scores are held as [`ordered`] integers, so the selection
/// compares integers instead of calling `f32::total_cmp` at every step.
pub(super) struct TopK {
    k: usize,
    threshold: f32,
    buf: Vec<(u32, u32, u32)>,
}

impl TopK {
    pub(super) fn new(k: usize) -> Self {
        let k = k.max(1);
        TopK { k, threshold: f32::NEG_INFINITY, buf: Vec::with_capacity(Self::cut_at(k)) }
    }

    /// The buffer's length at which it is cut back to `k` entries.
    fn cut_at(k: usize) -> usize {
        4 * k.max(32)
    }

    /// The score an entry must beat to be kept (it only rises).
    pub(super) fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Offers an entry that `keep` accepts (asked only if the score could make the top).
    #[inline]
    pub(super) fn push_if(
        &mut self,
        score: f32,
        segment: u32,
        row: u32,
        keep: impl FnOnce() -> bool,
    ) {
        if score <= self.threshold || !keep() {
            return;
        }
        self.buf.push((ordered(score), segment, row));
        if self.buf.len() >= Self::cut_at(self.k) {
            self.cut();
            // The lowest score kept: the last after the cut (see `cut`).
            self.threshold = self.buf.last().map_or(f32::INFINITY, |e| unordered(e.0));
        }
    }

    /// Cuts the buffer back to its best `k` entries, the `k`-th best last (the others
    /// unordered before it).
    fn cut(&mut self) {
        if self.k < self.buf.len() {
            self.buf.select_nth_unstable_by_key(self.k - 1, |e| std::cmp::Reverse(e.0));
            self.buf.truncate(self.k);
        }
    }

    pub(super) fn into_vec(mut self) -> Vec<(f32, u32, u32)> {
        self.cut();
        self.buf.into_iter().map(|(key, segment, row)| (unordered(key), segment, row)).collect()
    }
}

/// `x` as an integer whose order is `f32::total_cmp`'s (negative values' bits reversed,
/// positive values' sign bit set).
fn ordered(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The `f32` that [`ordered`] gave `key` for.
fn unordered(key: u32) -> f32 {
    f32::from_bits(if key >> 31 == 1 { key & 0x7fff_ffff } else { !key })
}

/// Keeps the `k` highest-scoring entries (unordered).
pub(super) fn top_by_score(v: &mut Vec<(f32, u32, u32)>, k: usize) {
    if k < v.len() {
        if k > 0 {
            v.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        }
        v.truncate(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_keys_sort_as_total_cmp_and_give_the_score_back() {
        let mut xs = vec![
            f32::NEG_INFINITY,
            -1.5,
            -0.25,
            -f32::MIN_POSITIVE,
            -0.0,
            0.0,
            f32::MIN_POSITIVE,
            0.25,
            0.999_999,
            1.0,
            f32::INFINITY,
        ];
        xs.sort_by(f32::total_cmp);
        let keys: Vec<u32> = xs.iter().map(|&x| ordered(x)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        for &x in &xs {
            assert_eq!(unordered(ordered(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn keeps_the_best_k_of_a_stream_through_many_cuts() {
        // A stream that keeps offering scores near the top: many cuts, ties included.
        let mut top = TopK::new(72);
        let mut all = Vec::new();
        let mut next = crate::testing::xorshift(7);
        for row in 0..20_000u32 {
            let seed = next();
            let score = ((seed >> 40) % 1000) as f32 / 1000.0 - 0.5;
            all.push(score);
            top.push_if(score, row % 3, row, || row % 11 != 0);
        }
        let mut got: Vec<(f32, u32, u32)> = top.into_vec();
        got.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut want: Vec<f32> =
            all.iter().enumerate().filter(|(row, _)| row % 11 != 0).map(|(_, &s)| s).collect();
        want.sort_by(|a, b| b.total_cmp(a));
        want.truncate(72);
        assert_eq!(got.iter().map(|e| e.0).collect::<Vec<_>>(), want);
        for (score, segment, row) in got {
            assert_eq!(all[row as usize].to_bits(), score.to_bits());
            assert_eq!(segment, row % 3);
            assert_ne!(row % 11, 0);
        }
    }
}
