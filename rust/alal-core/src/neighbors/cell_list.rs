//! The cell-list search itself.

use ndarray::ArrayView2;

use super::output::{fill_in_parallel, Sink};
use super::{Cutoff, Options, PairList};
use crate::cell::{row_times, Cell, Frame};
use crate::error::{invalid, Result};

/// Most bins per atom: bounds memory for sparse systems (far-apart atoms, tiny cutoffs).
const MAX_BINS_PER_ATOM: usize = 4;
/// A search that would visit more candidate pairs than this is refused instead of hanging.
const MAX_CANDIDATES: f64 = 4e10;
/// A list expected to hold more pairs than this is refused instead of exhausting memory.
const MAX_PAIRS: f64 = 1e9;
/// Squared distances are computed in blocks of this many slots.
const DIST_BLOCK: usize = 64;
/// Bins are made slightly thicker than the cutoff so that rounding never hides a neighbour.
const BIN_SLACK: f64 = 1e-8;

/// Atoms sorted into bins, with the integer lattice offsets that wrapped them into the cell.
struct Bins {
    n: [usize; 3],
    /// How many bins to search on each side along each axis.
    reach: [i64; 3],
    periodic: [bool; 3],
    /// Bin of each atom (flat index).
    bin_of: Vec<usize>,
    /// Start of each bin in `order` (length `n_bins + 1`).
    start: Vec<usize>,
    /// Atom indices sorted by bin.
    order: Vec<u32>,
    /// Wrapped Cartesian positions in bin order (x, y, z as separate arrays), Å.
    xs: Vec<f64>,
    ys: Vec<f64>,
    zs: Vec<f64>,
    /// Wrapped Cartesian position of each atom, Å.
    wrapped: Vec<[f64; 3]>,
    /// The user's positions, by atom and in bin order, Å.
    points: Vec<[f64; 3]>,
    sorted_points: Vec<[f64; 3]>,
    /// `offset` in bin order.
    sorted_offset: Vec<[i32; 3]>,
    /// Integer offset of each atom: `r = wrapped + offset · cell`.
    offset: Vec<[i64; 3]>,
    rows: [[f64; 3]; 3],
    /// Number of bins searched around each bin.
    images: f64,
    n_atoms: usize,
    /// Mean number density of the binned region, Å⁻³ (0 if it is flat), and the cutoff sphere's volume.
    density: f64,
    sphere_volume: f64,
    /// Atoms in the bins searched around each bin.
    local_candidates: Vec<usize>,
    /// Share of the searched volume inside the cutoff sphere (1 when unknown).
    sphere_fraction: f64,
}

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
    let points: Vec<[f64; 3]> = positions.outer_iter().map(|r| [r[0], r[1], r[2]]).collect();
    if let Some(k) = points.iter().position(|p| !p.iter().all(|x| x.is_finite())) {
        return Err(invalid!(
            "position of atom {k} is not finite: {:?}",
            points[k]
        ));
    }
    cutoff.validate(n_atoms)?;
    let max_cutoff = cutoff.max();
    if n_atoms == 0 || !(max_cutoff > 0.0) {
        return Ok(PairList::default());
    }
    let frame = cell.frame()?;
    let bins = Bins::new(&points, cell, &frame, max_cutoff)?;

    let threads = crate::threads::current_threads().max(1);
    let search = Search {
        cutoff,
        options,
        bins: &bins,
        max_cutoff,
    };
    let run = |atoms: std::ops::Range<usize>| -> Result<PairList> {
        let mut out = PairList::try_with_capacity(bins.expected_pairs(atoms.len()), options)?;
        fill_range(atoms, &search, &mut out);
        Ok(out)
    };
    if threads == 1 || n_atoms < 64 {
        return run(0..n_atoms);
    }
    let chunk = n_atoms.div_ceil(8 * threads).max(16);
    let ranges: Vec<_> = (0..n_atoms)
        .step_by(chunk)
        .map(|a| a..(a + chunk).min(n_atoms))
        .collect();
    let capacities: Vec<usize> = ranges
        .iter()
        .map(|r| bins.capacity_for(r.clone()))
        .collect();
    fill_in_parallel(&capacities, options.quantities, |k, region| {
        fill_range(ranges[k].clone(), &search, region)
    })
}

