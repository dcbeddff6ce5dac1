//! Seeded synthetic vectors shared by the recall tests and the recall bench, so both measure
//! the same data: a splitmix64 generator with normal samples, and clustered unit vectors.
// Each target uses a different subset of these helpers.
#![allow(dead_code)]

use memsilo::normalize;

/// Seeded generator (splitmix64) with normal samples, so every run sees the same data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    pub fn unit(&mut self, dims: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dims).map(|_| self.normal()).collect();
        normalize(&mut v);
        v
    }
}

/// Points around `clusters` random centres: each is a centre plus noise of about its norm,
/// like embeddings of texts on a few hundred topics.
pub struct Clustered {
    rng: Rng,
    centres: Vec<Vec<f32>>,
    dims: usize,
}

impl Clustered {
    pub fn new(seed: u64, clusters: usize, dims: usize) -> Self {
        let mut rng = Rng(seed);
        let centres = (0..clusters).map(|_| rng.unit(dims)).collect();
        Clustered { rng, centres, dims }
    }

    pub fn point(&mut self) -> Vec<f32> {
        let c = (self.rng.next_u64() % self.centres.len() as u64) as usize;
        let sigma = 1.0 / (self.dims as f32).sqrt();
        let mut v: Vec<f32> =
            self.centres[c].iter().map(|x| x + sigma * self.rng.normal()).collect();
        normalize(&mut v);
        v
    }
}
