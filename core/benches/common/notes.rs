//! Short synthetic notes for the text benches: 8-19 words each from a Zipf-like vocabulary of
//! made-up words (a few common, most rare), from a seeded generator so every run stores the
//! same notes.

/// A small deterministic generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Zipf-like pick in `0..n`: low indexes are common words, high ones rare.
    pub fn word(&mut self, n: usize) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "sa", "do", "fu", "gi", "ha", "jo", "be",
];

pub fn vocabulary(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (a, b, c) = (i % 16, (i / 16) % 16, (i / 256) % 16);
            format!("{}{}{}{}", SYLLABLES[a], SYLLABLES[b], SYLLABLES[c], i / 4096)
        })
        .collect()
}

/// Notes and queries over one vocabulary.
pub struct Notes {
    pub words: Vec<String>,
    pub rng: Rng,
}

impl Notes {
    /// The generator the benches share: 20,000 words, a fixed seed.
    pub fn new() -> Self {
        Notes { words: vocabulary(20_000), rng: Rng(0x9e37_79b9_7f4a_7c15) }
    }

    fn words(&mut self, len: usize) -> String {
        let picked: Vec<&str> =
            (0..len).map(|_| self.words[self.rng.word(self.words.len())].as_str()).collect();
        picked.join(" ")
    }

    /// Note number `i`: 8 to 19 words.
    pub fn note(&mut self, i: usize) -> String {
        let len = 8 + (self.rng.next() % 12) as usize;
        format!("note {i}: {}", self.words(len))
    }

    /// A query of three words.
    pub fn query(&mut self) -> String {
        self.words(3)
    }
}
