//! Atoms sorted into bins (cell lists): the search space of a neighbour list.

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::cell::{row_times, Cell, Frame};
use crate::error::{invalid, Result};

/// Most bins per atom: bounds memory for sparse systems (far-apart atoms, tiny cutoffs).
const MAX_BINS_PER_ATOM: usize = 4;
/// A search that would visit more candidate pairs than this is refused instead of hanging.
const MAX_CANDIDATES: f64 = 4e10;
/// A list expected to hold more pairs than this is refused instead of exhausting memory.
const MAX_PAIRS: f64 = 1e9;
/// The screening reads slots in lanes of this many.
pub(super) const SCREEN_LANES: usize = 4;
/// `mask` without the bits from `len` on (`len <= 64`): a screening reads whole lanes, past the
/// slots it was asked for.
#[inline(always)]
pub(super) fn first_bits(mask: u64, len: usize) -> u64 {
    if len < 64 {
        mask & ((1u64 << len) - 1)
    } else {
        mask
    }
}

/// Bins are made slightly thicker than the cutoff so that rounding never hides a neighbour.
const BIN_SLACK: f64 = 1e-8;

/// Atoms sorted into bins, with the integer lattice offsets that wrapped them into the cell.
pub(super) struct Bins {
    pub(super) n: [usize; 3],
    /// How many bins to search on each side along each axis.
    pub(super) reach: [i64; 3],
    /// Position of each atom within its bin along each axis, from 0 (at the lower face) to 1.
    pub(super) within: Vec<[f64; 3]>,
    /// The cutoff (with a margin) in units of the bins' thickness along each axis.
    pub(super) cutoff_in_widths: [f64; 3],
    pub(super) periodic: [bool; 3],
    /// Bin of each atom (flat index).
    pub(super) bin_of: Vec<usize>,
    /// Start of each bin in `order` (length `n_bins + 1`).
    pub(super) start: Vec<usize>,
    /// Atom indices sorted by bin.
    pub(super) order: Vec<u32>,
    /// Wrapped Cartesian positions in bin order (x, y, z as separate arrays), Å, followed by
    /// `SCREEN_LANES` slots at infinity.
    pub(super) xs: Vec<f64>,
    pub(super) ys: Vec<f64>,
    pub(super) zs: Vec<f64>,
    /// Wrapped Cartesian position of each atom, Å.
    pub(super) wrapped: Vec<[f64; 3]>,
    /// Fractional coordinates of each atom's wrapped position (along non-periodic axes, relative
    /// to the extent of the atoms).
    pub(super) fractional: Vec<[f64; 3]>,
    /// The user's positions, by atom and in bin order, Å.
    pub(super) points: Vec<[f64; 3]>,
    /// Followed by `SCREEN_LANES` slots of zeros, as is `sorted_offset`: a whole vector can be
    /// read at the slot of any atom.
    pub(super) sorted_points: Vec<[f64; 3]>,
    /// `offset` in bin order.
    pub(super) sorted_offset: Vec<[i32; 3]>,
    /// Integer offset of each atom: `r = wrapped + offset · cell`.
    pub(super) offset: Vec<[i64; 3]>,
    pub(super) rows: [[f64; 3]; 3],
    /// Atoms in the bins searched around each bin.
    pub(super) local_candidates: Vec<usize>,
    /// Share of the searched volume inside the cutoff sphere (1 when unknown).
    pub(super) sphere_fraction: f64,
}

