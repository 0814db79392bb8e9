//! Sorting up to 128 `u32` keys with AVX2 sorting networks: an atom's neighbours by index.
//!
//! A comparison sort of the ~30–80 pairs of one atom costs ~10 ns per key (mostly mispredicted
//! branches), a third of a whole neighbour list. Here the keys sit in 1 to 16 vector registers of
//! 8 lanes (as few as hold them) and are sorted without a branch: with 8 or 16 registers an
//! 8-input sorting network across the registers sorts each lane's column and a transpose turns the
//! columns into sorted registers; fewer registers are each sorted on their own; bitonic merges
//! then join the registers (min/max between registers, then within each register in three
//! shuffles).

// Without AVX2 (other architectures) the neighbour search keeps its comparison sort.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Most keys [`SmallKeys`] holds.
pub(super) const MAX_KEYS: usize = 128;

/// Up to [`MAX_KEYS`] keys in a buffer padded with `u32::MAX`, sorted in place.
pub(super) struct SmallKeys {
    buf: [u32; MAX_KEYS],
    len: usize,
}

impl SmallKeys {
    pub(super) fn new() -> Self {
        SmallKeys {
            buf: [u32::MAX; MAX_KEYS],
            len: 0,
        }
    }

    /// Forget the keys (the padding is restored).
    #[inline(always)]
    pub(super) fn clear(&mut self) {
        self.buf[..self.len].fill(u32::MAX);
        self.len = 0;
    }

    /// Append a key; there must be room (`len() < MAX_KEYS`).
    #[inline(always)]
    pub(super) fn push(&mut self, key: u32) {
        self.buf[self.len] = key;
        self.len += 1;
    }

    #[inline(always)]
    pub(super) fn as_slice(&self) -> &[u32] {
        &self.buf[..self.len]
    }

    /// Sort the keys in ascending order (the padding, the largest value, stays at the end).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn sort(&mut self) {
        if self.len <= 1 {
            return;
        }
        // SAFETY: AVX2 is guaranteed by the caller.
        unsafe {
            match self.len {
                0..=8 => sort_registers::<1, 0>(&mut self.buf),
                9..=16 => sort_registers::<2, 0>(&mut self.buf),
                17..=24 => sort_registers::<2, 1>(&mut self.buf),
                25..=32 => sort_registers::<4, 0>(&mut self.buf),
                33..=40 => sort_registers::<4, 1>(&mut self.buf),
                41..=48 => sort_registers::<4, 2>(&mut self.buf),
                49..=64 => sort_registers::<8, 0>(&mut self.buf),
                65..=72 => sort_registers::<8, 1>(&mut self.buf),
                73..=80 => sort_registers::<8, 2>(&mut self.buf),
                81..=96 => sort_registers::<8, 4>(&mut self.buf),
                _ => sort_registers::<16, 0>(&mut self.buf),
            }
        }
    }
}

/// Sort the first `8 * (A + B)` keys of `buf`: a sorted run of `A` registers and one of `B`
/// (`A`, `B` powers of 2, `B < A`, or `B = 0`), merged.
///
/// The merge is the first step of a bitonic merge of `2 A` registers, with the `B` run reversed
/// at the end and the `A - B` registers between them all padding (`u32::MAX`): the lower `A`
/// registers get the smaller keys, the upper ones the larger, every key of the lower below every
/// key of the upper, and both halves are bitonic. The upper half's padding registers need no
/// work, so only its last `B` registers are merged.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn sort_registers<const A: usize, const B: usize>(buf: &mut [u32; MAX_KEYS]) {
    debug_assert!(A.is_power_of_two() && (B == 0 || (B.is_power_of_two() && B < A)));
    debug_assert!(8 * (A + B) <= MAX_KEYS);
    let mut v = [_mm256_setzero_si256(); 16];
    for (k, r) in v[..A + B].iter_mut().enumerate() {
        // SAFETY: 8 * (A + B) <= MAX_KEYS keys, read 8 at a time from within `buf`.
        *r = unsafe { _mm256_loadu_si256(buf.as_ptr().add(8 * k) as *const __m256i) };
    }
    sort_run(&mut v[..A]);
    if B > 0 {
        sort_run(&mut v[A..A + B]);
        // Register A - B + t of the first run against register t of the reversed second one.
        let upper: [__m256i; 8] = std::array::from_fn(|t| {
            if t < B {
                _mm256_max_epu32(v[A - B + t], reverse_lanes(v[A + B - 1 - t]))
            } else {
                _mm256_setzero_si256()
            }
        });
        for t in 0..B {
            let partner = reverse_lanes(v[A + B - 1 - t]);
            v[A - B + t] = _mm256_min_epu32(v[A - B + t], partner);
        }
        v[A..A + B].copy_from_slice(&upper[..B]);
        bitonic_merge(&mut v[..A]);
        bitonic_merge(&mut v[A..A + B]);
    }
    for (k, r) in v[..A + B].iter().enumerate() {
        // SAFETY: as for the loads.
        unsafe { _mm256_storeu_si256(buf.as_mut_ptr().add(8 * k) as *mut __m256i, *r) };
    }
}

