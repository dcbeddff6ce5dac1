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
/// each sum is the dot product plus 128 × Σq, which is taken off again: exact. Several
/// queries scanned together flip the queries' codes instead (once, not each row's block for
/// every tile of queries), so each sum is the dot product plus 128 × the row's sum of codes,
/// which the caller keeps with the rows ([`super::code_sum`]).
///
/// Several queries are scored in tiles of up to four queries by four rows: each (query,
/// row) pair's products gather in a register of its own, and the 16 registers' lanes are
/// summed together ([`sum16`], 45 instructions for 16 sums where summing each register alone
/// takes about 9: those sums cost about as much as the products). A tile loads each row's
/// block once for its queries and each query's block once for its rows. (One query alone is
/// scanned four rows at a time, each row's register summed alone: measured faster than a
/// tile of one query.) The module also holds the AVX-512 threshold check of a block of
/// scores ([`super::above`]).
#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::{
        __m512i, _mm512_add_epi32, _mm512_broadcast_i32x4, _mm512_castsi512_si128,
        _mm512_cmp_ps_mask, _mm512_cvtepi32_ps, _mm512_dpbusd_epi32, _mm512_extracti32x4_epi32,
        _mm512_maskz_loadu_epi32, _mm512_maskz_loadu_epi8, _mm512_maskz_loadu_ps, _mm512_mul_ps,
        _mm512_reduce_add_epi32, _mm512_set1_epi8, _mm512_set1_ps, _mm512_setzero_si512,
        _mm512_shuffle_i32x4, _mm512_sub_epi32, _mm512_unpackhi_epi32, _mm512_unpackhi_epi64,
        _mm512_unpacklo_epi32, _mm512_unpacklo_epi64, _mm512_xor_si512, _mm_loadu_si128,
        _mm_storeu_si128, _CMP_GT_OQ,
    };

    /// Rows scored before their scores are handed to the callback, so that the vector loop
    /// runs without a call between rows (a call clobbers the vector registers). A multiple
    /// of every tile's rows. 64, the most a caller's threshold check takes at once
    /// ([`super::above`]): half the callbacks of 32, which took about 4% more CPU per query
    /// of a shared scan with its ranking.
    const BATCH: usize = 64;
    /// How many rows ahead of the ones scored the scan starts loading rows.
    const PREFETCH_ROWS: usize = 16;
    /// Queries and rows of a tile: their products are summed in 16 registers.
    const TILE_QUERIES: usize = 4;
    const TILE_ROWS: usize = 4;

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
        let masks = block_masks(dims);
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

    /// [`scan_i8_blocks`] for several queries: each block of rows is read once and scored
    /// against every query, `f(query, first row, its scores)`, a query's blocks in row order.
    /// `sums`: each row's sum of codes (with fewer, each query is scanned alone).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn scan_i8_multi(
        rows: &[i8],
        sums: &[i32],
        dims: usize,
        queries: &[&[i8]],
        mut f: impl FnMut(usize, usize, &[i32]),
    ) {
        if let [q] = queries {
            return scan_i8_blocks(rows, dims, q, |start, scores| f(0, start, scores));
        }
        if dims == 0 || queries.iter().any(|q| q.len() < dims) || sums.len() < rows.len() / dims {
            for (j, q) in queries.iter().enumerate() {
                super::blocks_of(|g| super::scan_i8_body(rows, dims, q, g), |s, d| f(j, s, d));
            }
            return;
        }
        let n = rows.len() / dims;
        let masks = block_masks(dims);
        let tiles: Vec<Tile> = queries.chunks(TILE_QUERIES).map(|q| Tile::new(q, &masks)).collect();
        let at = Scan { rows, sums, dims, masks: &masks, n };
        let mut scores = vec![[0i32; BATCH]; queries.len()];
        let mut start = 0;
        while start < n {
            let end = (start + BATCH).min(n);
            for (t, (tile, out)) in tiles.iter().zip(scores.chunks_mut(TILE_QUERIES)).enumerate() {
                // The first tile reads the rows from memory; they stay in the first-level
                // cache for the others.
                let ahead = t == 0;
                match tile.queries {
                    1 => at.score::<1>(tile, start, end, out, ahead),
                    2 => at.score::<2>(tile, start, end, out, ahead),
                    3 => at.score::<3>(tile, start, end, out, ahead),
                    _ => at.score::<TILE_QUERIES>(tile, start, end, out, ahead),
                }
            }
            for (j, s) in scores.iter().enumerate() {
                f(j, start, &s[..end - start]);
            }
            start = end;
        }
    }

    /// Up to [`TILE_QUERIES`] queries scored together: block `k` of query `q` is
    /// `blocks[k * queries + q]`, its codes made unsigned (x + 128: the top bit flipped; the
    /// lanes past `dims` hold 128, times a row lane of 0).
    struct Tile {
        queries: usize,
        blocks: Vec<__m512i>,
    }

    impl Tile {
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        fn new(queries: &[&[i8]], masks: &[u64]) -> Tile {
            let flip = _mm512_set1_epi8(i8::MIN);
            let mut blocks = Vec::with_capacity(masks.len() * queries.len());
            for (k, mask) in masks.iter().enumerate() {
                for q in queries {
                    // SAFETY: the mask keeps the load within the query's `dims` bytes.
                    let block = unsafe { _mm512_maskz_loadu_epi8(*mask, q.as_ptr().add(k * 64)) };
                    blocks.push(_mm512_xor_si512(block, flip));
                }
            }
            Tile { queries: queries.len(), blocks }
        }
    }

    /// The rows of a scan (`n` of `dims` codes, and each one's sum of codes), with the masks
    /// of their blocks.
    struct Scan<'a> {
        rows: &'a [i8],
        sums: &'a [i32],
        dims: usize,
        masks: &'a [u64],
        n: usize,
    }

    impl Scan<'_> {
        /// Scores rows `start..end` (within one batch) against the `Q` queries of `tile`,
        /// [`TILE_ROWS`] rows at a time, into `out[query][row - start]`; `ahead`: fetches the
        /// rows [`PREFETCH_ROWS`] on meanwhile.
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        #[inline]
        fn score<const Q: usize>(
            &self,
            tile: &Tile,
            start: usize,
            end: usize,
            out: &mut [[i32; BATCH]],
            ahead: bool,
        ) {
            const { assert!(Q >= 1 && Q <= TILE_QUERIES && BATCH.is_multiple_of(TILE_ROWS)) };
            let (rows, dims, n) = (self.rows, self.dims, self.n);
            let mut i = start;
            while i < end {
                if ahead {
                    let from = (i + PREFETCH_ROWS).min(n);
                    super::prefetch(&rows[from * dims..(from + TILE_ROWS).min(n) * dims]);
                }
                // Past the last row, the last is scored again (those scores are not handed
                // out): every tile is whole.
                let mut at = [0usize; TILE_ROWS];
                // 128 × each row's sum of codes, what the flipped queries add to its products.
                let mut bias = [0i32; TILE_ROWS];
                for (r, (a, b)) in at.iter_mut().zip(&mut bias).enumerate() {
                    let row = (i + r).min(n - 1);
                    *a = row * dims;
                    *b = self.sums[row].wrapping_mul(128);
                }
                let mut acc = [[_mm512_setzero_si512(); TILE_ROWS]; Q];
                for (k, (mask, qs)) in
                    self.masks.iter().zip(tile.blocks.chunks_exact(Q)).enumerate()
                {
                    for (r, a) in at.iter().enumerate() {
                        // SAFETY: `a` is the start of a whole row of `rows`; the mask keeps the
                        // load within its `dims` bytes.
                        let x = unsafe {
                            _mm512_maskz_loadu_epi8(*mask, rows.as_ptr().add(a + k * 64))
                        };
                        for (q, acc) in acc.iter_mut().enumerate() {
                            acc[r] = _mm512_dpbusd_epi32(acc[r], qs[q], x);
                        }
                    }
                }
                let mut each = [_mm512_setzero_si512(); 16];
                for (e, acc) in each.chunks_exact_mut(TILE_ROWS).zip(&acc) {
                    e.copy_from_slice(acc);
                }
                // The rows' biases in each query's quarter (its lanes are the rows in order).
                // SAFETY: `bias` is 16 bytes.
                let bias = unsafe { _mm512_broadcast_i32x4(_mm_loadu_si128(bias.as_ptr().cast())) };
                let sums = _mm512_sub_epi32(sum16(&each), bias);
                // Query `q`'s scores are the quarter `q` of the sums.
                let quarters = [
                    _mm512_castsi512_si128(sums),
                    _mm512_extracti32x4_epi32::<1>(sums),
                    _mm512_extracti32x4_epi32::<2>(sums),
                    _mm512_extracti32x4_epi32::<3>(sums),
                ];
                let at = i - start;
                for (o, x) in out.iter_mut().zip(quarters) {
                    let o = &mut o[at..at + TILE_ROWS];
                    // SAFETY: `o` is 16 bytes.
                    unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), x) };
                }
                i += TILE_ROWS;
            }
        }
    }

    /// [`super::above`]: 16 rows per compare.
    #[target_feature(enable = "avx512f")]
    pub(super) fn above(scores: &[i32], scales: &[f32], threshold: f32) -> u64 {
        let n = scores.len().min(scales.len()).min(64);
        let threshold = _mm512_set1_ps(threshold);
        let mut above = 0u64;
        for k in (0..n).step_by(16) {
            let mask = if n - k >= 16 { u16::MAX } else { (1u16 << (n - k)) - 1 };
            // SAFETY: the mask keeps both loads within the first `n` entries.
            let (d, s) = unsafe {
                (
                    _mm512_maskz_loadu_epi32(mask, scores.as_ptr().add(k)),
                    _mm512_maskz_loadu_ps(mask, scales.as_ptr().add(k)),
                )
            };
            // The scalar `d as f32 * s > threshold`: conversion and product rounded to nearest
            // alike, and false for NaN (an ordered compare).
            let x = _mm512_mul_ps(_mm512_cvtepi32_ps(d), s);
            above |= u64::from(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, threshold) & mask) << k;
        }
        above
    }

    /// The load mask of each 64-byte block of a `dims`-byte row or query: every lane, but in
    /// the last block only the lanes within `dims` (those past it load as 0 from a query and
    /// 128 from a row, after the flip).
    fn block_masks(dims: usize) -> Vec<u64> {
        let blocks = dims.div_ceil(64);
        let last = match dims % 64 {
            0 => u64::MAX,
            r => (1u64 << r) - 1,
        };
        (0..blocks).map(|k| if k + 1 == blocks { last } else { u64::MAX }).collect()
    }

    /// The sums of 16 registers' lanes: lane `m` of the result is the sum of `regs[m]`'s 16
    /// lanes. Pairs of registers are added lane by lane after interleaving their halves:
    /// by 32-bit lanes, then 64-bit pairs within each 128-bit quarter, then quarters.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    fn sum16(regs: &[__m512i; 16]) -> __m512i {
        // Per quarter [a0 + a2, b0 + b2, a1 + a3, b1 + b3].
        let mut pairs = [_mm512_setzero_si512(); 8];
        for (m, pair) in pairs.iter_mut().enumerate() {
            let (a, b) = (regs[2 * m], regs[2 * m + 1]);
            *pair = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
        }
        // Per quarter the four registers' sums over it.
        let mut quads = [_mm512_setzero_si512(); 4];
        for (m, quad) in quads.iter_mut().enumerate() {
            let (a, b) = (pairs[2 * m], pairs[2 * m + 1]);
            *quad = _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
        }
        // Quarters [a's 0 + 1, a's 2 + 3, b's 0 + 1, b's 2 + 3] (four registers each).
        let halves = |a: __m512i, b: __m512i| {
            _mm512_add_epi32(
                _mm512_shuffle_i32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b),
            )
        };
        halves(halves(quads[0], quads[1]), halves(quads[2], quads[3]))
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
/// blocks come in row order, and its scores are those [`scan_i8`] gives it alone. `sums` holds
/// each row's [`code_sum`] (the AVX-512 VNNI scan takes it off the products of its unsigned
/// query codes; with fewer sums than rows, each query is scanned alone).
pub(crate) fn scan_i8_multi(
    rows: &[i8],
    sums: &[i32],
    dims: usize,
    queries: &[&[i8]],
    mut f: impl FnMut(usize, usize, &[i32]),
) {
    #[cfg(target_arch = "x86_64")]
    if has_vnni() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { vnni::scan_i8_multi(rows, sums, dims, queries, f) };
    }
    let _ = sums;
    for (j, q) in queries.iter().enumerate() {
        scan_i8_blocks(rows, dims, q, |start, scores| f(j, start, scores));
    }
}