impl Bins {
    pub(super) fn new(
        points: Vec<[f64; 3]>,
        cell: &Cell,
        frame: &Frame,
        cutoff: f64,
    ) -> Result<Self> {
        let n_atoms = points.len();
        let periodic = cell.pbc;
        // Fractional coordinates, wrapped into the cell along periodic axes, and the integer
        // offsets that did it.
        let wrap_into_cell = |k: usize| -> ([f64; 3], [i64; 3]) {
            let mut s = row_times(points[k], &frame.inverse);
            let mut o = [0i64; 3];
            for d in 0..3 {
                if periodic[d] {
                    let f = floor(s[d]);
                    // Far-out atoms are refused below (the clamp keeps the cast defined).
                    o[d] = f.clamp(-1e9, 1e9) as i64;
                    s[d] -= f;
                }
            }
            (s, o)
        };
        let rows = cell.matrix;
        // The wrapped Cartesian position, `r - offset · cell`, in the same pass. Collected
        // straight into the vectors (no zero-filled allocation first: a serial pass).
        let wrap_atom = |k: usize| -> ([f64; 3], ([i64; 3], [f64; 3])) {
            let (r, o) = wrap_into_cell(k);
            let mut w = points[k];
            for d in 0..3 {
                if o[d] != 0 {
                    for c in 0..3 {
                        w[c] -= o[d] as f64 * rows[d][c];
                    }
                }
            }
            (r, (o, w))
        };
        // Extent of the binned region along each axis, in reduced units and in Å: the cell along
        // periodic axes, the atoms' extent along the others (whose rows are unit vectors).
        let mut lo = [0.0; 3];
        let mut span = [1.0; 3];
        let mut thickness = frame.plane_spacing;
        if periodic.contains(&false) {
            let (min, max) = reduced_extent(&points, &frame.inverse);
            for d in (0..3).filter(|&d| !periodic[d]) {
                lo[d] = min[d];
                span[d] = max[d] - min[d];
                thickness[d] = span[d];
            }
        }
        let mut n = [1usize; 3];
        for d in 0..3 {
            let k = (thickness[d] / (cutoff * (1.0 + BIN_SLACK))).floor();
            n[d] = if k.is_finite() && k >= 1.0 {
                k.min(1e6) as usize
            } else {
                1
            };
        }
        // Cap the number of bins for sparse systems, shrinking every axis alike.
        let max_bins = (MAX_BINS_PER_ATOM * n_atoms).max(1) as f64;
        let total = (n[0] * n[1] * n[2]) as f64;
        if total > max_bins {
            let f = (max_bins / total).cbrt();
            for x in n.iter_mut() {
                *x = ((*x as f64 * f).floor() as usize).max(1);
            }
        }
        let mut reach = [0i64; 3];
        for d in 0..3 {
            let width = thickness[d] / n[d] as f64;
            reach[d] = if periodic[d] {
                (cutoff / width).ceil() as i64
            } else if n[d] == 1 {
                0
            } else {
                ((cutoff / width).ceil() as i64).min(n[d] as i64 - 1)
            };
        }
        let images: f64 = reach.iter().map(|&r| (2 * r + 1) as f64).product();
        // Volume of the binned region: the frame's cell volume times the non-periodic extents.
        let region = {
            let [a, b, c] = frame.rows;
            let det = (a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
                + a[2] * (b[0] * c[1] - b[1] * c[0]))
                .abs();
            det * span.iter().product::<f64>()
        };
        let density = if region > 0.0 {
            n_atoms as f64 / region
        } else {
            0.0
        };
        let sphere_volume = 4.0 / 3.0 * std::f64::consts::PI * cutoff.powi(3);
        // Pairs expected at the mean density, never more than the candidates the search visits.
        let candidates_per_atom = images * n_atoms as f64 / (n[0] * n[1] * n[2]) as f64;
        let expected = (density * sphere_volume).min(candidates_per_atom) * n_atoms as f64;
        if expected > MAX_PAIRS {
            return Err(invalid!(
                "the cutoff {cutoff} Å is too large: it would give about {expected:.1e} pairs for \
                 {n_atoms} atoms (more than {MAX_PAIRS:.0e}, over {:.0} GB of output)",
                expected * 72.0 / 1e9
            ));
        }
        let candidates = images * (n_atoms as f64) * (n_atoms as f64) / (n[0] * n[1] * n[2]) as f64;
        if candidates > MAX_CANDIDATES {
            return Err(invalid!(
                "the cutoff {cutoff} Å is too large for this cell: the search would visit about \
                 {candidates:.1e} candidate pairs ({images:.0} periodic images per bin)"
            ));
        }
        // Each atom's bin (flat index), and where it sits within the bin along each axis, from 0
        // (lower face) to 1 (upper face).
        let locate = |s: &[f64; 3]| -> (usize, [f64; 3]) {
            let (mut flat, mut within) = (0usize, [0.0; 3]);
            for d in 0..3 {
                let frac = if span[d] > 0.0 {
                    (s[d] - lo[d]) / span[d]
                } else {
                    0.0
                };
                let x = frac * n[d] as f64;
                // Truncation is the floor here (x >= 0 after the max).
                let b = (x.max(0.0) as usize).min(n[d] - 1);
                within[d] = (x - b as f64).clamp(0.0, 1.0);
                flat = flat * n[d] + b;
            }
            (flat, within)
        };
        // Wrapped and located in one pass over the atoms.
        let bin_atom = |k: usize| {
            let (r, (o, w)) = wrap_atom(k);
            let (b, u) = locate(&r);
            (r, (o, (w, (b, u))))
        };
        type Binned = (
            Vec<[f64; 3]>,
            (Vec<[i64; 3]>, (Vec<[f64; 3]>, (Vec<usize>, Vec<[f64; 3]>))),
        );
        let (reduced, (offset, (wrapped, (bin_of, within)))): Binned =
            map_unzip(n_atoms, n_atoms, bin_atom);
        let far_out = |o: &[i64; 3]| o.iter().any(|&x| x.unsigned_abs() > 500_000_000);
        if let Some(k) = first_where(&offset, far_out) {
            let o = offset[k].iter().map(|&x| x.abs()).max().unwrap_or(0) as f64;
            return Err(invalid!(
                "atom {k} is {o:e} cells away from the cell: positions too far out"
            ));
        }
        // With a margin far above rounding: skipping a bin must never lose a pair. Infinite
        // along an axis without extent (its reach is 0 anyway).
        let cutoff_in_widths =
            std::array::from_fn(|d| cutoff * (1.0 + 1e-6) / (thickness[d] / n[d] as f64));
        let n_bins = n[0] * n[1] * n[2];
        let mut start = vec![0usize; n_bins + 1];
        for &b in &bin_of {
            start[b + 1] += 1;
        }
        for b in 0..n_bins {
            start[b + 1] += start[b];
        }
        let mut fill = start.clone();
        let mut order = vec![0u32; n_atoms];
        for (k, &b) in bin_of.iter().enumerate() {
            order[fill[b]] = k as u32;
            fill[b] += 1;
        }
        // Everything the search reads slot by slot, in bin order, in one pass. The coordinates
        // are padded with `SCREEN_LANES` far-away slots, so that the screening reads whole lanes.
        type Slot = (f64, (f64, (f64, ([f64; 3], [i32; 3]))));
        let gather_slot = |slot: usize| -> Slot {
            match order.get(slot) {
                Some(&atom) => {
                    let atom = atom as usize;
                    let w = wrapped[atom];
                    let o = offset[atom].map(|x| x as i32);
                    (w[0], (w[1], (w[2], (points[atom], o))))
                }
                // Padding, which only the screening reads.
                None => (
                    f64::INFINITY,
                    (f64::INFINITY, (f64::INFINITY, ([0.0; 3], [0; 3]))),
                ),
            }
        };
        type Gathered = (
            Vec<f64>,
            (Vec<f64>, (Vec<f64>, (Vec<[f64; 3]>, Vec<[i32; 3]>))),
        );
        let slots = n_atoms + SCREEN_LANES;
        let (xs, (ys, (zs, (sorted_points, sorted_offset)))): Gathered =
            map_unzip(slots, n_atoms, gather_slot);
        let local_candidates = local_counts(&start, n, reach, periodic, n_atoms);
        let search_volume = images * region / n_bins as f64;
        let sphere_fraction = if search_volume > 0.0 {
            (sphere_volume / search_volume).min(1.0)
        } else {
            1.0
        };
        Ok(Bins {
            n,
            reach,
            within,
            cutoff_in_widths,
            periodic,
            bin_of,
            start,
            order,
            xs,
            ys,
            zs,
            points,
            sorted_points,
            sorted_offset,
            wrapped,
            fractional: reduced,
            offset,
            rows,
            local_candidates,
            sphere_fraction,
        })
    }

