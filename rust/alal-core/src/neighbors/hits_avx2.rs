//! The cell-list search of one atom with AVX2, in two passes: the screening packs the slots that
//! pass it, from every run of bins, into one list; the pairs are then made from that list in one
//! loop (the partner, its lattice shift, the exact vector and squared distance, the cutoff test,
//! the store), with everything that is the same for all pairs of the atom held in registers.
//!
//! The portable search visits the hits of each run as they come, a loop whose length changes from
//! run to run: its exit, about nine times per atom, is a mispredicted branch. Here only the loop
//! over all the atom's hits ends once.
//!
//! Each lane does the operations of the portable `keep_pair`, in the same order (`D = r[j] - r[i]`,
//! then `+ S[d] · row[d]` for d = 0, 1, 2, then `d² = (x² + y²) + z²`; no fused multiply-add), and
//! the hits keep the order in which the portable search visits them, so the pairs are the same,
//! bit for bit and in the same order.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::bins::{Bins, SCREEN_LANES};
use super::cell_list::{wanted, Limit};
use super::output::Pair;
use super::{Cutoff, Options};

/// Largest magnitude of a run's integer offset `image + offset[i]` for which the shifts of its
/// pairs, `image + offset[i] - offset[j]` with `|offset[j]| <= 5e8` (the bins refuse atoms further
/// out), fit in `i32`.
const MAX_RUN_OFFSET: i64 = 1_500_000_000;

/// For each 4-bit mask, the `pshufb` control that moves the 32-bit lanes whose bits are set to
/// the front, in order.
const PACK: [[u8; 16]; 16] = {
    let mut table = [[0x80u8; 16]; 16];
    let mut mask = 0;
    while mask < 16 {
        let mut to = 0;
        let mut lane = 0;
        while lane < 4 {
            if mask & (1 << lane) != 0 {
                let mut b = 0;
                while b < 4 {
                    table[mask][4 * to + b] = (4 * lane + b) as u8;
                    b += 1;
                }
                to += 1;
            }
            lane += 1;
        }
        mask += 1;
    }
    table
};

/// The slots of one atom's search that passed the screening, with the run each came from.
#[derive(Default)]
pub(super) struct Hits {
    /// Slot of each hit (`u32`: at most `u32::MAX` atoms).
    slots: Vec<u32>,
    /// Run of each hit, an index into `offsets`.
    runs: Vec<u32>,
    /// Integer offset `image + offset[i]` of each run, as four `i32` lanes (the 4th 0).
    offsets: Vec<[i32; 4]>,
    /// A run's offset did not fit in `i32`: the atom must take the portable path.
    too_far: bool,
}

