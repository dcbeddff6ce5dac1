//! Scan kernels, compiled twice on x86-64: for the baseline and for AVX2+FMA (chosen at run
//! time), so the hot loops vectorise without building the whole crate for one CPU. The bodies
//! are `inline(always)` so that they are compiled inside the feature-enabled functions.
#![allow(clippy::inline_always)]

#[inline(always)]
fn dot_f32_body(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..16 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut sum = 0.0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += x * y;
    }
    let mut half = [0.0f32; 8];
    for j in 0..8 {
        half[j] = acc[j] + acc[j + 8];
    }
    sum + half.iter().sum::<f32>()
}

#[inline(always)]
fn dot_i8_body(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0i32; 32];
    let mut ca = a.chunks_exact(32);
    let mut cb = b.chunks_exact(32);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..32 {
            acc[j] += i32::from(x[j]) * i32::from(y[j]);
        }
    }
    let mut sum: i32 = acc.iter().sum();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += i32::from(*x) * i32::from(*y);
    }
    sum
}

#[inline(always)]
fn scan_f32_body(rows: &[f32], dims: usize, q: &[f32], mut f: impl FnMut(usize, f32)) {
    for (i, row) in rows.chunks_exact(dims).enumerate() {
        f(i, dot_f32_body(row, q));
    }
}