    /// Whether an atom can have another atom as a neighbour only once (at one lattice shift), and
    /// atom indices fit in 24 bits. Two images of an atom are `|S · cell|` apart, at least the
    /// spacing of the lattice planes along any axis where `S` is not 0: more than twice the
    /// cutoff along every periodic axis means that two images cannot both be within the cutoff.
    pub(super) fn small_keys_fit(&self) -> bool {
        self.bin_of.len() <= 1 << 24 && self.one_image_per_partner()
    }

    /// Whether the lattice planes of every periodic axis are more than twice the cutoff apart:
    /// an atom is then a neighbour of another at one lattice shift at most (see
    /// [`Bins::small_keys_fit`]).
    pub(super) fn one_image_per_partner(&self) -> bool {
        (0..3).all(|d| !self.periodic[d] || self.n[d] as f64 > 2.0 * self.cutoff_in_widths[d])
    }

    /// Mean number of atoms in the bins searched around an atom's bin.
    pub(super) fn mean_candidates(&self) -> f64 {
        let total: usize = self.bin_of.iter().map(|&b| self.local_candidates[b]).sum();
        total as f64 / self.bin_of.len().max(1) as f64
    }

    /// Room to give a range of atoms in the shared output: the expected pairs from the local
    /// density of each atom's bin neighbourhood, with a margin, never more than its candidates.
    pub(super) fn capacity_for(&self, atoms: std::ops::Range<usize>) -> usize {
        let mut total = 0.0;
        for i in atoms {
            let c = self.local_candidates[self.bin_of[i]] as f64;
            total += c.min(1.25 * c * self.sphere_fraction + 4.0);
        }
        total as usize + 16
    }

