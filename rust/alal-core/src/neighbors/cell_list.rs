//! The cell-list search itself.

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::{Cutoff, Options, PairList};
use crate::cell::{row_times, Cell, Frame};
use crate::error::{invalid, Result};

/// Most bins per atom: bounds memory for sparse systems (far-apart atoms, tiny cutoffs).
const MAX_BINS_PER_ATOM: usize = 4;
/// A search that would visit more candidate pairs than this is refused instead of hanging.
const MAX_CANDIDATES: f64 = 4e10;
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
    order: Vec<usize>,
    /// Wrapped Cartesian positions in bin order (x, y, z as separate arrays), Å.
    xs: Vec<f64>,
    ys: Vec<f64>,
    zs: Vec<f64>,
    /// Wrapped Cartesian position of each atom, Å.
    wrapped: Vec<[f64; 3]>,
    /// `offset` in bin order.
    sorted_offset: Vec<[i64; 3]>,
    /// Integer offset of each atom: `r = wrapped + offset · cell`.
    offset: Vec<[i64; 3]>,
    rows: [[f64; 3]; 3],
    /// Number of bins searched around each bin.
    images: f64,
    n_atoms: usize,
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
        return Err(invalid!("positions must have shape (n_atoms, 3), got {:?}", positions.shape()));
    }
    let n_atoms = positions.nrows();
    let points: Vec<[f64; 3]> = positions.outer_iter().map(|r| [r[0], r[1], r[2]]).collect();
    if let Some(k) = points.iter().position(|p| !p.iter().all(|x| x.is_finite())) {
        return Err(invalid!("position of atom {k} is not finite: {:?}", points[k]));
    }
    cutoff.validate(n_atoms)?;
    let max_cutoff = cutoff.max();
    if n_atoms == 0 || !(max_cutoff > 0.0) {
        return Ok(PairList::default());
    }
    let frame = cell.frame()?;
    let bins = Bins::new(&points, cell, &frame, max_cutoff)?;

    let threads = rayon::current_num_threads().max(1);
    let run = |atoms: std::ops::Range<usize>| {
        let mut out = PairList::with_capacity(bins.expected_pairs(atoms.len()), options);
        let (mut found, mut order, mut dist2) = (Vec::new(), Vec::new(), Vec::new());
        for i in atoms {
            pairs_of_atom(i, cutoff, options, &bins, max_cutoff, &mut found, &mut order, &mut dist2, &mut out);
        }
        out
    };
    if threads == 1 || n_atoms < 64 {
        return Ok(run(0..n_atoms));
    }
    let chunk = n_atoms.div_ceil(8 * threads).max(16);
    let ranges: Vec<_> = (0..n_atoms).step_by(chunk).map(|a| a..(a + chunk).min(n_atoms)).collect();
    let parts: Vec<PairList> = ranges.into_par_iter().map(run).collect();
    Ok(concatenate(parts))
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
                    if o.abs() > 1e15 {
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
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| (a.min(s[d]), b.max(s[d])));
                lo[d] = mn;
                span[d] = mx - mn;
                thickness[d] = mx - mn; // rows along non-periodic axes are unit vectors
            }
        }
        let mut n = [1usize; 3];
        for d in 0..3 {
            let k = (thickness[d] / (cutoff * (1.0 + BIN_SLACK))).floor();
            n[d] = if k.is_finite() && k >= 1.0 { k.min(1e6) as usize } else { 1 };
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
                let frac = if span[d] > 0.0 { (s[d] - lo[d]) / span[d] } else { 0.0 };
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
        let mut order = vec![0usize; n_atoms];
        for (k, &b) in bin_of.iter().enumerate() {
            order[fill[b]] = k;
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
        let xs = order.iter().map(|&k| wrapped[k][0]).collect();
        let ys = order.iter().map(|&k| wrapped[k][1]).collect();
        let zs = order.iter().map(|&k| wrapped[k][2]).collect();
        let sorted_offset = order.iter().map(|&k| offset[k]).collect();
        Ok(Bins {
            n, reach, periodic, bin_of, start, order, xs, ys, zs, sorted_offset, wrapped, offset, rows, images,
            n_atoms,
        })
    }

    /// A generous estimate of the number of pairs of `n` atoms, from the mean density of the
    /// binned region (used to reserve memory once instead of growing).
    fn expected_pairs(&self, n: usize) -> usize {
        let per_atom = (self.images * self.n_atoms as f64 / self.n_bins() as f64) * 0.3;
        ((per_atom * n as f64) as usize).min(1 << 28)
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
    d: f64,
}

#[allow(clippy::too_many_arguments)]
fn pairs_of_atom(
    i: usize,
    cutoff: &Cutoff,
    options: &Options,
    bins: &Bins,
    max_cutoff: f64,
    found: &mut Vec<Found>,
    order: &mut Vec<(u64, u32)>,
    dist2: &mut Vec<f64>,
    out: &mut PairList,
) {
    found.clear();
    let home = bins.unflatten(bins.bin_of[i]);
    let xi = bins.wrapped[i];
    let oi = bins.offset[i];
    let max2 = max_cutoff * max_cutoff;
    let uniform = matches!(cutoff, Cutoff::Uniform(_));
    let [rx, ry, rz] = bins.reach;
    let (xs, ys, zs) = (&bins.xs[..], &bins.ys[..], &bins.zs[..]);
    for dx in -rx..=rx {
        let Some((cx, ix)) = neighbour_bin(home[0] + dx, 0, bins) else { continue };
        for dy in -ry..=ry {
            let Some((cy, iy)) = neighbour_bin(home[1] + dy, 1, bins) else { continue };
            for dz in -rz..=rz {
                let Some((cz, iz)) = neighbour_bin(home[2] + dz, 2, bins) else { continue };
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
                let flat = (cx * bins.n[1] + cy) * bins.n[2] + cz;
                let (a, b) = (bins.start[flat], bins.start[flat + 1]);
                // Squared distances of the whole bin first (a tight loop the compiler vectorises),
                // then the few hits.
                dist2.clear();
                dist2.extend(
                    xs[a..b].iter().zip(&ys[a..b]).zip(&zs[a..b]).map(|((&x, &y), &z)| {
                        let (vx, vy, vz) = (x + base[0], y + base[1], z + base[2]);
                        vx * vx + vy * vy + vz * vz
                    }),
                );
                for (k, &d2) in dist2.iter().enumerate() {
                    if d2 >= max2 {
                        continue;
                    }
                    let slot = a + k;
                    let j = bins.order[slot];
                    let oj = bins.sorted_offset[slot];
                    let s = [image[0] + oi[0] - oj[0], image[1] + oi[1] - oj[1], image[2] + oi[2] - oj[2]];
                    if i == j && s == [0, 0, 0] && !options.self_interaction {
                        continue;
                    }
                    if !options.full_list && !in_half_list(i, j, s) {
                        continue;
                    }
                    let d = d2.sqrt();
                    let limit = if uniform { max_cutoff } else { cutoff.pair(i, j) };
                    if d < limit {
                        let v = [xs[slot] + base[0], ys[slot] + base[1], zs[slot] + base[2]];
                        found.push(Found { j, s, v, d });
                    }
                }
            }
        }
    }
    // Sort by (j, S) through packed integer keys; tuples only for absurdly large shifts.
    order.clear();
    let small = found.iter().all(|f| f.s.iter().all(|&x| (-1024..1024).contains(&x)) && f.j < (1 << 30));
    if small {
        order.extend(found.iter().enumerate().map(|(k, f)| {
            let key = ((f.j as u64) << 33)
                | (((f.s[0] + 1024) as u64) << 22)
                | (((f.s[1] + 1024) as u64) << 11)
                | ((f.s[2] + 1024) as u64);
            (key, k as u32)
        }));
        order.sort_unstable_by_key(|x| x.0);
    } else {
        found.sort_unstable_by(|a, b| (a.j, a.s).cmp(&(b.j, b.s)));
        order.extend((0..found.len()).map(|k| (0, k as u32)));
    }
    let q = options.quantities;
    for &(_, k) in order.iter() {
        let f = &found[k as usize];
        out.first.push(i as i64);
        out.second.push(f.j as i64);
        if q.shifts {
            out.shifts.extend_from_slice(&f.s);
        }
        if q.vectors {
            out.vectors.extend_from_slice(&f.v);
        }
        if q.distances {
            out.distances.push(f.d);
        }
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

fn concatenate(parts: Vec<PairList>) -> PairList {
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = PairList {
        first: Vec::with_capacity(total),
        second: Vec::with_capacity(total),
        shifts: Vec::with_capacity(3 * total),
        vectors: Vec::with_capacity(3 * total),
        distances: Vec::with_capacity(total),
    };
    for p in parts {
        out.first.extend_from_slice(&p.first);
        out.second.extend_from_slice(&p.second);
        out.shifts.extend_from_slice(&p.shifts);
        out.vectors.extend_from_slice(&p.vectors);
        out.distances.extend_from_slice(&p.distances);
    }
    out
}