#[inline(always)]
fn scan_i8_body(rows: &[i8], dims: usize, q: &[i8], mut f: impl FnMut(usize, i32)) {
    for (i, row) in rows.chunks_exact(dims).enumerate() {
        f(i, dot_i8_body(row, q));
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
fn has_vnni() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vnni")
}

/// The int8 scan with AVX-512 VNNI: 64 products a row per instruction (`vpdpbusd`
/// multiplies unsigned by signed bytes and adds each four into an i32 lane, without
/// saturating). A row's codes are made unsigned by flipping their top bit (x + 128), so
/// each sum is the dot product plus 128 × Σq, which is taken off again: exact.
#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::{
        __m512i, _mm512_dpbusd_epi32, _mm512_maskz_loadu_epi8, _mm512_reduce_add_epi32,
        _mm512_set1_epi8, _mm512_setzero_si512, _mm512_xor_si512,
    };

    /// Rows scored before their scores are handed to the callback, so that the vector loop
    /// runs without a call between rows (a call clobbers the vector registers).
    const BATCH: usize = 32;
    /// How many rows ahead of the ones scored the scan starts loading rows.
    const PREFETCH_ROWS: usize = 16;

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn scan_i8(rows: &[i8], dims: usize, q: &[i8], mut f: impl FnMut(usize, i32)) {
        scan_i8_blocks(rows, dims, q, |start, scores| {
            for (j, d) in scores.iter().enumerate() {
                f(start + j, *d);
            }
        });
    }

    /// [`scan_i8`] handing over the scores of up to [`BATCH`] rows at a time: `f(first row,
    /// their scores)`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn scan_i8_blocks(
        rows: &[i8],
        dims: usize,
        q: &[i8],
        mut f: impl FnMut(usize, &[i32]),
    ) {
        if dims == 0 || q.len() < dims {
            return super::blocks_of(|g| super::scan_i8_body(rows, dims, q, g), f);
        }
        let blocks = dims.div_ceil(64);
        // The lanes of the last block past `dims` load as 0 (query) and 128 (rows).
        let last = match dims % 64 {
            0 => u64::MAX,
            r => (1u64 << r) - 1,
        };
        let masks: Vec<u64> =
            (0..blocks).map(|k| if k + 1 == blocks { last } else { u64::MAX }).collect();
        // SAFETY: each load reads the lanes of its mask only, all within `dims` bytes
        // from a block's start inside `q` (or the row).
        let qs: Vec<__m512i> = (0..blocks)
            .map(|k| unsafe { _mm512_maskz_loadu_epi8(masks[k], q.as_ptr().add(k * 64)) })
            .collect();
        let bias: i32 = 128 * q[..dims].iter().map(|&x| i32::from(x)).sum::<i32>();
        let flip = _mm512_set1_epi8(i8::MIN);
        // Lanes past `dims` hold 128 after the flip, times a query lane of 0.
        let block = |acc: __m512i, row: usize, k: usize| {
            // SAFETY: `row` is a whole row of `rows` and block `k` lies within its `dims`
            // bytes (masked as above).
            let r = unsafe {
                _mm512_maskz_loadu_epi8(masks[k], rows.as_ptr().add(row * dims + k * 64))
            };
            _mm512_dpbusd_epi32(acc, _mm512_xor_si512(r, flip), qs[k])
        };
        let n = rows.len() / dims;
        let mut scores = [0i32; BATCH];
        let mut start = 0;
        while start < n {
            let end = (start + BATCH).min(n);
            let mut i = start;
            // Four rows at a time: four independent sums keep more loads in flight.
            while i + 4 <= end {
                // The rows `PREFETCH_ROWS` on are fetched while these are scored.
                let ahead = (i + PREFETCH_ROWS).min(n);
                super::prefetch(&rows[ahead * dims..(ahead + 4).min(n) * dims]);
                let mut acc = [_mm512_setzero_si512(); 4];
                for k in 0..blocks {
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = block(*a, i + j, k);
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    scores[i - start + j] = _mm512_reduce_add_epi32(*a) - bias;
                }
                i += 4;
            }
            while i < end {
                let acc = (0..blocks).fold(_mm512_setzero_si512(), |acc, k| block(acc, i, k));
                scores[i - start] = _mm512_reduce_add_epi32(acc) - bias;
                i += 1;
            }
            f(start, &scores[..end - start]);
            start = end;
        }
    }

    /// The most queries one row's accumulators are kept for at once (two rows' worth of
    /// the 32 vector registers would not leave room for the row's blocks).
    const GROUP: usize = 8;

    /// [`scan_i8_blocks`] for several queries: each block of rows is read once and scored
    /// against every query, `f(query, first row, its scores)`, a query's blocks in row order.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn scan_i8_multi(
        rows: &[i8],
        dims: usize,
        queries: &[&[i8]],
        mut f: impl FnMut(usize, usize, &[i32]),
    ) {
        if let [q] = queries {
            return scan_i8_blocks(rows, dims, q, |start, scores| f(0, start, scores));
        }
        if dims == 0 || queries.iter().any(|q| q.len() < dims) {
            for (j, q) in queries.iter().enumerate() {
                super::blocks_of(|g| super::scan_i8_body(rows, dims, q, g), |s, d| f(j, s, d));
            }
            return;
        }
        let blocks = dims.div_ceil(64);
        let last = match dims % 64 {
            0 => u64::MAX,
            r => (1u64 << r) - 1,
        };
        let masks: Vec<u64> =
            (0..blocks).map(|k| if k + 1 == blocks { last } else { u64::MAX }).collect();
        // Query `j`'s block `k` is `qs[j * blocks + k]`.
        // SAFETY: each load reads the lanes of its mask only, within the query's `dims` bytes.
        let qs: Vec<__m512i> = queries
            .iter()
            .flat_map(|q| {
                (0..blocks)
                    .map(|k| unsafe { _mm512_maskz_loadu_epi8(masks[k], q.as_ptr().add(k * 64)) })
            })
            .collect();
        let bias: Vec<i32> = queries
            .iter()
            .map(|q| 128 * q[..dims].iter().map(|&x| i32::from(x)).sum::<i32>())
            .collect();
        let n = rows.len() / dims;
        let mut scores = vec![[0i32; BATCH]; queries.len()];
        let mut start = 0;
        while start < n {
            let end = (start + BATCH).min(n);
            let mut j = 0;
            // The block's rows stay in the first-level cache for the groups after the first.
            while j < queries.len() {
                let take = (queries.len() - j).min(GROUP);
                let at = Group { rows, dims, masks: &masks, start, end };
                let (qs, bias) = (&qs[j * blocks..(j + take) * blocks], &bias[j..j + take]);
                let out = &mut scores[j..j + take];
                match take {
                    1 => at.score::<1>(qs, bias, out),
                    2 => at.score::<2>(qs, bias, out),
                    3 => at.score::<3>(qs, bias, out),
                    4 => at.score::<4>(qs, bias, out),
                    5 => at.score::<5>(qs, bias, out),
                    6 => at.score::<6>(qs, bias, out),
                    7 => at.score::<7>(qs, bias, out),
                    _ => at.score::<GROUP>(qs, bias, out),
                }
                j += take;
            }
            for (j, s) in scores.iter().enumerate() {
                f(j, start, &s[..end - start]);
            }
            start = end;
        }
    }

    /// Rows `start..end` of a scan, with the masks of their blocks.
    struct Group<'a> {
        rows: &'a [i8],
        dims: usize,
        masks: &'a [u64],
        start: usize,
        end: usize,
    }

    impl Group<'_> {
        /// Scores the rows against `Q` queries (`qs`: their blocks, query by query; `bias`:
        /// 128 × each one's sum), into `out[query][row - start]`.
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        #[inline]
        fn score<const Q: usize>(&self, qs: &[__m512i], bias: &[i32], out: &mut [[i32; BATCH]]) {
            let (rows, dims, masks) = (self.rows, self.dims, self.masks);
            let blocks = masks.len();
            let n = rows.len() / dims;
            let flip = _mm512_set1_epi8(i8::MIN);
            for i in self.start..self.end {
                if (i - self.start).is_multiple_of(4) {
                    let ahead = (i + PREFETCH_ROWS).min(n);
                    super::prefetch(&rows[ahead * dims..(ahead + 4).min(n) * dims]);
                }
                let mut acc = [_mm512_setzero_si512(); Q];
                for (k, mask) in masks.iter().enumerate() {
                    // SAFETY: row `i` is a whole row of `rows`; the mask keeps the load within
                    // its `dims` bytes.
                    let r = unsafe {
                        _mm512_maskz_loadu_epi8(*mask, rows.as_ptr().add(i * dims + k * 64))
                    };
                    let r = _mm512_xor_si512(r, flip);
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_dpbusd_epi32(*a, r, qs[j * blocks + k]);
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    out[j][i - self.start] = _mm512_reduce_add_epi32(*a) - bias[j];
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_abs_epi8, _mm256_add_epi32, _mm256_castsi256_si128,
        _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_maddubs_epi16,
        _mm256_set1_epi16, _mm256_setzero_si256, _mm256_sign_epi8, _mm_add_epi32,
        _mm_cvtsi128_si32, _mm_shuffle_epi32,
    };

    /// int8 dot product, 32 lanes at a time: |a| × (b with a's sign) as u8 × i8 pairs
    /// (exact: codes are within ±127, so a pair sum fits i16), widened to i32.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::cast_ptr_alignment)] // unaligned loads (loadu)
    pub(super) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let blocks = n / 32;
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_si256();
        for k in 0..blocks {
            // SAFETY: k * 32 + 32 <= n, within both slices; unaligned loads.
            let (va, vb) = unsafe {
                (
                    _mm256_loadu_si256(a.as_ptr().add(k * 32).cast::<__m256i>()),
                    _mm256_loadu_si256(b.as_ptr().add(k * 32).cast::<__m256i>()),
                )
            };
            let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(va), _mm256_sign_epi8(vb, va));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
        }
        let s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256::<1>(acc));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b0100_1110>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b1011_0001>(s));
        let mut sum = _mm_cvtsi128_si32(s);
        for i in blocks * 32..n {
            sum += i32::from(a[i]) * i32::from(b[i]);
        }
        sum
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        super::dot_f32_body(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn scan_f32(rows: &[f32], dims: usize, q: &[f32], f: impl FnMut(usize, f32)) {
        super::scan_f32_body(rows, dims, q, f);
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn scan_i8(rows: &[i8], dims: usize, q: &[i8], mut f: impl FnMut(usize, i32)) {
        for (i, row) in rows.chunks_exact(dims).enumerate() {
            f(i, dot_i8(row, q));
        }
    }
}

pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { avx2::dot_f32(a, b) };
    }
    dot_f32_body(a, b)
}

