//! The search over all pairs, for small cells: every atom against every other at its nearest
//! image, instead of the cell list.
//!
//! When the lattice planes of every periodic axis are more than twice the cutoff apart, an atom
//! `j` can be a neighbour of `i` at one lattice shift only: the one that brings the fractional
//! separation into [-1/2, 1/2] along each periodic axis (any other image is at least half a plane
//! spacing away along some axis, so beyond the cutoff). Each pair of atoms is then one candidate.
//! In small cells this visits far fewer candidates than the 27 neighbouring bins of a cell list
//! (a 108-atom cell at 5 Å: 54 per atom for a half list against ~360), and since `j` runs in
//! order, the pairs come out sorted without a sort.

use super::bins::{first_bits, Bins};

/// The screening reads candidates in lanes of this many.
pub(super) const LANES: usize = 4;

/// Positions of every atom in index order, as the all-pairs screening reads them.
pub(super) struct AllPairs {
    /// Fractional coordinates of the wrapped positions along periodic axes (0 along the others),
    /// one array per axis, padded with `LANES` zeros.
    pub(super) fractional: [Vec<f64>; 3],
    /// Wrapped Cartesian positions (Å), one array per axis, padded with `LANES` slots at infinity.
    pub(super) wrapped: [Vec<f64>; 3],
    /// Lattice vectors (Å) of the periodic axes, zero for the others.
    pub(super) rows: [[f64; 3]; 3],
}

impl AllPairs {
    /// The all-pairs search of `bins`, if it applies (each partner at one image at most) and is
    /// expected to be faster than the cell list; `full_list` or half.
    pub(super) fn for_bins(bins: &Bins, full_list: bool) -> Option<AllPairs> {
        if !bins.one_image_per_partner() {
            return None;
        }
        let n = bins.wrapped.len() as f64;
        let per_atom = if full_list { n } else { 0.5 * n };
        // Screening a pair costs more here (a rounding per axis, a lattice shift) than in the
        // cell list, which however pays per bin and sorts. With the cell list's hits packed and
        // its pairs made with vector arithmetic (AVX2), it is faster at equal candidates: 500
        // atoms at 6.5 Å (500 candidates either way), 0.85 ms against 1.14; with half the
        // candidates here, about even (108 atoms at 5 Å: 108 against ~360, 0.091 ms against
        // 0.095). Unsorted (descriptors' neighbourhoods): the cell list was faster at equal
        // candidates before (500 atoms, 5.2 Å).
        let cost = 2.0;
        if cost * per_atom > bins.mean_candidates() {
            return None;
        }
        let pad = |v: Vec<f64>, with: f64| -> Vec<f64> {
            v.into_iter()
                .chain(std::iter::repeat_n(with, LANES))
                .collect()
        };
        let fractional = std::array::from_fn(|d| {
            pad(
                bins.fractional
                    .iter()
                    .map(|f| if bins.periodic[d] { f[d] } else { 0.0 })
                    .collect(),
                0.0,
            )
        });
        let wrapped = std::array::from_fn(|d| {
            pad(bins.wrapped.iter().map(|w| w[d]).collect(), f64::INFINITY)
        });
        let rows = std::array::from_fn(|d| {
            if bins.periodic[d] {
                bins.rows[d]
            } else {
                [0.0; 3]
            }
        });
        Some(AllPairs {
            fractional,
            wrapped,
            rows,
        })
    }

    /// The lattice shift that brings `j` nearest to `i` along each periodic axis (0 along the
    /// others): minus the fractional separation rounded to the nearest integer (ties to even,
    /// as the vector instructions round).
    #[inline(always)]
    pub(super) fn image(&self, i: usize, j: usize) -> [i64; 3] {
        std::array::from_fn(|d| {
            -(self.fractional[d][j] - self.fractional[d][i]).round_ties_even() as i64
        })
    }

    /// Bit `k` set when atom `start + k` (for `k < len <= 64`), at its nearest image, is within
    /// `sqrt(screen2)` of atom `i`. Reads whole lanes, into the padding, and masks the extra bits.
    #[inline(always)]
    pub(super) fn screen(&self, i: usize, start: usize, len: usize, screen2: f64) -> u64 {
        debug_assert!(len <= 64);
        let lanes = len.div_ceil(LANES);
        let fi = [0, 1, 2].map(|d| self.fractional[d][i]);
        let wi = [0, 1, 2].map(|d| self.wrapped[d][i]);
        let r = &self.rows;
        let mut mask = 0u64;
        for q in 0..lanes {
            let mut bits = 0u64;
            for l in 0..LANES {
                let j = start + q * LANES + l;
                let n = [0, 1, 2].map(|d| -(self.fractional[d][j] - fi[d]).round_ties_even());
                let u = [0, 1, 2].map(|c| {
                    (self.wrapped[c][j] - wi[c]) + n[0] * r[0][c] + n[1] * r[1][c] + n[2] * r[2][c]
                });
                bits |= u64::from(u[0] * u[0] + u[1] * u[1] + u[2] * u[2] < screen2) << l;
            }
            mask |= bits << (LANES * q);
        }
        first_bits(mask, len)
    }

    /// [`AllPairs::screen`] with AVX2 intrinsics: the same operations in the same order, so the
    /// same bits.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn screen_avx2(
        &self,
        i: usize,
        start: usize,
        len: usize,
        screen2: f64,
    ) -> u64 {
        use std::arch::x86_64::*;
        debug_assert!(len <= 64);
        let lanes = len.div_ceil(LANES);
        let end = start + lanes * LANES;
        let f = [0, 1, 2].map(|d| &self.fractional[d][start..end]);
        let w = [0, 1, 2].map(|d| &self.wrapped[d][start..end]);
        let fi = [0, 1, 2].map(|d| _mm256_set1_pd(self.fractional[d][i]));
        let wi = [0, 1, 2].map(|d| _mm256_set1_pd(self.wrapped[d][i]));
        let r = [0, 1, 2].map(|d| [0, 1, 2].map(|c| _mm256_set1_pd(self.rows[d][c])));
        let zero = _mm256_setzero_pd();
        let limit = _mm256_set1_pd(screen2);
        let mut mask = 0u64;
        for q in 0..lanes {
            let k = q * LANES;
            // SAFETY: k + 4 <= end - start, the length of every slice (checked by slicing).
            let load = |s: &[f64]| unsafe { _mm256_loadu_pd(s.as_ptr().add(k)) };
            let n = [0, 1, 2].map(|d| {
                let t = _mm256_sub_pd(load(f[d]), fi[d]);
                let rounded =
                    _mm256_round_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
                _mm256_sub_pd(zero, rounded)
            });
            let u = [0, 1, 2].map(|c| {
                let mut x = _mm256_sub_pd(load(w[c]), wi[c]);
                for d in 0..3 {
                    x = _mm256_add_pd(x, _mm256_mul_pd(n[d], r[d][c]));
                }
                x
            });
            let r2 = _mm256_add_pd(
                _mm256_add_pd(_mm256_mul_pd(u[0], u[0]), _mm256_mul_pd(u[1], u[1])),
                _mm256_mul_pd(u[2], u[2]),
            );
            let bits = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(r2, limit)) as u64;
            mask |= bits << k;
        }
        first_bits(mask, len)
    }
}