/// The sum of a row's codes, which [`scan_i8_multi`] is given with each row.
pub(crate) fn code_sum(codes: &[i8]) -> i32 {
    codes.iter().map(|&c| i32::from(c)).sum()
}

#[inline(always)]
fn above_body(scores: &[i32], scales: &[f32], threshold: f32) -> u64 {
    let mut above = 0u64;
    for (k, (d, scale)) in scores.iter().zip(scales).take(64).enumerate() {
        above |= u64::from(*d as f32 * scale > threshold) << k;
    }
    above
}

/// Which of up to 64 rows' int8 scores, times their rows' scales, exceed `threshold`: bit
/// `k` is `scores[k] as f32 * scales[k] > threshold`. A scan's ranking asks this of each
/// block of scores before it looks at any row (most rows score below the threshold).
pub(crate) fn above(scores: &[i32], scales: &[f32], threshold: f32) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the enabled feature (checked above).
        return unsafe { vnni::above(scores, scales, threshold) };
    }
    above_body(scores, scales, threshold)
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
            // 73 rows: the fast scans take rows four at a time and score them in batches of
            // 64 (the fallback in blocks of 32), so each leaves a remainder.
            rows.push(rows[1].clone());
            rows.extend(std::iter::repeat_n(rows[2].clone(), 64));
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
                    assert!((1..=64).contains(&scores.len()), "a block of {}", scores.len());
                    got.extend(scores.iter().enumerate().map(|(j, d)| (start + j, *d)));
                });
                assert_eq!(got, want, "dims {dims}, scan_i8_blocks");
                // The same query among others (2 to 16 at once: whole tiles of four queries
                // and the remainders of one to three; a tile's queries each in their own
                // lanes) gets the same scores, in row order, as does every other query; so
                // do the first few rows alone (a tile of four rows past the last).
                for n in [2, 3, 4, 5, 6, 7, 9, 16] {
                    let others: Vec<Vec<i8>> =
                        (0..n - 1).map(|o| rows[(o * 5) % rows.len()].clone()).collect();
                    let mut queries: Vec<&[i8]> = others.iter().map(Vec::as_slice).collect();
                    queries.insert(n / 2, &q);
                    // The rows' sums of codes; without them each query is scanned alone.
                    let sums: Vec<i32> = rows.iter().map(|r| code_sum(r)).collect();
                    for (len, sums) in [1, 2, 3, 5, rows.len()]
                        .into_iter()
                        .map(|len| (len, &sums[..len]))
                        .chain([(rows.len(), &sums[..0])])
                    {
                        let mut got = vec![Vec::new(); n];
                        let flat = &flat[..len * dims];
                        scan_i8_multi(flat, sums, dims, &queries, |j, start, scores| {
                            assert_eq!(start, got[j].len(), "query {j}'s blocks in row order");
                            got[j].extend(scores.iter().enumerate().map(|(i, d)| (start + i, *d)));
                        });
                        assert_eq!(got[n / 2], want[..len], "dims {dims}, scan_i8_multi of {n}");
                        for (j, query) in queries.iter().enumerate() {
                            let want: Vec<(usize, i32)> = rows[..len]
                                .iter()
                                .enumerate()
                                .map(|(i, r)| {
                                    (
                                        i,
                                        r.iter()
                                            .zip(*query)
                                            .map(|(x, y)| i32::from(*x) * i32::from(*y))
                                            .sum(),
                                    )
                                })
                                .collect();
                            assert_eq!(got[j], want, "dims {dims}, query {j} of {n}, {len} rows");
                        }
                    }
                }
                for (name, scan) in &each {
                    let mut got = Vec::new();
                    scan(&flat, dims, &q, &mut |i, d| got.push((i, d)));
                    assert_eq!(got, want, "dims {dims}, {name}");
                }
            }
        }
    }

    /// The vectorised threshold check of a block of scores answers as the scalar compare
    /// does, for every block length (partial sixteens included), the threshold of an empty
    /// top (−∞), scores exactly at the threshold (not above), and negative scores and scales.
    #[test]
    fn above_agrees_with_the_scalar_compare() {
        let mut seed = 5u64;
        let mut next = |span: f32| crate::vector::tests::lcg(&mut seed) * span;
        for len in 0..=70usize {
            let scores: Vec<i32> = (0..len).map(|_| next(2.0e6) as i32).collect();
            let scales: Vec<f32> = (0..len).map(|_| next(0.02).abs()).collect();
            let at = len / 2;
            let tie = scores.get(at).map_or(0.0, |d| *d as f32 * scales[at]);
            for threshold in [f32::NEG_INFINITY, 0.0, tie, next(1.0e4), -1.0e4, f32::INFINITY] {
                let mut want = 0u64;
                for k in 0..len.min(64) {
                    if scores[k] as f32 * scales[k] > threshold {
                        want |= 1 << k;
                    }
                }
                assert_eq!(above(&scores, &scales, threshold), want, "{len} rows, {threshold}");
            }
        }
    }
}