/// Starts loading `data` into the caches (a hint: it changes no result), for a row read
/// soon whose address the hardware cannot guess.
pub(crate) fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = data.as_ptr().cast::<i8>();
        for offset in (0..std::mem::size_of_val(data)).step_by(64) {
            // SAFETY: the address lies within `data`; a prefetch never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

pub(crate) fn scan_f32(rows: &[f32], dims: usize, q: &[f32], f: impl FnMut(usize, f32)) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { avx2::scan_f32(rows, dims, q, f) };
    }
    scan_f32_body(rows, dims, q, f);
}

pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { avx2::dot_i8(a, b) };
    }
    dot_i8_body(a, b)
}

pub(crate) fn scan_i8(rows: &[i8], dims: usize, q: &[i8], f: impl FnMut(usize, i32)) {
    #[cfg(target_arch = "x86_64")]
    if has_vnni() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { vnni::scan_i8(rows, dims, q, f) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { avx2::scan_i8(rows, dims, q, f) };
    }
    scan_i8_body(rows, dims, q, f);
}

/// [`scan_i8`] handing over the scores of a few rows at a time, `f(first row, their
/// scores)`, so that the caller's loop over them is compiled inline (a call per row costs
/// about as much as the row's dot product).
pub(crate) fn scan_i8_blocks(rows: &[i8], dims: usize, q: &[i8], f: impl FnMut(usize, &[i32])) {
    #[cfg(target_arch = "x86_64")]
    if has_vnni() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { vnni::scan_i8_blocks(rows, dims, q, f) };
    }
    blocks_of(|g| scan_i8(rows, dims, q, g), f);
}

