//! What the unit tests share (compiled for tests only).

/// A seeded xorshift64 generator (shifts 13, 7, 17): the same numbers for the same seed on
/// every machine, for tests that draw many random cases. `seed` must not be 0.
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
