//! The cell-list search itself.

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::all_pairs::AllPairs;
use super::bins::{first_bits, neighbour_bin, position_rows, Bins, SCREEN_LANES};
#[cfg(target_arch = "x86_64")]
use super::hits_avx2::{AtomLanes, Hits};
use super::output::{fill_in_order, Pair, Sink};
use super::prefetch::Prefetcher;
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_imports))]
use super::small_sort::{SmallKeys, MAX_KEYS};
use super::{Cutoff, Options, PairList, Quantities};
use crate::cell::Cell;
use crate::error::{invalid, Result};

/// Squared distances are computed in blocks of this many slots.
const DIST_BLOCK: usize = 64;

/// Full or half neighbour list of one structure. See the module documentation for conventions.
///
/// `positions` is `(n_atoms, 3)` in Å; atoms may lie outside the cell. Errors on non-finite
/// positions, invalid cutoffs, and searches so large that they could not finish.
pub fn neighbor_list(
    positions: ArrayView2<'_, f64>,
    cell: &Cell,
    cutoff: &Cutoff,
    options: &Options,
) -> Result<PairList> {
    let Some((bins, max_cutoff)) = bin_atoms(positions, cell, cutoff)? else {
        return Ok(PairList::default());
    };
    let n_atoms = positions.nrows();
    let all_pairs = AllPairs::for_bins(&bins, options.full_list);
    let search = Search::new(cutoff, options, &bins, max_cutoff, true, all_pairs.as_ref());
    // Small ranges, so that each one's pairs stay in cache until they are copied to the output.
    let ranges = atom_ranges(n_atoms, 256);
    if ranges.len() == 1 {
        // Room from each atom's local density with a margin: an estimate from the mean density
        // alone falls short for shells just inside the cutoff, and the regrowth copies everything.
        let mut out = PairList::try_with_capacity(bins.capacity_for(0..n_atoms), options)?;
        fill_range(0..n_atoms, &search, &mut out);
        return Ok(out);
    }
    fill_in_order(
        ranges.len(),
        bins.capacity_for(0..n_atoms),
        options.quantities,
        |k, buffer| fill_range(ranges[k].clone(), &search, buffer),
    )
}

/// The pairs of one structure pushed into sinks of the caller's own kind, one sink per range of
/// consecutive atoms (a single range on one thread; ranges searched in parallel otherwise),
/// returned in atom order. `make(range, capacity)` creates the sink of a range, with room for
/// about `capacity` pairs. The same pairs as [`neighbor_list`], in its order when `sorted`, and
/// otherwise in the order the search finds them (the same whatever the thread count); `d` is the
/// distance when `options.quantities.distances` is set.
pub(crate) fn neighbor_search<S, F>(
    positions: ArrayView2<'_, f64>,
    cell: &Cell,
    cutoff: &Cutoff,
    options: &Options,
    sorted: bool,
    make: F,
) -> Result<Vec<S>>
where
    S: Sink + Send,
    F: Fn(std::ops::Range<usize>, usize) -> Result<S> + Sync,
{
    let Some((bins, max_cutoff)) = bin_atoms(positions, cell, cutoff)? else {
        return Ok(Vec::new());
    };
    let all_pairs = AllPairs::for_bins(&bins, options.full_list);
    let search = Search::new(
        cutoff,
        options,
        &bins,
        max_cutoff,
        sorted,
        all_pairs.as_ref(),
    );
    let run = |atoms: std::ops::Range<usize>| -> Result<S> {
        let mut out = make(atoms.clone(), bins.capacity_for(atoms.clone()))?;
        fill_range(atoms, &search, &mut out);
        Ok(out)
    };
    let ranges = atom_ranges(positions.nrows(), usize::MAX);
    if ranges.len() == 1 {
        ranges.into_iter().map(run).collect()
    } else {
        ranges.into_par_iter().map(run).collect()
    }
}

/// Consecutive ranges of atoms searched as one task each: all atoms on one thread or for small
/// structures, otherwise about eight ranges per thread, of at most `max_chunk` atoms, and the
/// last `threads` ranges' worth of atoms in ranges a quarter of that size.
///
/// The threads take the ranges in order, so the last range to finish starts at most one range
/// before the end: smaller ranges there let the threads finish closer together (32000 atoms at
/// 5 Å on 2 threads: the second thread finished 155–200 µs after the first, 40–60 µs with the
/// smaller last ranges).
fn atom_ranges(n_atoms: usize, max_chunk: usize) -> Vec<std::ops::Range<usize>> {
    let threads = crate::threads::current_threads().max(1);
    if threads == 1 || n_atoms < 64 {
        return std::iter::once(0..n_atoms).collect();
    }
    let chunk = n_atoms.div_ceil(8 * threads).clamp(16, max_chunk.max(16));
    let small = (chunk / 4).max(16);
    let tail = n_atoms.saturating_sub(threads * chunk);
    let head = (0..tail).step_by(chunk).map(|a| a..(a + chunk).min(tail));
    let last = (tail..n_atoms)
        .step_by(small)
        .map(|a| a..(a + small).min(n_atoms));
    head.chain(last).collect()
}