    /// The neighbouring bins atom `i` needs along each axis: offsets `-below..=above` (at most
    /// `reach`). A bin `k` bins away lies at least `(k - 1 + u) · width` from the atom (`u` its
    /// position within its own bin, from the near face): beyond the cutoff it cannot hold a
    /// neighbour. A bound on distances between parallel planes, so valid in any cell.
    #[inline(always)]
    pub(super) fn needed(&self, i: usize) -> ([i64; 3], [i64; 3]) {
        let (mut below, mut above) = (self.reach, self.reach);
        let u = self.within[i];
        for d in 0..3 {
            // k = 1, 2, ... while (k - 1 + u) · width < cutoff: ceil(cutoff / width - u) of them.
            let t = self.cutoff_in_widths[d];
            below[d] = ((t - u[d]).ceil() as i64).clamp(0, self.reach[d]);
            above[d] = ((t - (1.0 - u[d])).ceil() as i64).clamp(0, self.reach[d]);
        }
        (below, above)
    }

    pub(super) fn unflatten(&self, flat: usize) -> [i64; 3] {
        let z = flat % self.n[2];
        let y = (flat / self.n[2]) % self.n[1];
        let x = flat / (self.n[1] * self.n[2]);
        [x as i64, y as i64, z as i64]
    }
}

