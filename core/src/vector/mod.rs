//! Vector math: vectors are stored L2-normalised, so cosine similarity is a dot product. The
//! vector row codec, int8 quantisation, and the SIMD kernels ([`kernels`]) every scan uses.
//! What is searched, and how it is kept, is the index's (see [`crate::index`]).

use crate::error::{Error, Result};
use crate::records::MAX_DIMENSIONS;

pub(crate) mod kernels;

/// Scales `v` to unit length (the zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// Dot product of two f32 slices (over the shorter length), using AVX2/FMA when available.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    kernels::dot_f32(a, b)
}

/// Refuses a vector holding NaN or an infinity, naming the first such element.
pub(crate) fn check_finite(v: &[f32], field: &str) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::invalid(field, format!("element {i} is not a finite number"))),
        None => Ok(()),
    }
}

/// Checks a caller-supplied vector: finite values, sane size, not all zeros.
pub fn validate_vector(v: &[f32], field: &str) -> Result<()> {
    if v.is_empty() || v.len() > MAX_DIMENSIONS as usize {
        return Err(Error::invalid(
            field,
            format!("must have 1 to {} dimensions (got {})", MAX_DIMENSIONS, v.len()),
        ));
    }
    check_finite(v, field)?;
    if v.iter().all(|x| *x == 0.0) {
        return Err(Error::invalid(field, "must not be the zero vector"));
    }
    Ok(())
}

/// A caller-supplied vector checked (as [`validate_vector`]) and scaled to unit length (as
/// [`normalize`]), in one pass over a valid vector: a finite, positive sum of squares means
/// every value is finite (NaN and infinities carry into it) and one is not zero. Otherwise
/// (or when the sum overflows or underflows) the exact checks say which rule failed.
pub(crate) fn unit_vector(mut v: Vec<f32>, field: &str) -> Result<Vec<f32>> {
    let squares = dot(&v, &v);
    if v.is_empty() || v.len() > MAX_DIMENSIONS as usize || !(squares.is_finite() && squares > 0.0)
    {
        validate_vector(&v, field)?;
    }
    let norm = squares.sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    Ok(v)
}

/// Encodes a vector row: memory uuid ‖ f32 little-endian values.
pub(crate) fn encode_row(id: &[u8; 16], v: &[f32]) -> Vec<u8> {
    let mut out = vec![0; 16 + v.len() * 4];
    out[..16].copy_from_slice(id);
    // Into a buffer of the row's length: one copy the compiler vectorises, not a bounds
    // check and a length update per value.
    for (to, x) in out[16..].chunks_exact_mut(4).zip(v) {
        to.copy_from_slice(&x.to_le_bytes());
    }
    out
}

/// Decodes a vector row into its uuid and values.
pub(crate) fn decode_row(row: &[u8]) -> Option<([u8; 16], Vec<f32>)> {
    if row.len() < 16 || !(row.len() - 16).is_multiple_of(4) {
        return None;
    }
    let (id, floats) = row.split_at(16);
    let v = floats.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Some((id.try_into().ok()?, v))
}

/// The dot product of `query` with the vector of a stored row, decoded into `buf` (reused
/// across rows, so scoring many rows allocates once); `None` if the row is malformed or of
/// another dimension.
pub(crate) fn row_dot(row: &[u8], query: &[f32], buf: &mut Vec<f32>) -> Option<f32> {
    let floats = row.get(16..)?;
    if floats.len() != query.len() * 4 {
        return None;
    }
    buf.clear();
    buf.extend(floats.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    Some(dot(buf, query))
}

/// Quantizes `v` to int8 codes (symmetric, per-row scale); returns the scale.
pub(crate) fn quantize(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        out.extend(std::iter::repeat_n(0i8, v.len()));
        return 0.0;
    }
    let inv = 127.0 / max;
    out.extend(v.iter().map(|x| code(x * inv)));
    max / 127.0
}

/// `y.round().clamp(-127.0, 127.0) as i8` (halves rounded away from zero), without calling the
/// C library's `roundf` for each value (x86-64's baseline has no rounding instruction; the
/// calls took about 1% of a recall's server CPU, quantizing its query): clamped first (the
/// bounds are whole, so that rounds the same), converted toward zero, then a step away from
/// zero when the fraction left is a half or more (exact: a float less its truncation is
/// always representable). NaN gives 0, as `as i8` of NaN does.
#[inline]
fn code(y: f32) -> i8 {
    let y = y.clamp(-127.0, 127.0);
    let t = y as i32;
    let fraction = y - t as f32;
    (t + i32::from(fraction >= 0.5) - i32::from(fraction <= -0.5)) as i8
}

/// A row added by a write: slot, memory id, normalised vector, agent key.
pub(crate) type NewRow<'a> = (u32, [u8; 16], &'a [f32], u64);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn lcg(seed: &mut u64) -> f32 {
        *seed =
            seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    pub(crate) fn random_rows(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                let mut v: Vec<f32> = (0..dims).map(|_| lcg(&mut s)).collect();
                normalize(&mut v);
                v
            })
            .collect()
    }

    /// The codes are those of `round` (halves away from zero), clamped: at and next to every
    /// half and whole number of the codes' range and past it, at random values, zeros,
    /// infinities and NaN.
    #[test]
    fn codes_round_as_round_does() {
        let by_round = |y: f32| y.round().clamp(-127.0, 127.0) as i8;
        let mut values = vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e30, -1e30];
        for k in -260..=260 {
            let at = k as f32 / 2.0;
            values.extend([at, at.next_up(), at.next_down()]);
        }
        let mut seed = 9;
        values.extend((0..100_000).map(|_| lcg(&mut seed) * 300.0));
        for y in values {
            assert_eq!(code(y), by_round(y), "{y:e}");
        }
    }

    #[test]
    fn vector_validation_names_the_field() {
        let e = validate_vector(&[1.0, f32::NAN], "embedding").unwrap_err();
        assert!(e.to_string().starts_with("embedding:"), "{e}");
        assert!(validate_vector(&[0.0, 0.0], "vector").is_err());
        assert!(validate_vector(&[], "vector").is_err());
        assert!(validate_vector(&[0.1, 0.2], "vector").is_ok());
    }
}