/// Checks the input and sorts the atoms into bins; `None` when there is nothing to search (no
/// atoms or a zero cutoff).
fn bin_atoms(
    positions: ArrayView2<'_, f64>,
    cell: &Cell,
    cutoff: &Cutoff,
) -> Result<Option<(Bins, f64)>> {
    if positions.ncols() != 3 {
        return Err(invalid!(
            "positions must have shape (n_atoms, 3), got {:?}",
            positions.shape()
        ));
    }
    let n_atoms = positions.nrows();
    if n_atoms > u32::MAX as usize {
        return Err(invalid!(
            "at most {} atoms per structure are supported, got {n_atoms}",
            u32::MAX
        ));
    }
    let (points, not_finite) = position_rows(positions);
    if let Some(k) = not_finite {
        return Err(invalid!(
            "position of atom {k} is not finite: {:?}",
            points[k]
        ));
    }
    cutoff.validate(n_atoms)?;
    let max_cutoff = cutoff.max();
    if n_atoms == 0 || !(max_cutoff > 0.0) {
        return Ok(None);
    }
    let frame = cell.frame()?;
    let bins = Bins::new(points, cell, &frame, max_cutoff)?;
    Ok(Some((bins, max_cutoff)))
}

/// Bit `k` set when slot `start + k` (for `k < len <= 64`; coordinates relative to the atom via
/// `base`) is within `sqrt(screen2)`. Reads whole lanes of four slots, past `start + len` into the
/// next bin or the padding at infinity, and masks the extra bits off: no scalar remainder. (With
/// AVX2 the search screens with `hits_avx2` instead, except for atoms too far out for it.)
#[inline(always)]
fn screen_block(bins: &Bins, start: usize, len: usize, base: [f64; 3], screen2: f64) -> u64 {
    debug_assert!(len <= 64);
    let end = start + len.div_ceil(SCREEN_LANES) * SCREEN_LANES;
    let (xs, ys, zs) = (
        &bins.xs[start..end],
        &bins.ys[start..end],
        &bins.zs[start..end],
    );
    let mut mask = 0u64;
    for (q, ((x4, y4), z4)) in xs
        .chunks_exact(SCREEN_LANES)
        .zip(ys.chunks_exact(SCREEN_LANES))
        .zip(zs.chunks_exact(SCREEN_LANES))
        .enumerate()
    {
        let mut bits = 0u64;
        for l in 0..SCREEN_LANES {
            let (vx, vy, vz) = (x4[l] + base[0], y4[l] + base[1], z4[l] + base[2]);
            bits |= u64::from(vx * vx + vy * vy + vz * vz < screen2) << l;
        }
        mask |= bits << (SCREEN_LANES * q);
    }
    first_bits(mask, len)
}

/// Whether the options keep the pair `(i, j, S)` at all (the self pair, half lists).
#[inline(always)]
pub(super) fn wanted(options: &Options, i: usize, j: usize, s: [i64; 3]) -> bool {
    if i == j && s == [0, 0, 0] && !options.self_interaction {
        return false;
    }
    options.full_list || in_half_list(i, j, s)
}

/// The cutoff of one pair, with the bounds on d² that decide it.
#[derive(Clone, Copy)]
pub(super) struct Limit {
    /// d² below this: within.
    inner2: f64,
    /// d² at or above this: beyond.
    outer2: f64,
    /// Between the two, `d < cutoff` on the rounded distance.
    cutoff: f64,
}

impl Limit {
    pub(super) fn new(cutoff: f64) -> Self {
        let limit2 = cutoff * cutoff;
        Limit {
            inner2: limit2 * (1.0 - 1e-14),
            outer2: limit2 * (1.0 + 1e-14),
            cutoff,
        }
    }

    #[inline(always)]
    fn of_pair(search: &Search<'_>, i: usize, j: usize) -> Self {
        match search.cutoff {
            Cutoff::Uniform(_) => Limit::new(search.max_cutoff),
            rule => Limit::new(rule.pair(i, j)),
        }
    }

    /// `d < cutoff` on the rounded distance, decided from d² except within a few ulp of the
    /// cutoff, where the square root settles it.
    #[inline(always)]
    pub(super) fn holds(&self, d2: f64) -> bool {
        d2 < self.inner2 || (d2 < self.outer2 && d2.sqrt() < self.cutoff)
    }
}

