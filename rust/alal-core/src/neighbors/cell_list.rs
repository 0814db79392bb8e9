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
    /// Wrapped Cartesian positions in bin order, Å.
    sorted_positions: Vec<[f64; 3]>,
    /// Wrapped Cartesian position of each atom, Å.
    wrapped: Vec<[f64; 3]>,
    /// Integer offset of each atom: `r = wrapped + offset · cell`.
    offset: Vec<[i64; 3]>,
    rows: [[f64; 3]; 3],
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

    let chunk = (n_atoms / (8 * rayon::current_num_threads().max(1))).clamp(8, 256);
    let parts: Vec<PairList> = (0..n_atoms)
        .into_par_iter()
        .chunks(chunk)
        .map(|atoms| {
            let mut out = PairList::default();
            let mut scratch = Vec::new();
            for i in atoms {
                pairs_of_atom(i, &points, cell, cutoff, options, &bins, max_cutoff, &mut scratch, &mut out);
            }
            out
        })
        .collect();
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
        let sorted_positions = order.iter().map(|&k| wrapped[k]).collect();
        Ok(Bins { n, reach, periodic, bin_of, start, order, sorted_positions, wrapped, offset, rows })
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

#[allow(clippy::too_many_arguments)]
fn pairs_of_atom(
    i: usize,
    points: &[[f64; 3]],
    cell: &Cell,
    cutoff: &Cutoff,
    options: &Options,
    bins: &Bins,
    max_cutoff: f64,
    scratch: &mut Vec<(usize, [i64; 3])>,
    out: &mut PairList,
) {
    scratch.clear();
    let home = bins.unflatten(bins.bin_of[i]);
    let xi = bins.wrapped[i];
    let reach2 = max_cutoff * max_cutoff * (1.0 + 1e-10);
    let [rx, ry, rz] = bins.reach;
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
                for (slot, xj) in bins.sorted_positions[a..b].iter().enumerate() {
                    let v = [xj[0] + base[0], xj[1] + base[1], xj[2] + base[2]];
                    let d2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
                    if d2 < reach2 {
                        scratch.push((bins.order[a + slot], image));
                    }
                }
            }
        }
    }
    // Exact test in the user's frame, as ASE computes it: D = r[j] - r[i] + S · cell.
    let oi = bins.offset[i];
    let ri = points[i];
    let mut accepted: Vec<(usize, [i64; 3], [f64; 3], f64)> = Vec::with_capacity(scratch.len());
    for &(j, image) in scratch.iter() {
        let oj = bins.offset[j];
        let s = [image[0] + oi[0] - oj[0], image[1] + oi[1] - oj[1], image[2] + oi[2] - oj[2]];
        let is_self = i == j && s == [0, 0, 0];
        if is_self && !options.self_interaction {
            continue;
        }
        if !options.full_list && !in_half_list(i, j, s) {
            continue;
        }
        let rj = points[j];
        let mut v = [rj[0] - ri[0], rj[1] - ri[1], rj[2] - ri[2]];
        for d in 0..3 {
            if s[d] != 0 {
                for c in 0..3 {
                    v[c] += s[d] as f64 * cell.matrix[d][c];
                }
            }
        }
        let dist = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        if dist < cutoff.pair(i, j) {
            accepted.push((j, s, v, dist));
        }
    }
    accepted.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let q = options.quantities;
    for (j, s, v, dist) in accepted {
        out.first.push(i as i64);
        out.second.push(j as i64);
        if q.shifts {
            out.shifts.extend_from_slice(&s);
        }
        if q.vectors {
            out.vectors.extend_from_slice(&v);
        }
        if q.distances {
            out.distances.push(dist);
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