/// The most queries [`scan_i8_multi`] is given at once.
pub(crate) const MULTI_MAX: usize = 16;

/// [`scan_i8_blocks`] for up to [`MULTI_MAX`] queries in one pass: each block of rows is read
/// once and scored against every query, `f(query, first row, their scores)`; each query's
/// blocks come in row order, and its scores are those [`scan_i8`] gives it alone.
pub(crate) fn scan_i8_multi(
    rows: &[i8],
    dims: usize,
    queries: &[&[i8]],
    mut f: impl FnMut(usize, usize, &[i32]),
) {
    #[cfg(target_arch = "x86_64")]
    if has_vnni() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { vnni::scan_i8_multi(rows, dims, queries, f) };
    }
    for (j, q) in queries.iter().enumerate() {
        scan_i8_blocks(rows, dims, q, |start, scores| f(j, start, scores));
    }
}

/// Runs a per-row scan (`scan` calls its argument with each row and score, in order) and
/// hands its scores to `f` in blocks of up to 32.
fn blocks_of(scan: impl FnOnce(&mut dyn FnMut(usize, i32)), mut f: impl FnMut(usize, &[i32])) {
    let mut scores = Vec::with_capacity(32);
    let mut start = 0;
    scan(&mut |i, d| {
        if scores.is_empty() {
            start = i;
        }
        scores.push(d);
        if scores.len() == 32 {
            f(start, &scores);
            scores.clear();
        }
    });
    if !scores.is_empty() {
        f(start, &scores);
    }
}

/// An int8 scan as the tests call it (through a `dyn` callback).
#[cfg(test)]
pub(crate) type ScanI8 = fn(&[i8], usize, &[i8], &mut dyn FnMut(usize, i32));

