//! Shared helpers of the integration tests: a small deterministic RNG and random structures.

#![allow(dead_code, clippy::needless_range_loop)]

/// xorshift64*: deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// A random triclinic cell (rows) with edges in [lo, hi] and moderate skew.
pub fn random_cell(rng: &mut Rng, lo: f64, hi: f64) -> [[f64; 3]; 3] {
    let mut m = [[0.0; 3]; 3];
    for r in 0..3 {
        m[r][r] = rng.uniform(lo, hi);
        for c in 0..r {
            m[r][c] = rng.uniform(-0.4, 0.4) * m[r][r];
        }
    }
    m
}

/// `n` random positions (row-major, Å) inside the cell spanned by `cell`, possibly spilling out by
/// `spill` cell fractions.
pub fn random_positions(rng: &mut Rng, cell: &[[f64; 3]; 3], n: usize, spill: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(3 * n);
    for _ in 0..n {
        let s = [
            rng.uniform(-spill, 1.0 + spill),
            rng.uniform(-spill, 1.0 + spill),
            rng.uniform(-spill, 1.0 + spill),
        ];
        for c in 0..3 {
            out.push(s[0] * cell[0][c] + s[1] * cell[1][c] + s[2] * cell[2][c]);
        }
    }
    out
}