/// Sort the keys of `v` (a power-of-2 number of registers, at most 16) in place.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn sort_run(v: &mut [__m256i]) {
    let r = v.len();
    if r >= 8 {
        // Eight registers at a time: their columns, then the columns turned into registers.
        for group in v.chunks_exact_mut(8) {
            sort_columns(group);
            transpose(group);
        }
    } else {
        // Fewer keys: each register on its own (a third of the work of eight registers for
        // the ~10 neighbours of a sparse system, half for ~30).
        for x in v.iter_mut() {
            *x = sort_lanes(*x);
        }
    }
    // Sorted runs of `w` registers, merged pairwise.
    let mut w = 1;
    while w < r {
        for run in v.chunks_exact_mut(2 * w) {
            // A sorted run followed by a reversed sorted run is bitonic.
            let second = &mut run[w..];
            second.reverse();
            for x in second.iter_mut() {
                *x = reverse_lanes(*x);
            }
            bitonic_merge(run);
        }
        w *= 2;
    }
}

/// Compare-exchange of two registers lane by lane: the smaller key of each lane into `a`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn exchange(v: &mut [__m256i], a: usize, b: usize) {
    let (x, y) = (v[a], v[b]);
    v[a] = _mm256_min_epu32(x, y);
    v[b] = _mm256_max_epu32(x, y);
}

/// Sort each lane's column of 8 registers (Knuth's 19-comparator network for 8 inputs).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn sort_columns(v: &mut [__m256i]) {
    const NETWORK: [(usize, usize); 19] = [
        (0, 2),
        (1, 3),
        (4, 6),
        (5, 7),
        (0, 4),
        (1, 5),
        (2, 6),
        (3, 7),
        (0, 1),
        (2, 3),
        (4, 5),
        (6, 7),
        (2, 4),
        (3, 5),
        (1, 4),
        (3, 6),
        (1, 2),
        (3, 4),
        (5, 6),
    ];
    for (a, b) in NETWORK {
        exchange(v, a, b);
    }
}

/// The 8 lanes of one register sorted: sorted pairs, then sorted halves (the first ascending,
/// the second descending: a bitonic sequence), merged.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn sort_lanes(x: __m256i) -> __m256i {
    // Lanes 1 apart: pairs ascending, descending, ascending, descending (the larger key to
    // lanes 1, 2, 5, 6).
    let s = _mm256_shuffle_epi32::<0xB1>(x);
    let x = _mm256_blend_epi32::<0x66>(_mm256_min_epu32(x, s), _mm256_max_epu32(x, s));
    // The first half ascending, the second descending: lanes 2 apart, then 1 apart.
    let s = _mm256_shuffle_epi32::<0x4E>(x);
    let x = _mm256_blend_epi32::<0x3C>(_mm256_min_epu32(x, s), _mm256_max_epu32(x, s));
    let s = _mm256_shuffle_epi32::<0xB1>(x);
    let x = _mm256_blend_epi32::<0x5A>(_mm256_min_epu32(x, s), _mm256_max_epu32(x, s));
    let mut v = [x];
    bitonic_merge(&mut v);
    v[0]
}

/// Transpose 8 registers of 8 lanes (an 8 × 8 matrix): column `c` becomes register `c`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn transpose(v: &mut [__m256i]) {
    let t: [__m256i; 8] = std::array::from_fn(|k| {
        let (a, b) = (v[2 * (k / 2)], v[2 * (k / 2) + 1]);
        if k % 2 == 0 {
            _mm256_unpacklo_epi32(a, b)
        } else {
            _mm256_unpackhi_epi32(a, b)
        }
    });
    // t[0] = a0 b0 a1 b1 | a4 b4 a5 b5 (rows 0, 1), t[1] = a2 b2 a3 b3 | a6 b6 a7 b7, ...
    let u: [__m256i; 8] = std::array::from_fn(|k| {
        let base = 4 * (k / 4);
        let (x, y) = (t[base + (k % 4) / 2], t[base + 2 + (k % 4) / 2]);
        if k % 2 == 0 {
            _mm256_unpacklo_epi64(x, y)
        } else {
            _mm256_unpackhi_epi64(x, y)
        }
    });
    // u[0] = column 0 of rows 0-3 | column 4 of rows 0-3, u[1] = column 1 | column 5,
    // u[2] = column 2 | column 6, u[3] = column 3 | column 7; u[4..8] the same for rows 4-7.
    for c in 0..4 {
        v[c] = _mm256_permute2x128_si256::<0x20>(u[c], u[4 + c]);
        v[4 + c] = _mm256_permute2x128_si256::<0x31>(u[c], u[4 + c]);
    }
}

/// The lanes of a register in reverse order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn reverse_lanes(r: __m256i) -> __m256i {
    _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0))
}