/// Every int8 scan this CPU can run, by name: the plain one always, AVX2 and AVX-512
/// VNNI where the CPU has them, so the tests hold each one (not only the one `scan_i8`
/// picks) to the exact dot products.
#[cfg(test)]
pub(crate) fn scan_i8_each() -> Vec<(&'static str, ScanI8)> {
    let mut each: Vec<(&'static str, ScanI8)> =
        vec![("plain", |r, d, q, f| scan_i8_body(r, d, q, f))];
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            // SAFETY: listed only when the CPU supports the enabled features.
            each.push(("avx2", |r, d, q, f| unsafe { avx2::scan_i8(r, d, q, f) }));
        }
        if has_vnni() {
            // SAFETY: listed only when the CPU supports the enabled features.
            each.push(("avx512-vnni", |r, d, q, f| unsafe { vnni::scan_i8(r, d, q, f) }));
        }
    }
    each
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::tests::random_rows;
    use crate::vector::{dot, quantize};

    #[test]
    fn kernels_agree_with_plain_loops() {
        let rows = random_rows(2, 389, 3);
        let plain: f32 = rows[0].iter().zip(&rows[1]).map(|(a, b)| a * b).sum();
        assert!((dot(&rows[0], &rows[1]) - plain).abs() < 1e-5);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        quantize(&rows[0], &mut a);
        quantize(&rows[1], &mut b);
        let plain: i32 = a.iter().zip(&b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
        let mut got = 0;
        scan_i8(&a, 389, &b, |_, d| got = d);
        assert_eq!(got, plain);
    }

    /// Each int8 scan the CPU can run (plain always; AVX2 and AVX-512 VNNI where present, so
    /// the fallbacks are held to the same answers as the fast path) and the one `scan_i8`
    /// picks give each row's exact dot product, for widths with and without a partial last
    /// block and at the codes' extremes.
    #[test]
    fn int8_scan_is_exact_for_every_row_and_width() {
        let each = scan_i8_each();
        assert_eq!(each[0].0, "plain");
        eprintln!("int8 scans on this CPU: {:?}", each.iter().map(|k| k.0).collect::<Vec<_>>());
        for dims in [1, 7, 63, 64, 65, 384, 389, 1024] {
            let mut rows: Vec<Vec<i8>> = random_rows(6, dims, dims as u64)
                .iter()
                .map(|r| {
                    let mut c = Vec::new();
                    quantize(r, &mut c);
                    c
                })
                .collect();
            rows.push(vec![127; dims]);
            rows.push(vec![-127; dims]);
            // 41 rows: the fast scans take rows four at a time and score them in batches of
            // 32, so both leave a remainder.
            rows.push(rows[1].clone());
            rows.extend(std::iter::repeat_n(rows[2].clone(), 32));
            for q in [rows[0].clone(), vec![127; dims], vec![-127; dims]] {
                let flat: Vec<i8> = rows.concat();
                let mut got = Vec::new();
                scan_i8(&flat, dims, &q, |i, d| got.push((i, d)));
                let want: Vec<(usize, i32)> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        (i, r.iter().zip(&q).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum())
                    })
                    .collect();
                assert_eq!(got, want, "dims {dims}, the scan scan_i8 picks");
                let mut got = Vec::new();
                scan_i8_blocks(&flat, dims, &q, |start, scores| {
                    assert!((1..=32).contains(&scores.len()), "a block of {}", scores.len());
                    got.extend(scores.iter().enumerate().map(|(j, d)| (start + j, *d)));
                });
                assert_eq!(got, want, "dims {dims}, scan_i8_blocks");
                // The same query among others (1 to 16 at once: one group of eight, two,
                // and remainders) gets the same scores, in row order.
                for n in [2, 3, 9, 16] {
                    let others: Vec<Vec<i8>> =
                        (0..n - 1).map(|o| rows[o % rows.len()].clone()).collect();
                    let mut queries: Vec<&[i8]> = others.iter().map(Vec::as_slice).collect();
                    queries.insert(n / 2, &q);
                    let mut got = Vec::new();
                    let mut other_rows = vec![0usize; n];
                    scan_i8_multi(&flat, dims, &queries, |j, start, scores| {
                        assert_eq!(start, other_rows[j], "query {j}'s blocks in row order");
                        other_rows[j] += scores.len();
                        if j == n / 2 {
                            got.extend(scores.iter().enumerate().map(|(i, d)| (start + i, *d)));
                        }
                    });
                    assert_eq!(got, want, "dims {dims}, scan_i8_multi of {n}");
                    assert!(other_rows.iter().all(|r| *r == rows.len()));
                }
                for (name, scan) in &each {
                    let mut got = Vec::new();
                    scan(&flat, dims, &q, &mut |i, d| got.push((i, d)));
                    assert_eq!(got, want, "dims {dims}, {name}");
                }
            }
        }
    }
}
