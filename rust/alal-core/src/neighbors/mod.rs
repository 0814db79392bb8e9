//! Neighbour lists with linear-time cell lists (`cell_list`), or, in small cells whose lattice
//! planes are more than twice the cutoff apart, a search over all pairs at their nearest image
//! (`all_pairs`).
//!
//! Conventions are ASE's (`ase.neighborlist.neighbor_list`): a pair `(i, j, S)` means that atom `j`
//! shifted by the integer lattice translation `S` is within the cutoff of atom `i`;
//! `D = r[j] - r[i] + S · cell` (Å) and `d = |D|`, with `d < cutoff` strictly. Along non-periodic
//! directions `S` is always 0. Pairs come out sorted by `(i, j, S)`, whatever the number of threads.

mod all_pairs;
mod bins;
mod cell_list;
mod cutoff;
mod hits_avx2;
mod output;
mod prefetch;
mod small_sort;
mod stream_copy;

pub use cell_list::neighbor_list;
pub(crate) use cell_list::neighbor_search;
pub use cutoff::Cutoff;
pub(crate) use output::{AtomPairs, Pair, Sink};

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::cell::Cell;
use crate::error::Result;

/// Which optional outputs to fill (`i` and `j` are always filled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantities {
    /// Integer lattice shifts `S` (3 per pair).
    pub shifts: bool,
    /// Pair vectors `D` in Å (3 per pair).
    pub vectors: bool,
    /// Pair distances `d` in Å.
    pub distances: bool,
}

impl Quantities {
    /// Everything.
    pub const ALL: Quantities = Quantities {
        shifts: true,
        vectors: true,
        distances: true,
    };
}

/// Options of a neighbour-list computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Full list (every pair twice, as `(i, j, S)` and `(j, i, -S)`) or half list (once).
    pub full_list: bool,
    /// Include each atom as its own neighbour at zero shift (distance 0).
    pub self_interaction: bool,
    /// Optional outputs.
    pub quantities: Quantities,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            full_list: true,
            self_interaction: false,
            quantities: Quantities::ALL,
        }
    }
}

/// The pairs found, as flat arrays (struct of arrays), sorted by `(i, j, S)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairList {
    /// Central atom `i` of each pair.
    pub first: Vec<i64>,
    /// Neighbour atom `j` of each pair.
    pub second: Vec<i64>,
    /// Lattice shifts, 3 per pair (row-major `(n_pairs, 3)`), empty if not requested.
    pub shifts: Vec<i32>,
    /// Pair vectors `D` in Å, 3 per pair, empty if not requested.
    pub vectors: Vec<f64>,
    /// Pair distances `d` in Å, empty if not requested.
    pub distances: Vec<f64>,
}

impl PairList {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.first.len()
    }

    /// An empty list with room for `n` pairs of the requested quantities; an error (not an abort)
    /// if that memory cannot be had.
    pub fn try_with_capacity(n: usize, options: &Options) -> crate::Result<Self> {
        use output::with_room;
        let q = options.quantities;
        Ok(PairList {
            first: with_room(n)?,
            second: with_room(n)?,
            shifts: with_room(if q.shifts { 3 * n } else { 0 })?,
            vectors: with_room(if q.vectors { 3 * n } else { 0 })?,
            distances: with_room(if q.distances { n } else { 0 })?,
        })
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    /// Remove every pair, keeping the memory.
    pub fn clear(&mut self) {
        self.first.clear();
        self.second.clear();
        self.shifts.clear();
        self.vectors.clear();
        self.distances.clear();
    }
}

/// An input error about structure `k` of a batch, saying which one (other errors unchanged).
pub(crate) fn in_structure(k: usize) -> impl Fn(crate::Error) -> crate::Error {
    move |e| match e {
        crate::Error::InvalidInput(m) => crate::Error::InvalidInput(format!("structure {k}: {m}")),
        other => other,
    }
}

/// Neighbour lists of many structures at once, in parallel over structures.
pub fn neighbor_lists(
    systems: &[(ArrayView2<'_, f64>, Cell)],
    cutoff: &Cutoff,
    options: &Options,
) -> Result<Vec<PairList>> {
    let one = |(k, (positions, cell)): (usize, &(ArrayView2<'_, f64>, Cell))| {
        neighbor_list(*positions, cell, cutoff, options).map_err(in_structure(k))
    };
    if crate::threads::current_threads() == 1 {
        systems.iter().enumerate().map(one).collect()
    } else {
        systems.par_iter().enumerate().map(one).collect()
    }
}