/// Sort a bitonic sequence held in `v` (registers in order, lanes in order) ascending.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn bitonic_merge(v: &mut [__m256i]) {
    // Between registers: half the sequence apart, then a quarter, ... one register apart.
    let mut d = v.len() / 2;
    while d >= 1 {
        for k in 0..v.len() {
            if k & d == 0 {
                exchange(v, k, k + d);
            }
        }
        d /= 2;
    }
    // Within each register: 4, 2 and 1 lanes apart.
    for r in v.iter_mut() {
        let x = *r;
        let s = _mm256_permute2x128_si256::<0x01>(x, x);
        let x = _mm256_blend_epi32::<0xF0>(_mm256_min_epu32(x, s), _mm256_max_epu32(x, s));
        let s = _mm256_shuffle_epi32::<0x4E>(x);
        let x = _mm256_blend_epi32::<0xCC>(_mm256_min_epu32(x, s), _mm256_max_epu32(x, s));
        let s = _mm256_shuffle_epi32::<0xB1>(x);
        *r = _mm256_blend_epi32::<0xAA>(_mm256_min_epu32(x, s), _mm256_max_epu32(x, s));
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn sorted_by_network(keys: &[u32]) -> Vec<u32> {
        let mut small = SmallKeys::new();
        for &k in keys {
            small.push(k);
        }
        // SAFETY: only called after checking for AVX2.
        unsafe { small.sort() };
        let out = small.as_slice().to_vec();
        small.clear();
        assert!(small.buf.iter().all(|&k| k == u32::MAX), "padding restored");
        out
    }

    /// Every length from 0 to 128, random keys (with repeats and the padding value itself).
    #[test]
    fn sorts_like_the_standard_sort() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut uniform = crate::uniform_numbers(11);
        for n in 0..=MAX_KEYS {
            for round in 0..20 {
                let range = [4.0, 1000.0, 4.3e9][round % 3];
                let keys: Vec<u32> = (0..n)
                    .map(|_| {
                        let x = (uniform() * range) as u64;
                        if round % 7 == 6 && x % 5 == 0 {
                            u32::MAX
                        } else {
                            x.min(u32::MAX as u64) as u32
                        }
                    })
                    .collect();
                let mut want = keys.clone();
                want.sort_unstable();
                assert_eq!(sorted_by_network(&keys), want, "n = {n}, round {round}");
            }
            // Ascending, descending, and the last keys smallest (the second run of a split
            // entirely below the first).
            let up: Vec<u32> = (0..n as u32).collect();
            let down: Vec<u32> = up.iter().rev().copied().collect();
            let rotated: Vec<u32> = (0..n as u32)
                .map(|k| (k + n as u32 / 2) % n as u32)
                .collect();
            for keys in [&up, &down, &rotated] {
                assert_eq!(sorted_by_network(keys), up, "n = {n}: {keys:?}");
            }
        }
    }

    /// The 8-input network sorts all 256 inputs of zeros and ones (so every input, by the
    /// zero-one principle), in every lane; already sorted and reversed keys come out sorted.
    #[test]
    fn column_network_sorts_every_zero_one_input() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        for bits in 0i32..256 {
            // Register k holds bit k of `bits` in lane 0 and its complement in lane 1.
            let mut v: Vec<__m256i> = (0..8)
                .map(|k| {
                    let b = (bits >> k) & 1;
                    // SAFETY: AVX2 checked above.
                    unsafe { _mm256_setr_epi32(b, 1 - b, b, 0, 0, 0, 0, 0) }
                })
                .collect();
            // SAFETY: AVX2 checked above.
            unsafe { sort_columns(&mut v) };
            let lanes: Vec<[u32; 8]> = v
                .iter()
                .map(|r| {
                    let mut out = [0u32; 8];
                    // SAFETY: AVX2 checked above; `out` holds 8 lanes.
                    unsafe { _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, *r) };
                    out
                })
                .collect();
            for lane in 0..3 {
                let column: Vec<u32> = lanes.iter().map(|l| l[lane]).collect();
                assert!(
                    column.windows(2).all(|w| w[0] <= w[1]),
                    "{bits:08b} lane {lane}"
                );
            }
        }
        // One register sorted on its own: every input of zeros and ones.
        for bits in 0u32..256 {
            let keys: [u32; 8] = std::array::from_fn(|k| (bits >> k) & 1);
            let mut out = [0u32; 8];
            // SAFETY: AVX2 checked above; `keys` and `out` hold 8 lanes.
            unsafe {
                let r = sort_lanes(_mm256_loadu_si256(keys.as_ptr() as *const __m256i));
                _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, r);
            }
            let mut want = keys;
            want.sort_unstable();
            assert_eq!(out, want, "{bits:08b}");
        }
        let up: Vec<u32> = (0..128).collect();
        let down: Vec<u32> = (0..128).rev().collect();
        assert_eq!(sorted_by_network(&up), up);
        assert_eq!(sorted_by_network(&down), up);
    }
}