impl Hits {
    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.runs.clear();
        self.offsets.clear();
        self.too_far = false;
    }

    /// Whether a run's offset did not fit the vector path (the atom must be searched again with
    /// the portable code).
    pub(super) fn too_far(&self) -> bool {
        self.too_far
    }

    /// Screen the slots of a run of bins against `screen2` (Å²) and append those within it.
    /// `base` is the run's lattice shift minus the atom's wrapped position (Å), `offset` the
    /// run's integer offset `image + offset[i]`.
    ///
    /// # Safety
    /// The CPU must support AVX2; `slots` must be slots of atoms (the padding at infinity after
    /// them covers the lane read past their end).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn screen_run(
        &mut self,
        bins: &Bins,
        slots: std::ops::Range<usize>,
        base: [f64; 3],
        offset: [i64; 3],
        screen2: f64,
    ) {
        if offset.iter().any(|x| x.abs() > MAX_RUN_OFFSET) {
            self.too_far = true;
            return;
        }
        let (start, end) = (slots.start, slots.end);
        let run = self.offsets.len() as u32;
        self.offsets
            .push([offset[0] as i32, offset[1] as i32, offset[2] as i32, 0]);
        let len = end - start;
        let lanes = len.div_ceil(SCREEN_LANES);
        let (xs, ys, zs) = (
            &bins.xs[start..start + lanes * SCREEN_LANES],
            &bins.ys[start..start + lanes * SCREEN_LANES],
            &bins.zs[start..start + lanes * SCREEN_LANES],
        );
        // Room for every slot of the run, plus the whole lane the last store writes.
        self.slots.reserve(lanes * SCREEN_LANES);
        self.runs.reserve(lanes * SCREEN_LANES);
        let mut n = self.slots.len();
        let (slots, runs) = (self.slots.as_mut_ptr(), self.runs.as_mut_ptr());
        let (bx, by, bz) = (
            _mm256_set1_pd(base[0]),
            _mm256_set1_pd(base[1]),
            _mm256_set1_pd(base[2]),
        );
        let limit = _mm256_set1_pd(screen2);
        let run_lanes = _mm_set1_epi32(run as i32);
        let first = _mm_add_epi32(_mm_set1_epi32(start as i32), _mm_setr_epi32(0, 1, 2, 3));
        let mut lane = |q: usize| {
            let k = q * SCREEN_LANES;
            // SAFETY: k + 4 <= xs.len() (= ys.len() = zs.len()), checked by the slicing above.
            let (vx, vy, vz) = unsafe {
                (
                    _mm256_add_pd(_mm256_loadu_pd(xs.as_ptr().add(k)), bx),
                    _mm256_add_pd(_mm256_loadu_pd(ys.as_ptr().add(k)), by),
                    _mm256_add_pd(_mm256_loadu_pd(zs.as_ptr().add(k)), bz),
                )
            };
            let r2 = _mm256_add_pd(
                _mm256_add_pd(_mm256_mul_pd(vx, vx), _mm256_mul_pd(vy, vy)),
                _mm256_mul_pd(vz, vz),
            );
            // The lanes past the run's end read the next bin or the padding: masked off.
            let valid = (1u32 << (len - k).min(SCREEN_LANES)) - 1;
            let mask = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(r2, limit)) as u32 & valid;
            let slot = _mm_add_epi32(first, _mm_set1_epi32(k as i32));
            // SAFETY: `n + 4 <= capacity` (room for all the lanes read was reserved and `n`
            // grows by at most 4 per lane); `PACK` has 16 entries and `mask < 16`.
            unsafe {
                let control = _mm_loadu_si128(PACK.get_unchecked(mask as usize).as_ptr().cast());
                _mm_storeu_si128(slots.add(n).cast(), _mm_shuffle_epi8(slot, control));
                _mm_storeu_si128(runs.add(n).cast(), run_lanes);
            }
            n += mask.count_ones() as usize;
        };
        for q in 0..lanes {
            lane(q);
        }
        // SAFETY: the first `n` slots and runs are written.
        unsafe {
            self.slots.set_len(n);
            self.runs.set_len(n);
        }
    }
}

/// What the pairs of atom `i` share, in registers.
pub(super) struct AtomLanes<'a> {
    i: usize,
    /// The user's position of `i` (Å), 4th lane 0.
    ri: __m256d,
    /// The cell's rows (Å), 4th lanes 0.
    rows: [__m256d; 3],
    /// The limit of every pair when the cutoff is uniform.
    uniform: Option<Limit>,
    cutoff: &'a Cutoff,
    options: &'a Options,
}

impl<'a> AtomLanes<'a> {
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn new(
        bins: &Bins,
        i: usize,
        cutoff: &'a Cutoff,
        max_cutoff: f64,
        options: &'a Options,
    ) -> Self {
        let lanes = |x: [f64; 3]| _mm256_set_pd(0.0, x[2], x[1], x[0]);
        AtomLanes {
            i,
            ri: lanes(bins.points[i]),
            rows: bins.rows.map(lanes),
            uniform: matches!(cutoff, Cutoff::Uniform(_)).then(|| Limit::new(max_cutoff)),
            cutoff,
            options,
        }
    }