/// `x.floor()`, inlined: without SSE4.1 enabled at compile time, `f64::floor` is a call into
/// the C library, a sizeable part of the binning. Exact for every finite `x` (beyond 2^63 in
/// magnitude it saturates, and such atoms are refused as too far out).
#[inline(always)]
fn floor(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// Below this many atoms the per-atom passes of the binning run on one thread.
const PARALLEL_ATOMS: usize = 8192;
/// Atoms per task of a parallel per-atom pass.
const CHUNK: usize = 2048;

/// Whether per-atom passes over `n_atoms` atoms are worth spreading over the threads.
fn parallel(n_atoms: usize) -> bool {
    n_atoms >= PARALLEL_ATOMS && crate::threads::current_threads() > 1
}

/// The rows of `positions` (`(n_atoms, 3)`, Å), copied on the threads for large structures, and
/// the first atom with a coordinate that is not finite, if any.
pub(super) fn position_rows(positions: ArrayView2<'_, f64>) -> (Vec<[f64; 3]>, Option<usize>) {
    debug_assert_eq!(positions.ncols(), 3);
    let n_atoms = positions.nrows();
    let points: Vec<[f64; 3]> = match positions.as_slice() {
        Some(flat) => map_unzip(n_atoms, n_atoms, |k| {
            [flat[3 * k], flat[3 * k + 1], flat[3 * k + 2]]
        }),
        None => map_unzip(n_atoms, n_atoms, |k| {
            [positions[[k, 0]], positions[[k, 1]], positions[[k, 2]]]
        }),
    };
    let not_finite = first_where(&points, |p| !p.iter().all(|x| x.is_finite()));
    (points, not_finite)
}

/// Index of the first item for which `test` holds, searched on the threads for many items.
///
/// In chunks of [`CHUNK`] items, each searched by a plain loop: rayon's `position_first` checks
/// a shared flag at every item (on 32000 atoms on two threads, the binning's two checks cost
/// ~23 ns of CPU time per atom that way, by `perf`).
fn first_where<T: Sync>(items: &[T], test: impl Fn(&T) -> bool + Sync + Send) -> Option<usize> {
    if parallel(items.len()) {
        items
            .par_chunks(CHUNK)
            .enumerate()
            .find_map_first(|(c, chunk)| chunk.iter().position(&test).map(|k| c * CHUNK + k))
    } else {
        items.iter().position(test)
    }
}

/// Smallest and largest fractional coordinate of the atoms along each axis (unwrapped).
fn reduced_extent(points: &[[f64; 3]], inverse: &[[f64; 3]; 3]) -> ([f64; 3], [f64; 3]) {
    type Extent = ([f64; 3], [f64; 3]);
    let empty = || ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
    let add = |(mut min, mut max): Extent, p: &[f64; 3]| {
        let s = row_times(*p, inverse);
        for d in 0..3 {
            min[d] = min[d].min(s[d]);
            max[d] = max[d].max(s[d]);
        }
        (min, max)
    };
    let merge = |a: Extent, b: Extent| -> Extent {
        (
            std::array::from_fn(|d| a.0[d].min(b.0[d])),
            std::array::from_fn(|d| a.1[d].max(b.1[d])),
        )
    };
    if parallel(points.len()) {
        points
            .par_iter()
            .with_min_len(CHUNK)
            .fold(empty, add)
            .reduce(empty, merge)
    } else {
        points.iter().fold(empty(), add)
    }
}

/// `f(0), f(1), .., f(len - 1)` written into the columns `C` (a vector, or a pair of columns,
/// nested for more), on the threads when [`parallel`]`(n_atoms)` (in chunks of [`CHUNK`]).
///
/// Each row is written straight into its place in freshly reserved vectors: no prior fill, no
/// per-row capacity check, no intermediate lists. (rayon's `unzip` cost 17 ns per atom for the
/// wrapping pass on one thread, and about twice that per atom on each of two threads: the
/// binning of 32000 atoms took 1.67 ms on one thread and 1.13–1.35 on two; 1.47–1.50 and
/// 1.01–1.05 ms this way, with the wrapping and locating passes fused.)
fn map_unzip<C: Columns, F>(len: usize, n_atoms: usize, f: F) -> C
where
    F: Fn(usize) -> C::Row + Sync,
{
    let mut columns = C::with_capacity(len);
    let to = columns.pointer();
    let fill = |rows: std::ops::Range<usize>| {
        for k in rows {
            // SAFETY: `k < len`, within the capacity reserved above, and each row is written
            // by exactly one task.
            unsafe { C::write(to, k, f(k)) };
        }
    };
    if parallel(n_atoms) {
        (0..len.div_ceil(CHUNK))
            .into_par_iter()
            .for_each(|c| fill(c * CHUNK..((c + 1) * CHUNK).min(len)));
    } else {
        fill(0..len);
    }
    // SAFETY: every row `0..len` was written above (the parallel loop has joined).
    unsafe { columns.assume_init(len) };
    columns
}

/// The output of a per-atom pass: vectors filled in place by [`map_unzip`].
trait Columns: Send + Sized {
    /// One row: a value for each vector.
    type Row: Send;
    /// Where the rows go, shared by the tasks that write them.
    type Pointer: Copy + Send + Sync;
    fn with_capacity(len: usize) -> Self;
    fn pointer(&mut self) -> Self::Pointer;
    /// Write `row` at index `k`.
    ///
    /// # Safety
    /// `k` within the capacity given to [`Columns::with_capacity`], and no other write to `k`.
    unsafe fn write(to: Self::Pointer, k: usize, row: Self::Row);
    /// Mark the first `len` rows as written.
    ///
    /// # Safety
    /// All of them must have been written with [`Columns::write`].
    unsafe fn assume_init(&mut self, len: usize);
}

/// A raw pointer that tasks writing disjoint elements may share.
struct Shared<T>(*mut T);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Shared<T> {}

// SAFETY: only used by `map_unzip`, whose tasks write disjoint elements.
unsafe impl<T: Send> Send for Shared<T> {}
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T: Send> Columns for Vec<T> {
    type Row = T;
    type Pointer = Shared<T>;
    fn with_capacity(len: usize) -> Self {
        Vec::with_capacity(len)
    }
    fn pointer(&mut self) -> Shared<T> {
        Shared(self.as_mut_ptr())
    }
    #[inline(always)]
    unsafe fn write(to: Shared<T>, k: usize, row: T) {
        // SAFETY: guaranteed by the caller.
        unsafe { to.0.add(k).write(row) }
    }
    unsafe fn assume_init(&mut self, len: usize) {
        // SAFETY: guaranteed by the caller.
        unsafe { self.set_len(len) }
    }
}

impl<A: Columns, B: Columns> Columns for (A, B) {
    type Row = (A::Row, B::Row);
    type Pointer = (A::Pointer, B::Pointer);
    fn with_capacity(len: usize) -> Self {
        (A::with_capacity(len), B::with_capacity(len))
    }
    fn pointer(&mut self) -> Self::Pointer {
        (self.0.pointer(), self.1.pointer())
    }
    #[inline(always)]
    unsafe fn write(to: Self::Pointer, k: usize, row: Self::Row) {
        // SAFETY: guaranteed by the caller.
        unsafe {
            A::write(to.0, k, row.0);
            B::write(to.1, k, row.1);
        }
    }
    unsafe fn assume_init(&mut self, len: usize) {
        // SAFETY: guaranteed by the caller.
        unsafe {
            self.0.assume_init(len);
            self.1.assume_init(len);
        }
    }
}

/// Number of atoms in the bins searched around each bin (with periodic wrapping), or, when the
/// sums would cost more than the search itself, the mean of that number over the bins.
///
/// Both choices downstream read it as an estimate: the search's strategy (all pairs when that
/// visits fewer candidates, [`AllPairs::for_bins`](super::all_pairs::AllPairs::for_bins)) and
/// the room given to each range of atoms. An upper bound here (every atom in every searched bin)
/// once sent sparse systems with many bins (32000 atoms at 0.5 Å: 2.6 s instead of ms) to the
/// quadratic all-pairs search.
fn local_counts(
    start: &[usize],
    n: [usize; 3],
    reach: [i64; 3],
    periodic: [bool; 3],
    n_atoms: usize,
) -> Vec<usize> {
    let n_bins = n[0] * n[1] * n[2];
    // The sum over the box of bins around each bin is separable: sum over the line of bins
    // along z, then along y, then along x (n_bins · Σ(2r + 1) additions instead of
    // n_bins · Π(2r + 1)). Bins are at least a cutoff thick along any axis with more than one of
    // them, so a long line (a reach beyond 1) means one bin along that axis: the additions stay
    // within a small multiple of the atoms unless the cutoff dwarfs the cell.
    let line_terms: f64 = reach.iter().map(|&r| (2 * r + 1) as f64).sum();
    if n_bins as f64 * line_terms > 64.0 * n_atoms as f64 + 1e6 {
        let images: f64 = reach.iter().map(|&r| (2 * r + 1) as f64).product();
        let mean = (images * n_atoms as f64 / n_bins.max(1) as f64).ceil();
        return vec![mean as usize; n_bins];
    }
    let mut counts: Vec<usize> = start.windows(2).map(|w| w[1] - w[0]).collect();
    let mut summed = vec![0usize; n_bins];
    let strides = [n[1] * n[2], n[2], 1];
    for axis in (0..3).rev() {
        let (stride, len) = (strides[axis], n[axis]);
        // The bins summed into each position along the axis (with repeats where the reach
        // wraps around more than once), found once per position instead of once per bin.
        let sources: Vec<Vec<usize>> = (0..len as i64)
            .map(|c| {
                (-reach[axis]..=reach[axis])
                    .filter_map(|dc| wrap(c + dc, len, periodic[axis]))
                    .collect()
            })
            .collect();
        // Bins `c * stride .. (c + 1) * stride` of a block share their position `c` along the
        // axis: whole slices add up, without a division per bin.
        let blocks = summed
            .chunks_exact_mut(len * stride)
            .zip(counts.chunks_exact(len * stride));
        for (into, from) in blocks {
            for (c, sources) in sources.iter().enumerate() {
                let into = &mut into[c * stride..(c + 1) * stride];
                into.fill(0);
                for &cc in sources {
                    let from = &from[cc * stride..(cc + 1) * stride];
                    for (total, &x) in into.iter_mut().zip(from) {
                        *total += x;
                    }
                }
            }
        }
        std::mem::swap(&mut counts, &mut summed);
    }
    counts
}

fn wrap(c: i64, n: usize, periodic: bool) -> Option<usize> {
    let n = n as i64;
    if periodic {
        Some(c.rem_euclid(n) as usize)
    } else if (0..n).contains(&c) {
        Some(c as usize)
    } else {
        None
    }
}

/// The bin at (possibly out-of-range) index `c` along `axis`, and the lattice image it lies in.
#[inline(always)]
pub(super) fn neighbour_bin(c: i64, axis: usize, bins: &Bins) -> Option<(usize, i64)> {
    let n = bins.n[axis] as i64;
    if bins.periodic[axis] {
        Some((c.rem_euclid(n) as usize, c.div_euclid(n)))
    } else if (0..n).contains(&c) {
        Some((c as usize, 0))
    } else {
        None
    }
}

/// The cubic cell of side `l` (Å) with periodicity `pbc`, and `points` binned in it at cutoff
/// `rc` (Å), for tests.
#[cfg(test)]
pub(super) fn cubic_bins(points: Vec<[f64; 3]>, l: f64, pbc: [bool; 3], rc: f64) -> (Cell, Bins) {
    let matrix = [[l, 0.0, 0.0], [0.0, l, 0.0], [0.0, 0.0, l]];
    let cell = Cell::new(matrix, pbc).expect("cell");
    let frame = cell.frame().expect("frame");
    let bins = Bins::new(points, &cell, &frame, rc).expect("bins");
    (cell, bins)
}

#[cfg(test)]
mod tests {
    /// Nested columns hold `f(k)` at every `k`, filled on one thread or in parallel chunks
    /// (lengths around the chunk size and the parallel threshold).
    #[test]
    fn map_unzip_writes_every_row_in_place() {
        for threads in [1, 2] {
            crate::threads::with_threads(threads, || {
                for len in [
                    0,
                    1,
                    super::CHUNK - 1,
                    super::CHUNK + 1,
                    super::PARALLEL_ATOMS + 5,
                    20_011,
                ] {
                    type Three = (Vec<u32>, (Vec<[f64; 3]>, Vec<i64>));
                    let (a, (b, c)): Three = super::map_unzip(len, len, |k| {
                        (k as u32 * 3, ([k as f64, 0.5, -(k as f64)], k as i64 - 7))
                    });
                    assert_eq!((a.len(), b.len(), c.len()), (len, len, len));
                    for k in 0..len {
                        assert_eq!(a[k], k as u32 * 3);
                        assert_eq!(b[k], [k as f64, 0.5, -(k as f64)]);
                        assert_eq!(c[k], k as i64 - 7);
                    }
                }
            })
            .expect("threads");
        }
    }

    /// The separable sums equal the direct sum over every bin of the box around each bin, for
    /// periodic and non-periodic axes, reaches beyond the number of bins included.
    #[test]
    fn local_counts_match_the_direct_sum() {
        let mut uniform = crate::uniform_numbers(11);
        for case in 0..200 {
            let n = [0; 3].map(|_| 1 + (uniform() * 6.0) as usize);
            let reach = [0; 3].map(|_| (uniform() * 4.0) as i64);
            let periodic = [0; 3].map(|_| uniform() < 0.6);
            let n_bins = n[0] * n[1] * n[2];
            let mut start = vec![0usize];
            for _ in 0..n_bins {
                let last = *start.last().expect("start");
                start.push(last + (uniform() * 5.0) as usize);
            }
            let n_atoms = start[n_bins];
            let got = super::local_counts(&start, n, reach, periodic, n_atoms);
            for x in 0..n[0] {
                for y in 0..n[1] {
                    for z in 0..n[2] {
                        let mut total = 0;
                        for dx in -reach[0]..=reach[0] {
                            for dy in -reach[1]..=reach[1] {
                                for dz in -reach[2]..=reach[2] {
                                    let c = [x as i64 + dx, y as i64 + dy, z as i64 + dz];
                                    let w: Vec<Option<usize>> = (0..3)
                                        .map(|d| super::wrap(c[d], n[d], periodic[d]))
                                        .collect();
                                    if let [Some(a), Some(b), Some(c)] = w[..] {
                                        let flat = (a * n[1] + b) * n[2] + c;
                                        total += start[flat + 1] - start[flat];
                                    }
                                }
                            }
                        }
                        let flat = (x * n[1] + y) * n[2] + z;
                        assert_eq!(got[flat], total, "case {case}, bin {:?}", [x, y, z]);
                    }
                }
            }
        }
    }

    /// The inlined floor equals `f64::floor` (up to the sign of zero) on integers, halves, values
    /// next to integers, and random magnitudes of both signs up to 10^18 (below 2^63).
    #[test]
    fn floor_matches_the_library() {
        let mut uniform = crate::uniform_numbers(5);
        let mut values = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            2.0f64.powi(52) + 1.0,
            -1e18,
            1e18,
        ];
        for k in -1000..1000 {
            let x = k as f64 * 0.25;
            values.extend([x, x.next_up(), x.next_down()]);
        }
        values.extend((0..10000).map(|_| (uniform() - 0.5) * 10f64.powf(18.0 * uniform())));
        for x in values {
            assert_eq!(super::floor(x), x.floor(), "floor({x:e})");
        }
    }
}
