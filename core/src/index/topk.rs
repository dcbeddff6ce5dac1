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
pub(super) struct TopK {
    k: usize,
    threshold: f32,
    buf: Vec<(f32, u32, u32)>,
}

impl TopK {
    pub(super) fn new(k: usize) -> Self {
        TopK { k: k.max(1), threshold: f32::NEG_INFINITY, buf: Vec::with_capacity(2 * k.max(32)) }
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
        self.buf.push((score, segment, row));
        if self.buf.len() >= 2 * self.k.max(32) {
            top_by_score(&mut self.buf, self.k);
            self.threshold = self.buf.iter().map(|e| e.0).fold(f32::INFINITY, f32::min);
        }
    }

    pub(super) fn into_vec(mut self) -> Vec<(f32, u32, u32)> {
        top_by_score(&mut self.buf, self.k);
        self.buf
    }
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
