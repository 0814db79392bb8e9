//! Software prefetches of what the search of the next atoms will read.
//!
//! Atoms are searched in index order, and where that order has nothing to do with where they are
//! (a liquid or gas built at random, a shuffled file) each atom's neighbouring bins lie anywhere
//! in memory. In sparse systems there are few candidates per bin to hide the wait: 32000 random
//! atoms at 1.5 Å spent over half their search waiting on the first loads of each run of bins.
//! Two stages, one atom apart: for the atom after next, the lines of `start` that bound its runs
//! of bins; for the next atom, whose `start` lines have arrived, the first line of each of the
//! slot arrays at every run.

use super::bins::{neighbour_bin, Bins};

/// Runs of bins (one per column of bins along z) searched around one atom, as `start` indices.
const MAX_RUNS: usize = 9;

/// Above this many atoms per bin the runs hold enough slots to share their first wait, and the
/// prefetches cost more than they save. 32000 random atoms, one thread, A/B in one process (the
/// gains grow with the machine's memory latency, which varied by 2x here): 0.25-0.5 atoms per
/// bin 1.04-1.6x faster, 1.2 per bin 1.03-1.2x, 2 per bin 1.04x, 4 per bin 1.03x, 12 per bin
/// 0.92x; fcc Al at 5 Å (18 per bin, atoms in lattice order or shuffled) 0.85-0.95x. Atoms
/// sorted by place at 0.5 per bin: 0.86x (hence [`in_spatial_order`]).
const MAX_PER_BIN: usize = 2;

/// Prefetches for the atoms ahead of the one being searched.
pub(super) struct Prefetcher<'a> {
    bins: &'a Bins,
    /// The runs of the next atom (found one atom ago): `(first bin, last bin + 1)`.
    runs: [(usize, usize); MAX_RUNS],
    n_runs: usize,
}

impl<'a> Prefetcher<'a> {
    /// Whether prefetches pay for `bins`: not for atoms in an order that follows their places
    /// (most consecutive atoms in neighbouring bins: what the next atom reads is mostly in cache
    /// already), nor above [`MAX_PER_BIN`] atoms per bin, nor for a reach of more than one bin
    /// along an axis (cells thinner than the cutoff, whose few bins stay in cache). Judged once
    /// per search (it samples the atoms' order).
    pub(super) fn pays(bins: &Bins) -> bool {
        let n_bins = bins.n.iter().product::<usize>();
        bins.reach.iter().all(|&r| r <= 1)
            && !bins.bin_of.is_empty()
            && bins.bin_of.len() <= MAX_PER_BIN * n_bins
            && !in_spatial_order(bins)
    }

    /// A prefetcher for `bins` (see [`Prefetcher::pays`]).
    pub(super) fn new(bins: &'a Bins) -> Self {
        Prefetcher {
            bins,
            runs: [(0, 0); MAX_RUNS],
            n_runs: 0,
        }
    }

    /// Before searching an atom: prefetch the slots of `next` (whose runs were found one call
    /// ago, if it is that atom) and the `start` lines of `after_next`.
    #[inline(always)]
    pub(super) fn ahead(&mut self, next: Option<usize>, after_next: Option<usize>) {
        let bins = self.bins;
        if next.is_some() {
            for &(lo, hi) in &self.runs[..self.n_runs] {
                let (a, b) = (bins.start[lo], bins.start[hi]);
                if a < b {
                    touch(bins.xs.as_ptr().wrapping_add(a));
                    touch(bins.ys.as_ptr().wrapping_add(a));
                    touch(bins.zs.as_ptr().wrapping_add(a));
                    touch(bins.order.as_ptr().wrapping_add(a));
                    touch(bins.sorted_offset.as_ptr().wrapping_add(a));
                    touch(bins.sorted_points.as_ptr().wrapping_add(a));
                }
            }
        }
        self.n_runs = 0;
        let Some(atom) = after_next else {
            return;
        };
        let [hx, hy, hz] = bins.unflatten(bins.bin_of[atom]);
        let r = bins.reach;
        // Along z the run stops at the cell's faces (a wrapped bin beyond is not prefetched).
        let z_lo = (hz - r[2]).max(0) as usize;
        let z_hi = (hz + r[2]).min(bins.n[2] as i64 - 1) as usize;
        // The columns the search visits (with a reach of 1, at most 9).
        for dx in -r[0]..=r[0] {
            let Some((cx, _)) = neighbour_bin(hx + dx, 0, bins) else {
                continue;
            };
            for dy in -r[1]..=r[1] {
                let Some((cy, _)) = neighbour_bin(hy + dy, 1, bins) else {
                    continue;
                };
                let column = (cx * bins.n[1] + cy) * bins.n[2];
                let run = (column + z_lo, column + z_hi + 1);
                touch(bins.start.as_ptr().wrapping_add(run.0));
                if self.n_runs < MAX_RUNS {
                    self.runs[self.n_runs] = run;
                    self.n_runs += 1;
                }
            }
        }
    }
}

/// Whether most consecutive atoms (judged on up to [`SAMPLES`] pairs spread over the atoms) lie
/// within one slab of bins of each other, as in a lattice built in order or atoms sorted by
/// place; atoms in random order are that close with a chance of about 2 / (bins along x).
fn in_spatial_order(bins: &Bins) -> bool {
    let b = &bins.bin_of;
    if b.len() < 2 {
        return true;
    }
    let near = bins.n[1] * bins.n[2] + bins.n[2] + 1;
    let step = (b.len() / SAMPLES).max(1);
    let (mut close, mut seen) = (0, 0);
    for k in (0..b.len() - 1).step_by(step) {
        close += usize::from(b[k].abs_diff(b[k + 1]) <= near);
        seen += 1;
    }
    2 * close > seen
}

/// Pairs of consecutive atoms looked at to judge their order.
const SAMPLES: usize = 4096;

/// Ask for the cache line holding `p` (a hint: never faults, whatever the address).
#[inline(always)]
fn touch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::super::bins::cubic_bins;
    use super::*;

    fn bins_of(points: Vec<[f64; 3]>, l: f64, rc: f64) -> Bins {
        cubic_bins(points, l, [true; 3], rc).1
    }

    /// On for sparse atoms in random order; off once they are sorted by place, and off for a
    /// dense system in random order.
    #[test]
    fn prefetches_only_sparse_atoms_in_random_order() {
        let mut uniform = crate::uniform_numbers(17);
        let (n, l) = (5000, 30.0);
        let mut points: Vec<[f64; 3]> = (0..n).map(|_| [0; 3].map(|_| l * uniform())).collect();
        assert!(Prefetcher::pays(&bins_of(points.clone(), l, 1.5)));
        // 12 bins of 2.5 Å along each axis: 2.9 atoms per bin.
        assert!(!Prefetcher::pays(&bins_of(points.clone(), l, 2.5)));
        let bin = |p: &[f64; 3]| p.map(|x| (x / 1.5) as i64);
        points.sort_by_key(bin);
        assert!(!Prefetcher::pays(&bins_of(points, l, 1.5)));
    }
}