    /// Keep the pairs of `hits` in `found`, as the portable search keeps them.
    ///
    /// # Safety
    /// The CPU must support AVX2, and `hits` must come from [`Hits::screen_run`] on `bins`
    /// without `too_far`.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn keep(&self, bins: &Bins, hits: &Hits, found: &mut Vec<Pair>) {
        debug_assert!(!hits.too_far);
        found.reserve(hits.slots.len());
        let mut len = found.len();
        let dst = found.as_mut_ptr();
        for (&slot, &run) in hits.slots.iter().zip(&hits.runs) {
            let slot = slot as usize;
            debug_assert!(slot < bins.order.len() && (run as usize) < hits.offsets.len());
            // SAFETY: `slot` is the slot of an atom (only those pass the screening), so within
            // `order`; `sorted_offset` and `sorted_points` have padding slots after the last
            // atom, so the vector loads (one value of the next slot in their 4th lane, which no
            // result uses) stay within them; `run` indexes `offsets` (pushed with the hit).
            let (j, oj, pj, offset) = unsafe {
                (
                    *bins.order.get_unchecked(slot) as usize,
                    _mm_loadu_si128(bins.sorted_offset.as_ptr().add(slot).cast()),
                    _mm256_loadu_pd(bins.sorted_points.as_ptr().add(slot).cast()),
                    _mm_loadu_si128(hits.offsets.as_ptr().add(run as usize).cast()),
                )
            };
            let s = _mm_sub_epi32(offset, oj);
            if j == self.i {
                let mut lanes = [0i32; 4];
                // SAFETY: 16 bytes into a 16-byte array.
                unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), s) };
                let s = [lanes[0] as i64, lanes[1] as i64, lanes[2] as i64];
                if !wanted(self.options, j, j, s) {
                    continue;
                }
            } else if !self.options.full_list && j < self.i {
                continue;
            }
            let sf = _mm256_cvtepi32_pd(s);
            let mut v = _mm256_sub_pd(pj, self.ri);
            v = _mm256_add_pd(
                v,
                _mm256_mul_pd(_mm256_permute4x64_pd::<0x00>(sf), self.rows[0]),
            );
            v = _mm256_add_pd(
                v,
                _mm256_mul_pd(_mm256_permute4x64_pd::<0x55>(sf), self.rows[1]),
            );
            v = _mm256_add_pd(
                v,
                _mm256_mul_pd(_mm256_permute4x64_pd::<0xaa>(sf), self.rows[2]),
            );
            let squares = _mm256_mul_pd(v, v);
            let (xy, z) = (
                _mm256_castpd256_pd128(squares),
                _mm256_extractf128_pd::<1>(squares),
            );
            let d2 = _mm_add_sd(_mm_add_sd(xy, _mm_unpackhi_pd(xy, xy)), z);
            let limit = match self.uniform {
                Some(limit) => limit,
                None => Limit::new(self.cutoff.pair(self.i, j)),
            };
            if !limit.holds(_mm_cvtsd_f64(d2)) {
                continue;
            }
            // SAFETY: `len < capacity` (room reserved for every hit); `Pair` is `repr(C)` with
            // `s` then `j` in its first 32 bytes and `v` then `d` in the next 32: the shift's
            // 4th lane is overwritten by `j`.
            unsafe {
                let pair = dst.add(len).cast::<u8>();
                _mm256_storeu_si256(pair.cast(), _mm256_cvtepi32_epi64(s));
                pair.add(24).cast::<usize>().write(j);
                _mm256_storeu_pd(
                    pair.add(32).cast(),
                    _mm256_blend_pd::<0b1000>(v, _mm256_broadcastsd_pd(d2)),
                );
            }
            len += 1;
        }
        // SAFETY: the first `len` pairs are written.
        unsafe { found.set_len(len) };
    }
}