impl Bins {
    fn new(points: &[[f64; 3]], cell: &Cell, frame: &Frame, cutoff: f64) -> Result<Self> {
        let n_atoms = points.len();
        let periodic = cell.pbc;
        let mut offset = vec![[0i64; 3]; n_atoms];
        let mut reduced: Vec<[f64; 3]> = Vec::with_capacity(n_atoms);
        for (k, &p) in points.iter().enumerate() {
            let mut s = row_times(p, &frame.inverse);
            for d in 0..3 {
                if periodic[d] {
                    let o = s[d].floor();
                    if o.abs() > 5e8 {
                        return Err(invalid!(
                            "atom {k} is {o:e} cells away from the cell: positions too far out"
                        ));
                    }
                    offset[k][d] = o as i64;
                    s[d] -= o;
                }
            }
            reduced.push(s);
        }
        // Extent of the binned region along each axis, in reduced units and in Å.
        let mut lo = [0.0; 3];
        let mut span = [1.0; 3];
        let mut thickness = frame.plane_spacing;
        for d in 0..3 {
            if !periodic[d] {
                let (mn, mx) = reduced
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| {
                        (a.min(s[d]), b.max(s[d]))
                    });
                lo[d] = mn;
                span[d] = mx - mn;
                thickness[d] = mx - mn; // rows along non-periodic axes are unit vectors
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
        let bin_index = |s: &[f64; 3]| -> usize {
            let mut flat = 0usize;
            for d in 0..3 {
                let frac = if span[d] > 0.0 {
                    (s[d] - lo[d]) / span[d]
                } else {
                    0.0
                };
                let b = ((frac * n[d] as f64).floor().max(0.0) as usize).min(n[d] - 1);
                flat = flat * n[d] + b;
            }
            flat
        };
        let bin_of: Vec<usize> = reduced.iter().map(bin_index).collect();
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
        let rows = cell.matrix;
        let wrapped: Vec<[f64; 3]> = points
            .iter()
            .zip(&offset)
            .map(|(p, o)| {
                let mut w = *p;
                for d in 0..3 {
                    if o[d] != 0 {
                        for c in 0..3 {
                            w[c] -= o[d] as f64 * rows[d][c];
                        }
                    }
                }
                w
            })
            .collect();
        let xs = order.iter().map(|&k| wrapped[k as usize][0]).collect();
        let ys = order.iter().map(|&k| wrapped[k as usize][1]).collect();
        let zs = order.iter().map(|&k| wrapped[k as usize][2]).collect();
        let sorted_points = order.iter().map(|&k| points[k as usize]).collect();
        let local_candidates = local_counts(&start, n, reach, periodic, n_atoms);
        let search_volume = images * region / n_bins as f64;
        let sphere_fraction = if search_volume > 0.0 {
            (sphere_volume / search_volume).min(1.0)
        } else {
            1.0
        };
        let points = points.to_vec();
        let sorted_offset = order
            .iter()
            .map(|&k| offset[k as usize].map(|x| x as i32))
            .collect();
        Ok(Bins {
            n,
            reach,
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
            offset,
            rows,
            images,
            n_atoms,
            density,
            sphere_volume,
            local_candidates,
            sphere_fraction,
        })
    }

    /// A generous estimate of the number of pairs of `n` atoms, from the mean density of the
    /// binned region (used to reserve memory once instead of growing).
    fn expected_pairs(&self, n: usize) -> usize {
        let candidates = self.images * self.n_atoms as f64 / self.n_bins() as f64;
        // Neighbours within the sphere at the mean density, capped by the candidates searched.
        let per_atom = if self.density > 0.0 && self.density.is_finite() {
            (1.05 * self.density * self.sphere_volume + 1.0).min(candidates)
        } else {
            0.3 * candidates
        };
        ((per_atom * n as f64) as usize).min(1 << 28)
    }

    /// Room to give a range of atoms in the shared output: the expected pairs from the local
    /// density of each atom's bin neighbourhood, with a margin, never more than its candidates.
    fn capacity_for(&self, atoms: std::ops::Range<usize>) -> usize {
        let mut total = 0.0;
        for i in atoms {
            let c = self.local_candidates[self.bin_of[i]] as f64;
            total += c.min(1.25 * c * self.sphere_fraction + 4.0);
        }
        total as usize + 16
    }

    fn n_bins(&self) -> usize {
        self.n[0] * self.n[1] * self.n[2]
    }

    fn unflatten(&self, flat: usize) -> [i64; 3] {
        let z = flat % self.n[2];
        let y = (flat / self.n[2]) % self.n[1];
        let x = flat / (self.n[1] * self.n[2]);
        [x as i64, y as i64, z as i64]
    }
}

/// Number of atoms in the bins searched around each bin (with periodic wrapping), or, when that
/// would cost more than the search itself, the total number of atoms times the images searched.
fn local_counts(
    start: &[usize],
    n: [usize; 3],
    reach: [i64; 3],
    periodic: [bool; 3],
    n_atoms: usize,
) -> Vec<usize> {
    let n_bins = n[0] * n[1] * n[2];
    let images: i64 = reach.iter().map(|&r| 2 * r + 1).product();
    if (n_bins as f64) * (images as f64) > 64.0 * n_atoms as f64 + 1e5 {
        return vec![n_atoms * images as usize; n_bins];
    }
    let count = |b: usize| start[b + 1] - start[b];
    let mut out = vec![0usize; n_bins];
    for x in 0..n[0] as i64 {
        for y in 0..n[1] as i64 {
            for z in 0..n[2] as i64 {
                let mut total = 0;
                for dx in -reach[0]..=reach[0] {
                    let Some(cx) = wrap(x + dx, n[0], periodic[0]) else {
                        continue;
                    };
                    for dy in -reach[1]..=reach[1] {
                        let Some(cy) = wrap(y + dy, n[1], periodic[1]) else {
                            continue;
                        };
                        for dz in -reach[2]..=reach[2] {
                            let Some(cz) = wrap(z + dz, n[2], periodic[2]) else {
                                continue;
                            };
                            total += count((cx * n[1] + cy) * n[2] + cz);
                        }
                    }
                }
                out[((x as usize) * n[1] + y as usize) * n[2] + z as usize] = total;
            }
        }
    }
    out
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

/// A pair found for the current atom, before sorting.
#[derive(Debug, Clone, Copy)]
struct Found {
    j: usize,
    s: [i64; 3],
    v: [f64; 3],
    /// Squared distance while searching, distance once sorted.
    d: f64,
}

/// What a search needs besides the atom: the cutoff rule, options and bins.
struct Search<'a> {
    cutoff: &'a Cutoff,
    options: &'a Options,
    bins: &'a Bins,
    max_cutoff: f64,
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
    fill_range_impl(atoms, search, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_range_avx2<S: Sink>(
    atoms: std::ops::Range<usize>,
    search: &Search<'_>,
    out: &mut S,
) {
    fill_range_impl(atoms, search, out)
}

#[inline(always)]
fn fill_range_impl<S: Sink>(atoms: std::ops::Range<usize>, search: &Search<'_>, out: &mut S) {
    let (mut found, mut order) = (Vec::new(), Vec::new());
    for i in atoms {
        pairs_of_atom(i, search, &mut found, &mut order, out);
    }
}

#[inline(always)]
fn pairs_of_atom(
    i: usize,
    search: &Search<'_>,
    found: &mut Vec<Found>,
    order: &mut Vec<u64>,
    out: &mut impl Sink,
) {
    let Search {
        cutoff,
        options,
        bins,
        max_cutoff,
    } = *search;
    found.clear();
    let home = bins.unflatten(bins.bin_of[i]);
    let xi = bins.wrapped[i];
    let oi = bins.offset[i];
    // Screening on wrapped positions, with a margin for their rounding; the exact test follows.
    let screen2 = max_cutoff * max_cutoff * (1.0 + 1e-8);
    let ri = bins.points[i];
    let uniform = matches!(cutoff, Cutoff::Uniform(_));
    let [rx, ry, rz] = bins.reach;
    let (xs, ys, zs) = (&bins.xs[..], &bins.ys[..], &bins.zs[..]);
    let nz = bins.n[2] as i64;
    for dx in -rx..=rx {
        let Some((cx, ix)) = neighbour_bin(home[0] + dx, 0, bins) else {
            continue;
        };
        for dy in -ry..=ry {
            let Some((cy, iy)) = neighbour_bin(home[1] + dy, 1, bins) else {
                continue;
            };
            let column = (cx * bins.n[1] + cy) * bins.n[2];
            // Along z, consecutive bins of the same periodic image are contiguous in memory:
            // visit them as one run of slots.
            let (mut lo, hi) = if bins.periodic[2] {
                (home[2] - rz, home[2] + rz)
            } else {
                ((home[2] - rz).max(0), (home[2] + rz).min(nz - 1))
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
                // Squared distances of a block of slots first (a tight loop the compiler
                // vectorises), then the few hits.
                let mut block = a;
                while block < b {
                    let end = (block + DIST_BLOCK).min(b);
                    let mut dist2 = [0.0f64; DIST_BLOCK];
                    for (d2, ((&x, &y), &z)) in dist2.iter_mut().zip(
                        xs[block..end]
                            .iter()
                            .zip(&ys[block..end])
                            .zip(&zs[block..end]),
                    ) {
                        let (vx, vy, vz) = (x + base[0], y + base[1], z + base[2]);
                        *d2 = vx * vx + vy * vy + vz * vz;
                    }
                    for (k, &d2) in dist2[..end - block].iter().enumerate() {
                        if d2 >= screen2 {
                            continue;
                        }
                        let slot = block + k;
                        let j = bins.order[slot] as usize;
                        let oj = bins.sorted_offset[slot];
                        let s = [
                            image[0] + oi[0] - oj[0] as i64,
                            image[1] + oi[1] - oj[1] as i64,
                            image[2] + oi[2] - oj[2] as i64,
                        ];
                        if i == j && s == [0, 0, 0] && !options.self_interaction {
                            continue;
                        }
                        if !options.full_list && !in_half_list(i, j, s) {
                            continue;
                        }
                        // Exact vector as ASE defines it, D = r[j] − r[i] + S·cell: antisymmetric
                        // under (i, j, S) → (j, i, −S), so full lists stay mirror-symmetric even at
                        // the cutoff.
                        let pj = bins.sorted_points[slot];
                        let mut v = [pj[0] - ri[0], pj[1] - ri[1], pj[2] - ri[2]];
                        for d in 0..3 {
                            if s[d] != 0 {
                                let sd = s[d] as f64;
                                for c in 0..3 {
                                    v[c] += sd * bins.rows[d][c];
                                }
                            }
                        }
                        let d2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
                        let limit = if uniform {
                            max_cutoff
                        } else {
                            cutoff.pair(i, j)
                        };
                        // `d < limit` on the rounded distance, decided from d² except within a few
                        // ulp of the limit, where the square root settles it.
                        let limit2 = limit * limit;
                        if d2 < limit2 * (1.0 - 1e-14)
                            || (d2 < limit2 * (1.0 + 1e-14) && d2.sqrt() < limit)
                        {
                            found.push(Found { j, s, v, d: d2 });
                        }
                    }
                    block = end;
                }
            }
        }
    }
    // Distances, in one pass over the hits (no square root on the search path).
    if options.quantities.distances {
        for f in found.iter_mut() {
            f.d = f.d.sqrt();
        }
    }
    // Sort by (j, S): single integer keys `j | S | index` when everything fits in 64 bits (32 bits
    // of j, 8 bits per shift component, 8 bits of index), tuples otherwise.
    order.clear();
    let small = found.len() <= 256
        && found
            .iter()
            .all(|f| f.j < (1 << 32) && f.s.iter().all(|&x| (-128..128).contains(&x)));
    if small {
        order.extend(found.iter().enumerate().map(|(k, f)| {
            ((f.j as u64) << 32)
                | (((f.s[0] + 128) as u64) << 24)
                | (((f.s[1] + 128) as u64) << 16)
                | (((f.s[2] + 128) as u64) << 8)
                | k as u64
        }));
        order.sort_unstable();
    } else {
        found.sort_unstable_by_key(|f| (f.j, f.s));
        order.extend(0..found.len() as u64);
    }
    let q = options.quantities;
    for &key in order.iter() {
        let f = &found[if small {
            (key & 0xff) as usize
        } else {
            key as usize
        }];
        out.push(q, i, f.j, f.s, f.v, f.d);
    }
}

/// The bin at (possibly out-of-range) index `c` along `axis`, and the lattice image it lies in.
#[inline(always)]
fn neighbour_bin(c: i64, axis: usize, bins: &Bins) -> Option<(usize, i64)> {
    let n = bins.n[axis] as i64;
    if bins.periodic[axis] {
        Some((c.rem_euclid(n) as usize, c.div_euclid(n)))
    } else if (0..n).contains(&c) {
        Some((c as usize, 0))
    } else {
        None
    }
}