/// Whether a half list keeps the pair `(i, j, S)` rather than its mirror `(j, i, -S)`.
#[inline(always)]
fn in_half_list(i: usize, j: usize, s: [i64; 3]) -> bool {
    if i != j {
        return i < j;
    }
    match s.iter().find(|&&x| x != 0) {
        Some(&x) => x > 0,
        None => true, // the self pair at zero shift
    }
}

/// What a search needs besides the atom: the cutoff rule, options and bins.
struct Search<'a> {
    cutoff: &'a Cutoff,
    options: &'a Options,
    bins: &'a Bins,
    max_cutoff: f64,
    /// Each atom's pairs sorted by `(j, S)`, as ASE orders them; otherwise in the (deterministic)
    /// order the search visits the bins.
    sorted: bool,
    /// Each atom has any other atom at most once as a neighbour (one image at most) and atom
    /// indices fit in 24 bits: `j` alone orders an atom's pairs, as a 32-bit key `j << 8 | k`.
    small_keys: bool,
    /// Search all pairs instead of the cell list (small cells).
    all_pairs: Option<&'a AllPairs>,
    /// Prefetch what the next atoms' search reads (sparse atoms in random order).
    prefetch: bool,
}

impl<'a> Search<'a> {
    fn new(
        cutoff: &'a Cutoff,
        options: &'a Options,
        bins: &'a Bins,
        max_cutoff: f64,
        sorted: bool,
        all_pairs: Option<&'a AllPairs>,
    ) -> Self {
        Search {
            cutoff,
            options,
            bins,
            max_cutoff,
            sorted,
            small_keys: bins.small_keys_fit(),
            all_pairs,
            prefetch: all_pairs.is_none() && Prefetcher::pays(bins),
        }
    }
}

/// Pairs of the atoms in `atoms`, in order, into `out`; compiled for AVX2 too, chosen at run time
/// (same operations, same results).
fn fill_range<S: Sink>(atoms: std::ops::Range<usize>, search: &Search<'_>, out: &mut S) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { fill_range_avx2(atoms, search, out) };
        }
    }
    fill_range_impl::<false, S>(atoms, search, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_range_avx2<S: Sink>(
    atoms: std::ops::Range<usize>,
    search: &Search<'_>,
    out: &mut S,
) {
    fill_range_impl::<true, S>(atoms, search, out)
}

#[inline(always)]
fn fill_range_impl<const AVX2: bool, S: Sink>(
    atoms: std::ops::Range<usize>,
    search: &Search<'_>,
    out: &mut S,
) {
    let mut scratch = Scratch {
        order: Vec::new(),
        keys: SmallKeys::new(),
        #[cfg(target_arch = "x86_64")]
        hits: Hits::default(),
    };
    if let Some(all) = search.all_pairs {
        let mut found = Vec::new();
        for i in atoms {
            pairs_of_atom_all::<AVX2>(i, search, all, &mut found, out);
        }
        return;
    }
    // Counting first: every atom's pairs are found before any goes out, in one buffer for the
    // range (sized from the estimate, so that it rarely grows).
    let mut found = if S::COUNT_FIRST {
        Vec::with_capacity(search.bins.capacity_for(atoms.clone()))
    } else {
        Vec::new()
    };
    let mut starts = Vec::with_capacity(if S::COUNT_FIRST { atoms.len() } else { 0 });
    let end = atoms.end;
    let within = |a: usize| (a < end).then_some(a);
    let mut prefetch = search.prefetch.then(|| Prefetcher::new(search.bins));
    if let Some(p) = prefetch.as_mut() {
        p.ahead(None, within(atoms.start + 1));
    }
    for i in atoms.clone() {
        if let Some(p) = prefetch.as_mut() {
            p.ahead(within(i + 1), within(i + 2));
        }
        if S::COUNT_FIRST {
            starts.push(found.len());
            search_atom::<AVX2>(i, search, &mut scratch, &mut found);
        } else {
            found.clear();
            search_atom::<AVX2>(i, search, &mut scratch, &mut found);
            emit_atom::<AVX2>(i, search, &mut found, &mut scratch, out);
        }
    }
    if S::COUNT_FIRST {
        out.announce(found.len());
        let ends = starts.iter().skip(1).copied().chain([found.len()]);
        for ((i, start), end) in atoms.zip(starts.iter().copied()).zip(ends) {
            emit_atom::<AVX2>(i, search, &mut found[start..end], &mut scratch, out);
        }
    }
}

/// Keep the pair `(i, j, S)` (`ri`, `pj` the user's positions of `i` and `j`, Å) in `found` if
/// the options want it and it lies within the cutoff.
#[inline(always)]
fn keep_pair(
    search: &Search<'_>,
    i: usize,
    ri: [f64; 3],
    j: usize,
    pj: [f64; 3],
    s: [i64; 3],
    found: &mut Vec<Pair>,
) {
    if !wanted(search.options, i, j, s) {
        return;
    }
    // Exact vector as ASE defines it, D = r[j] − r[i] + S·cell: antisymmetric under
    // (i, j, S) → (j, i, −S), so full lists stay mirror-symmetric even at the cutoff.
    let mut v = [pj[0] - ri[0], pj[1] - ri[1], pj[2] - ri[2]];
    // Without branches: adding 0 · row changes nothing.
    for d in 0..3 {
        let sd = s[d] as f64;
        for c in 0..3 {
            v[c] += sd * search.bins.rows[d][c];
        }
    }
    let d2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
    if Limit::of_pair(search, i, j).holds(d2) {
        // Built from scalars: moving the arrays whole made the compiler copy them through the
        // stack, 16-byte loads of 8-byte stores that cannot be forwarded, a stall on every pair.
        let (s0, s1, s2) = (s[0], s[1], s[2]);
        let (v0, v1, v2) = (v[0], v[1], v[2]);
        found.push(Pair {
            j,
            s: [s0, s1, s2],
            v: [v0, v1, v2],
            d: d2,
        });
    }
}

/// The pairs of atom `i` from the search over all pairs, in the order of `j` (which is the sorted
/// order: each partner comes at one shift only).
#[inline(always)]
fn pairs_of_atom_all<const AVX2: bool>(
    i: usize,
    search: &Search<'_>,
    all: &AllPairs,
    found: &mut Vec<Pair>,
    out: &mut impl Sink,
) {
    let bins = search.bins;
    found.clear();
    let screen2 = search.max_cutoff * search.max_cutoff * (1.0 + 1e-8);
    let (ri, oi) = (bins.points[i], bins.offset[i]);
    let n_atoms = bins.points.len();
    // A half list keeps j > i (and i itself for the self pair).
    let mut block = if search.options.full_list { 0 } else { i };
    while block < n_atoms {
        let end = (block + DIST_BLOCK).min(n_atoms);
        let mut hits = if AVX2 {
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: `AVX2` is only set on the path that checked for AVX2.
                unsafe { all.screen_avx2(i, block, end - block, screen2) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("AVX2 is only detected on x86_64")
        } else {
            all.screen(i, block, end - block, screen2)
        };
        while hits != 0 {
            let j = block + hits.trailing_zeros() as usize;
            hits &= hits - 1;
            let (image, oj) = (all.image(i, j), bins.offset[j]);
            let s = std::array::from_fn(|d| image[d] + oi[d] - oj[d]);
            keep_pair(search, i, ri, j, bins.points[j], s, found);
        }
        block = end;
    }
    finish_distances(found, search.options.quantities);
    out.push_atom(search.options.quantities, i, found.iter());
}

/// Distances from the squared ones kept by [`keep_pair`], when the output wants them: taken as
/// the pairs go out, so that the search itself takes no square root.
#[inline(always)]
fn finish_distances(found: &mut [Pair], q: Quantities) {
    if q.distances {
        for f in found.iter_mut() {
            f.d = f.d.sqrt();
        }
    }
}

/// Buffers reused from one atom to the next.
struct Scratch {
    /// 64-bit sort keys `j | S | index`, or indices into `found` sorted by `(j, S)`.
    order: Vec<u64>,
    /// 32-bit sort keys `j | index`, sorted with AVX2.
    keys: SmallKeys,
    /// The screening's hits of the current atom (AVX2).
    #[cfg(target_arch = "x86_64")]
    hits: Hits,
}

/// The runs of slots that the search of atom `i` visits, in order: `visit(image, base, a, b)`
/// for the slots `a..b`, of lattice image `image` (`base`: the image's shift minus `i`'s wrapped
/// position, Å).
#[inline(always)]
fn for_each_run(bins: &Bins, i: usize, mut visit: impl FnMut([i64; 3], [f64; 3], usize, usize)) {
    let home = bins.unflatten(bins.bin_of[i]);
    let xi = bins.wrapped[i];
    // Only the bins that can hold a neighbour (fewer than `reach` on a side when the bins are
    // much thicker than the cutoff, as in small cells).
    let (below, above) = bins.needed(i);
    let nz = bins.n[2] as i64;
    for dx in -below[0]..=above[0] {
        let Some((cx, ix)) = neighbour_bin(home[0] + dx, 0, bins) else {
            continue;
        };
        for dy in -below[1]..=above[1] {
            let Some((cy, iy)) = neighbour_bin(home[1] + dy, 1, bins) else {
                continue;
            };
            let column = (cx * bins.n[1] + cy) * bins.n[2];
            // Along z, consecutive bins of the same periodic image are contiguous in memory:
            // visit them as one run of slots.
            let (mut lo, hi) = if bins.periodic[2] {
                (home[2] - below[2], home[2] + above[2])
            } else {
                (
                    (home[2] - below[2]).max(0),
                    (home[2] + above[2]).min(nz - 1),
                )
            };
            while lo <= hi {
                let iz = lo.div_euclid(nz);
                let run_end = hi.min((iz + 1) * nz - 1);
                let (c0, c1) = ((lo - iz * nz) as usize, (run_end - iz * nz) as usize);
                lo = run_end + 1;
                let image = [ix, iy, iz];
                let mut shift = [0.0; 3];
                for d in 0..3 {
                    if image[d] != 0 {
                        for c in 0..3 {
                            shift[c] += image[d] as f64 * bins.rows[d][c];
                        }
                    }
                }
                let base = [shift[0] - xi[0], shift[1] - xi[1], shift[2] - xi[2]];
                let (a, b) = (bins.start[column + c0], bins.start[column + c1 + 1]);
                if a < b {
                    visit(image, base, a, b);
                }
            }
        }
    }
}

/// The pairs of atom `i`, appended to `found` in the order found, with squared distances.
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn search_atom<const AVX2: bool>(
    i: usize,
    search: &Search<'_>,
    scratch: &mut Scratch,
    found: &mut Vec<Pair>,
) {
    let Search {
        options,
        bins,
        max_cutoff,
        ..
    } = *search;
    #[cfg(target_arch = "x86_64")]
    let hits = &mut scratch.hits;
    let oi = bins.offset[i];
    // Screening on wrapped positions, with a margin for their rounding; the exact test follows.
    let screen2 = max_cutoff * max_cutoff * (1.0 + 1e-8);
    // With AVX2: all hits first, then all pairs (see `hits_avx2`).
    #[cfg(target_arch = "x86_64")]
    let packed = AVX2 && {
        hits.clear();
        for_each_run(bins, i, |image, base, a, b| {
            // SAFETY: `AVX2` is only set on the path that checked for AVX2; the coordinates
            // are padded at infinity past the last slot.
            let offset = [image[0] + oi[0], image[1] + oi[1], image[2] + oi[2]];
            unsafe { hits.screen_run(bins, a..b, base, offset, screen2) }
        });
        !hits.too_far()
    };
    #[cfg(not(target_arch = "x86_64"))]
    let packed = false;
    if packed {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 is available (`packed`), and the hits come from `screen_run` on these
        // bins, none too far.
        unsafe {
            AtomLanes::new(bins, i, search.cutoff, max_cutoff, options).keep(bins, hits, found)
        };
    } else {
        let ri = bins.points[i];
        for_each_run(bins, i, |image, base, a, b| {
            // Screen a block of slots first (a tight loop the compiler vectorises into a bit
            // mask), then visit the few hits.
            let mut block = a;
            while block < b {
                let end = (block + DIST_BLOCK).min(b);
                let mut hits = screen_block(bins, block, end - block, base, screen2);
                while hits != 0 {
                    let k = hits.trailing_zeros() as usize;
                    hits &= hits - 1;
                    let slot = block + k;
                    let j = bins.order[slot] as usize;
                    let oj = bins.sorted_offset[slot];
                    let s = [
                        image[0] + oi[0] - oj[0] as i64,
                        image[1] + oi[1] - oj[1] as i64,
                        image[2] + oi[2] - oj[2] as i64,
                    ];
                    keep_pair(search, i, ri, j, bins.sorted_points[slot], s, found);
                }
                block = end;
            }
        });
    }
}

/// The pairs `found` of atom `i` (from [`search_atom`]) to `out`: distances from their squares,
/// and sorted when the search wants them sorted.
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn emit_atom<const AVX2: bool>(
    i: usize,
    search: &Search<'_>,
    found: &mut [Pair],
    scratch: &mut Scratch,
    out: &mut impl Sink,
) {
    let Search {
        options,
        sorted,
        small_keys,
        ..
    } = *search;
    let Scratch { order, keys, .. } = scratch;
    let q = options.quantities;
    finish_distances(found, q);
    if !sorted {
        out.push_atom(q, i, found.iter());
        return;
    }
    // The sorted pairs go out through their sort keys, whose low 8 bits index `found`: no
    // sorted copy.
    let found = &found[..];
    #[cfg(target_arch = "x86_64")]
    if AVX2 && small_keys && found.len() <= MAX_KEYS {
        // Sort by j alone (each partner comes once), with a sorting network.
        keys.clear();
        for (k, f) in found.iter().enumerate() {
            keys.push(((f.j as u32) << 8) | k as u32);
        }
        // SAFETY: `AVX2` is only set on the path that checked for AVX2.
        unsafe { keys.sort() };
        let pairs = keys.as_slice().iter();
        out.push_atom(q, i, pairs.map(|&key| &found[(key & 0xff) as usize]));
        return;
    }
    // Sort by (j, S): single integer keys `j | S | index` when everything fits in 64 bits (32 bits
    // of j, 8 bits per shift component, 8 bits of index), tuples otherwise.
    order.clear();
    let mut small = found.len() <= 256;
    if small {
        order.extend(found.iter().enumerate().map(|(k, f)| {
            small &= f.j < (1 << 32) && f.s.iter().all(|&x| (-128..128).contains(&x));
            ((f.j as u64) << 32)
                | ((f.s[0].wrapping_add(128) as u8 as u64) << 24)
                | ((f.s[1].wrapping_add(128) as u8 as u64) << 16)
                | ((f.s[2].wrapping_add(128) as u8 as u64) << 8)
                | k as u64
        }));
    }
    if small {
        order.sort_unstable();
        let pairs = order.iter();
        out.push_atom(q, i, pairs.map(|&key| &found[(key & 0xff) as usize]));
    } else {
        // Indices into `found`, sorted by (j, S).
        order.clear();
        order.extend(0..found.len() as u64);
        order.sort_unstable_by_key(|&k| (found[k as usize].j, found[k as usize].s));
        let pairs = order.iter();
        out.push_atom(q, i, pairs.map(|&k| &found[k as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::super::bins::cubic_bins;
    use super::*;

    /// The ranges cover every atom once, in order, none empty and none longer than the limit;
    /// on several threads the last ones are smaller.
    #[test]
    fn atom_ranges_cover_the_atoms_in_order() {
        for threads in [1, 2, 3, 8] {
            crate::threads::with_threads(threads, || {
                for n_atoms in [0, 1, 63, 64, 65, 100, 257, 1000, 4000, 32000, 32001] {
                    for max_chunk in [256, usize::MAX] {
                        let ranges = atom_ranges(n_atoms, max_chunk);
                        let mut next = 0;
                        for r in &ranges {
                            assert_eq!(r.start, next, "{n_atoms} atoms, {threads} threads");
                            assert!(r.end > r.start || n_atoms == 0);
                            assert!(threads == 1 || r.len() <= max_chunk.max(16));
                            next = r.end;
                        }
                        assert_eq!(next, n_atoms);
                        if threads > 1 && n_atoms >= 4000 {
                            let (first, last) = (&ranges[0], &ranges[ranges.len() - 1]);
                            assert!(4 * last.len() <= first.len() + 3, "{ranges:?}");
                        }
                    }
                }
            })
            .expect("threads");
        }
    }

    /// The screening of a block gives the slots within the radius, for every block of every
    /// length (the last ones reading into the padding), and no bit past the block.
    #[test]
    fn screening_gives_the_slots_within_the_radius() {
        let mut uniform = crate::uniform_numbers(7);
        let points: Vec<[f64; 3]> = (0..150)
            .map(|_| [9.0 * uniform(), 9.0 * uniform(), 9.0 * uniform()])
            .collect();
        let (_, bins) = cubic_bins(points, 9.0, [true; 3], 3.0);
        let base = [-4.5, -4.0, -5.0];
        let within = |slot: usize| {
            let v = [
                bins.xs[slot] + base[0],
                bins.ys[slot] + base[1],
                bins.zs[slot] + base[2],
            ];
            v[0] * v[0] + v[1] * v[1] + v[2] * v[2] < 9.0
        };
        let mut hits = 0;
        for start in 0..150 {
            for len in 1..=64.min(150 - start) {
                let want = (0..len).fold(0u64, |m, k| m | (u64::from(within(start + k)) << k));
                assert_eq!(
                    screen_block(&bins, start, len, base, 9.0),
                    want,
                    "{start}+{len}"
                );
                hits += want.count_ones();
            }
        }
        assert!(hits > 0);
    }

    /// Triclinic cells, mixed periodicity, both list kinds and the options: the search over all
    /// pairs and the cell list give the same pairs in the same order, bit for bit.
    #[test]
    fn all_pairs_and_cell_list_agree() {
        let mut uniform = crate::uniform_numbers(3);
        let mut compared = 0;
        for case in 0..60 {
            let n = 1 + (uniform() * 80.0) as usize;
            let l = 8.0 + 6.0 * uniform();
            let skew = if case % 2 == 0 { 0.0 } else { 3.0 };
            let matrix = [
                [l, 0.0, 0.0],
                [skew * uniform(), l, 0.0],
                [skew * uniform(), skew * uniform(), l],
            ];
            let pbc = [case % 5 != 1, case % 7 != 2, true];
            let cell = Cell::new(matrix, pbc).expect("cell");
            let frame = cell.frame().expect("frame");
            // Some atoms outside the cell.
            let points: Vec<[f64; 3]> = (0..n)
                .map(|_| [0; 3].map(|_| 1.4 * l * uniform() - 0.2 * l))
                .collect();
            let rc = 1.0 + 2.5 * uniform();
            let bins = Bins::new(points.clone(), &cell, &frame, rc).expect("bins");
            for full_list in [true, false] {
                let Some(all) = AllPairs::for_bins(&bins, full_list) else {
                    continue;
                };
                let options = Options {
                    full_list,
                    self_interaction: case % 3 == 0,
                    ..Options::default()
                };
                let cutoff = Cutoff::Uniform(rc);
                let search = |all_pairs| Search::new(&cutoff, &options, &bins, rc, true, all_pairs);
                let (mut by_cells, mut by_pairs) = (PairList::default(), PairList::default());
                fill_range(0..n, &search(None), &mut by_cells);
                fill_range(0..n, &search(Some(&all)), &mut by_pairs);
                assert_eq!(by_cells, by_pairs, "case {case}, full list {full_list}");
                compared += by_cells.len();
            }
        }
        assert!(compared > 1000, "only {compared} pairs compared");
    }

    /// The AVX2 search (hits packed first, pairs made with vector arithmetic) and the portable
    /// one give the same pairs in the same order, bit for bit: triclinic cells, mixed
    /// periodicity, atoms outside the cell, cells smaller than the cutoff (many images), every
    /// cutoff rule, full and half lists, with and without the self pair, sorted or not.
    #[test]
    fn vector_and_portable_searches_agree() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::arch::is_x86_feature_detected!("avx2") {
                return;
            }
            let mut uniform = crate::uniform_numbers(17);
            let mut compared = 0;
            for case in 0..48 {
                let n = 1 + (uniform() * 150.0) as usize;
                let l = [3.0, 9.0, 16.0][case % 3] + 2.0 * uniform();
                let skew = if case % 2 == 0 { 0.0 } else { 0.4 * l };
                let matrix = [
                    [l, 0.0, 0.0],
                    [skew * uniform(), l, 0.0],
                    [skew * uniform(), skew * uniform(), l],
                ];
                let pbc = [case % 5 != 1, case % 7 != 2, case % 4 != 3];
                let cell = Cell::new(matrix, pbc).expect("cell");
                let frame = cell.frame().expect("frame");
                let points: Vec<[f64; 3]> = (0..n)
                    .map(|_| [0; 3].map(|_| 1.6 * l * uniform() - 0.3 * l))
                    .collect();
                let rc = 1.5 + 3.0 * uniform();
                let cutoff = match case % 3 {
                    0 => Cutoff::Uniform(rc),
                    1 => Cutoff::Radii((0..n).map(|_| 0.5 * rc * (0.5 + uniform())).collect()),
                    _ => Cutoff::SpeciesPairs {
                        species: (0..n).map(|k| k % 2).collect(),
                        n_species: 2,
                        table: vec![rc, 0.8 * rc, 0.8 * rc, 0.0],
                    },
                };
                let max_cutoff = cutoff.max();
                let bins = Bins::new(points.clone(), &cell, &frame, max_cutoff).expect("bins");
                for (full_list, sorted) in [(true, true), (false, true), (true, false)] {
                    let options = Options {
                        full_list,
                        self_interaction: case % 4 == 0,
                        ..Options::default()
                    };
                    let search = Search::new(&cutoff, &options, &bins, max_cutoff, sorted, None);
                    let (mut vector, mut portable) = (PairList::default(), PairList::default());
                    // SAFETY: AVX2 is available (checked above).
                    unsafe { fill_range_avx2(0..n, &search, &mut vector) };
                    fill_range_impl::<false, _>(0..n, &search, &mut portable);
                    assert_eq!(
                        vector, portable,
                        "case {case}, full {full_list}, sorted {sorted}"
                    );
                    compared += vector.len();
                }
            }
            assert!(compared > 10000, "only {compared} pairs compared");
        }
    }

    /// A run whose integer offset could overflow the vector path's 32-bit shifts sends the atom
    /// to the portable path.
    #[test]
    fn runs_too_far_out_are_left_to_the_portable_path() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::arch::is_x86_feature_detected!("avx2") {
                return;
            }
            let (_, bins) = cubic_bins(vec![[1.0, 1.0, 1.0], [2.0, 1.0, 1.0]], 9.0, [true; 3], 3.0);
            let mut hits = Hits::default();
            // SAFETY: AVX2 is available; slots 0..2 are the atoms'.
            unsafe { hits.screen_run(&bins, 0..2, [-1.0; 3], [0; 3], 9.0) };
            assert!(!hits.too_far());
            // SAFETY: as above.
            unsafe { hits.screen_run(&bins, 0..2, [-1.0; 3], [2_000_000_000, 0, 0], 9.0) };
            assert!(hits.too_far());
            hits.clear();
            assert!(!hits.too_far());
        }
    }

    /// Sparse systems with many bins (few neighbours per atom: a gas, a bond-length cutoff in a
    /// large box) are searched with the cell list, whose estimate of candidates stays near the
    /// true mean; the all-pairs search would visit every atom from every atom.
    #[test]
    fn sparse_systems_with_many_bins_use_the_cell_list() {
        let mut uniform = crate::uniform_numbers(7);
        for (n, l, rc) in [(32000, 30.0, 0.5), (20000, 60.0, 1.2), (5000, 40.0, 0.9)] {
            let points: Vec<[f64; 3]> = (0..n).map(|_| [0; 3].map(|_| l * uniform())).collect();
            let (_, bins) = cubic_bins(points, l, [true; 3], rc);
            // Uniform density: the atoms in 27 bins of (about) the mean occupancy.
            let n_bins = (bins.n[0] * bins.n[1] * bins.n[2]) as f64;
            let mean = 27.0 * n as f64 / n_bins;
            let estimate = bins.mean_candidates();
            assert!(
                (0.5 * mean..2.0 * mean).contains(&estimate),
                "{n} atoms at {rc} Å: {estimate} candidates per atom estimated, {mean} expected"
            );
            for full_list in [true, false] {
                assert!(AllPairs::for_bins(&bins, full_list).is_none());
            }
        }
    }

    /// Sparse atoms in random order, searched with prefetches (checked to be on), on periodic,
    /// mixed and open boxes: the same pairs as the direct search over every pair at its
    /// nearest image.
    #[test]
    fn sparse_atoms_in_random_order_match_the_direct_search() {
        let mut uniform = crate::uniform_numbers(13);
        let (n, l, rc) = (3000, 40.0, 1.6);
        for pbc in [[true; 3], [true, false, true], [false; 3]] {
            let points: Vec<[f64; 3]> = (0..n).map(|_| [0; 3].map(|_| l * uniform())).collect();
            let (cell, bins) = cubic_bins(points.clone(), l, pbc, rc);
            assert!(Prefetcher::pays(&bins), "no prefetches for {pbc:?}");
            let positions = ndarray::Array2::from_shape_fn((n, 3), |(i, d)| points[i][d]);
            let options = Options::default();
            let list = neighbor_list(positions.view(), &cell, &Cutoff::Uniform(rc), &options)
                .expect("list");
            let mut expected = Vec::new();
            for i in 0..n {
                for j in 0..n {
                    let v: [f64; 3] = std::array::from_fn(|d| {
                        let x = points[j][d] - points[i][d];
                        if pbc[d] {
                            x - l * (x / l).round()
                        } else {
                            x
                        }
                    });
                    let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                    if i != j && r < rc {
                        expected.push((i as i64, j as i64, r));
                    }
                }
            }
            assert!(expected.len() > 500, "{} pairs", expected.len());
            assert_eq!(list.len(), expected.len(), "{pbc:?}");
            for (k, &(i, j, r)) in expected.iter().enumerate() {
                assert_eq!((list.first[k], list.second[k]), (i, j), "{pbc:?}");
                assert!((list.distances[k] - r).abs() < 1e-12);
            }
        }
    }

    /// The all-pairs screening with AVX2 gives the same bits as the portable one.
    #[test]
    fn all_pairs_vector_screening_matches_the_portable_one() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::arch::is_x86_feature_detected!("avx2") {
                return;
            }
            let mut uniform = crate::uniform_numbers(5);
            let points: Vec<[f64; 3]> = (0..70)
                .map(|_| [11.0 * uniform(), 11.0 * uniform(), 11.0 * uniform()])
                .collect();
            let matrix = [[10.0, 0.0, 0.0], [2.0, 10.0, 0.0], [1.0, -3.0, 10.0]];
            let cell = Cell::new(matrix, [true, true, false]).expect("cell");
            let frame = cell.frame().expect("frame");
            let bins = Bins::new(points.clone(), &cell, &frame, 4.0).expect("bins");
            let all = AllPairs::for_bins(&bins, false).expect("all pairs apply");
            let mut hits = 0;
            for i in 0..points.len() {
                for start in 0..points.len() {
                    for len in 1..=64.min(points.len() - start) {
                        let portable = all.screen(i, start, len, 16.0);
                        // SAFETY: AVX2 is available (checked above).
                        let vector = unsafe { all.screen_avx2(i, start, len, 16.0) };
                        assert_eq!(portable, vector, "atom {i}, block {start}..{}", start + len);
                        hits += portable.count_ones();
                    }
                }
            }
            assert!(hits > 0);
        }
    }
}
