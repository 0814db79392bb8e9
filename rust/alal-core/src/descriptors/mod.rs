//! ANI-style atom-centred descriptors with analytic vector–Jacobian and Jacobian–vector products.
//!
//! All entry points take a batch of [`Structure`]s; atoms of all structures are concatenated in
//! the outputs, and work is spread over all atoms of the batch, so one large structure and many
//! small ones both use every thread.

mod fastmath;
mod kernel;
mod params;

pub use params::AniParams;

use ndarray::{s, Array2, Array3, Array4, ArrayView2, ArrayView3, ArrayView4, Axis};
use rayon::prelude::*;

use crate::cell::Cell;
use crate::error::{invalid, Error, Result};
use crate::neighbors::{
    in_structure, neighbor_search, AtomPairs, Cutoff, Options, Pair, Quantities, Sink,
};
use kernel::{Kernel, Neighbour, Scratch};

/// Whether the current computation runs on one thread (then without rayon).
fn sequential() -> bool {
    crate::threads::current_threads() == 1
}

/// Pairs closer than this (Å) are refused: the angular terms and all gradients divide by distances.
pub const MIN_DISTANCE: f64 = 1e-6;

/// One structure: positions `(n_atoms, 3)` in Å, its cell, and each atom's species index
/// (`0..n_species`, in the order of the parameter set's species).
#[derive(Debug, Clone)]
pub struct Structure<'a> {
    pub positions: ArrayView2<'a, f64>,
    pub cell: Cell,
    pub species: &'a [usize],
}

/// Gradients returned by [`AniDescriptor::vjp`].
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// `∂L/∂positions`, `(n_atoms_total, 3)`, eV/Å when `L` is an energy in eV.
    pub positions: Array2<f64>,
    /// `∂L/∂cell` of each structure (3×3, rows as lattice vectors), at fixed positions.
    pub cells: Vec<[[f64; 3]; 3]>,
    /// Virial of each structure, `W = −Σ_pairs D ⊗ ∂L/∂D` (eV): the stress is `−W / V`.
    pub virials: Vec<[[f64; 3]; 3]>,
}

/// Gradients returned by [`AniDescriptor::vjp_many_prepared`], one per cotangent `k`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManyGradients {
    /// `∂L_k/∂positions`, `(m, n_atoms_total, 3)`.
    pub positions: Array3<f64>,
    /// `∂L_k/∂cell` of each structure, `(m, n_structures, 3, 3)`, at fixed positions.
    pub cells: Array4<f64>,
    /// Virial of each structure, `(m, n_structures, 3, 3)`, `W = −Σ_pairs D ⊗ ∂L_k/∂D` (eV).
    pub virials: Array4<f64>,
}

/// The neighbourhoods of a batch, found once by [`AniDescriptor::prepare`] and reused by the
/// `*_prepared` methods. Holds about 100 bytes per pair.
#[derive(Debug, Clone)]
pub struct Prepared {
    nh: Neighbourhoods,
    n_structures: usize,
    params: AniParams,
}

impl Prepared {
    /// Atoms in the batch.
    pub fn n_atoms(&self) -> usize {
        self.nh.n_atoms()
    }

    /// Structures in the batch.
    pub fn n_structures(&self) -> usize {
        self.n_structures
    }

    /// Neighbour pairs (within the larger cutoff) in the batch.
    pub fn n_pairs(&self) -> usize {
        self.nh.n_pairs()
    }
}

/// Pair data of consecutive atoms: each pair's neighbour (vector, distance, cutoff functions),
/// the batch index of its second atom, and its lattice shift.
#[derive(Debug, Clone, Default)]
struct Chunk {
    neighbours: Vec<Neighbour>,
    second: Vec<usize>,
    shifts: Vec<[i64; 3]>,
}

/// Chunks kept between calls (see [`Chunk::reuse`]). Only ever `try_lock`ed, by the calling
/// thread of a search (which takes them all, [`Chunk::spare`]) and by whoever drops the
/// neighbourhoods: a busy pool is passed by, and a child process forked while another thread held
/// the lock never waits for it.
static SPARE_CHUNKS: std::sync::Mutex<Vec<Chunk>> = std::sync::Mutex::new(Vec::new());

/// At most this many pairs are kept in [`SPARE_CHUNKS`] (about 100 bytes each).
const KEPT_PAIRS: usize = 1 << 18;

impl Chunk {
    /// Pairs the chunk has room for.
    fn capacity(&self) -> usize {
        self.neighbours.capacity()
    }

    /// An empty chunk with room for `room` pairs, from the chunks kept by earlier calls when one
    /// is there: fresh memory for every call of a model's energy and forces (one `prepare` per MD
    /// step) was faulted in page by page, and on two threads it often was not reused at all (the
    /// allocator returned it to the system: 300 page faults per call for 108 atoms, and `prepare`
    /// took 5.6 instead of 2.1 µs/atom). An error, not an abort, without the memory.
    fn reuse(room: usize, spare: &std::sync::Mutex<Vec<Chunk>>) -> Result<Self> {
        let kept = spare.lock().ok().and_then(|mut spare| spare.pop());
        let mut chunk = kept.unwrap_or_default();
        chunk.neighbours.clear();
        chunk.second.clear();
        chunk.shifts.clear();
        let short = |_| invalid!("cannot allocate memory for {room} neighbour pairs");
        chunk.neighbours.try_reserve_exact(room).map_err(short)?;
        chunk.second.try_reserve_exact(room).map_err(short)?;
        chunk.shifts.try_reserve_exact(room).map_err(short)?;
        Ok(chunk)
    }

    /// All the chunks kept by earlier calls (none if the pool is busy), for [`Chunk::reuse`].
    fn spare() -> std::sync::Mutex<Vec<Chunk>> {
        let kept = SPARE_CHUNKS
            .try_lock()
            .map(|mut spare| std::mem::take(&mut *spare));
        std::sync::Mutex::new(kept.unwrap_or_default())
    }

    /// Keep these chunks for later calls, as far as [`KEPT_PAIRS`] allows.
    fn keep(chunks: Vec<Chunk>) {
        if let Ok(mut spare) = SPARE_CHUNKS.try_lock() {
            let mut kept: usize = spare.iter().map(Chunk::capacity).sum();
            for chunk in chunks {
                if kept + chunk.capacity() <= KEPT_PAIRS {
                    kept += chunk.capacity();
                    spare.push(chunk);
                }
            }
        }
    }
}

/// The pair data of one atom: its neighbours, their batch indices and lattice shifts.
struct AtomNeighbourhood<'a> {
    neighbours: &'a [Neighbour],
    second: &'a [usize],
    shifts: &'a [[i64; 3]],
}

/// The neighbourhoods of every atom of a batch in CSR form, the pair data in chunks of
/// consecutive atoms (one per range searched in parallel, kept as the search wrote them).
#[derive(Debug, Clone)]
struct Neighbourhoods {
    /// First atom of each structure in the batch (length `n_structures + 1`).
    atom_start: Vec<usize>,
    /// First pair of each atom, counted over the whole batch (length `n_atoms + 1`).
    pair_start: Vec<usize>,
    chunks: Vec<Chunk>,
    /// The chunk holding each atom's pairs (any chunk for an atom without pairs).
    chunk_of_atom: Vec<usize>,
    /// Batch index of the first pair of each chunk.
    chunk_start: Vec<usize>,
}

impl Drop for Neighbourhoods {
    fn drop(&mut self) {
        Chunk::keep(std::mem::take(&mut self.chunks));
    }
}

impl Neighbourhoods {
    fn n_atoms(&self) -> usize {
        self.pair_start.len() - 1
    }
    fn n_pairs(&self) -> usize {
        self.pair_start[self.n_atoms()]
    }
    /// Batch indices of the pairs of `atom`.
    fn pairs(&self, atom: usize) -> std::ops::Range<usize> {
        self.pair_start[atom]..self.pair_start[atom + 1]
    }
    /// The pair data of `atom`.
    fn atom(&self, atom: usize) -> AtomNeighbourhood<'_> {
        let pairs = self.pairs(atom);
        if pairs.is_empty() {
            return AtomNeighbourhood {
                neighbours: &[],
                second: &[],
                shifts: &[],
            };
        }
        let c = self.chunk_of_atom[atom];
        let chunk = &self.chunks[c];
        let local = pairs.start - self.chunk_start[c]..pairs.end - self.chunk_start[c];
        AtomNeighbourhood {
            neighbours: &chunk.neighbours[local.clone()],
            second: &chunk.second[local.clone()],
            shifts: &chunk.shifts[local],
        }
    }
    fn structure_of_atoms(&self) -> Vec<usize> {
        let mut s = Vec::with_capacity(self.n_atoms());
        for b in 0..self.atom_start.len() - 1 {
            s.extend(std::iter::repeat_n(
                b,
                self.atom_start[b + 1] - self.atom_start[b],
            ));
        }
        s
    }
}

/// The neighbourhoods of a range of consecutive atoms of one structure, written by the cell-list
/// search as it finds each pair (no intermediate pair list).
struct Part<'a> {
    species: &'a [usize],
    /// Index of the structure's first atom in the batch.
    offset: usize,
    /// First atom of the range within its structure.
    start: usize,
    /// Pairs of each atom of the range.
    counts: Vec<usize>,
    /// The pairs' data (second atoms as batch indices).
    chunk: Chunk,
    /// The first pair closer than [`MIN_DISTANCE`]: atoms, distance (Å), shift.
    too_close: Option<(usize, usize, f64, [i64; 3])>,
}

impl<'a> Part<'a> {
    fn new(
        species: &'a [usize],
        offset: usize,
        atoms: std::ops::Range<usize>,
        room: usize,
        spare: &std::sync::Mutex<Vec<Chunk>>,
    ) -> Result<Self> {
        Ok(Part {
            species,
            offset,
            start: atoms.start,
            counts: vec![0; atoms.len()],
            chunk: Chunk::reuse(room, spare)?,
            too_close: None,
        })
    }
}

impl Sink for Part<'_> {
    #[inline(always)]
    fn push_atom<'p, P: AtomPairs<'p>>(&mut self, _: Quantities, i: usize, pairs: P) {
        let n = pairs.len();
        for &Pair { j, s, v, d } in pairs {
            if !(d >= MIN_DISTANCE) && self.too_close.is_none() {
                self.too_close = Some((i, j, d, s));
            }
            self.chunk.neighbours.push(Neighbour {
                species: self.species[j],
                v,
                r: d,
                fc_radial: 0.0,
                dfc_radial: 0.0,
                fc_angular: 0.0,
                dfc_angular: 0.0,
            });
            self.chunk.second.push(self.offset + j);
            self.chunk.shifts.push(s);
        }
        self.counts[i - self.start] += n;
    }
}

/// The ANI descriptor for one parameter set.
#[derive(Debug, Clone)]
pub struct AniDescriptor {
    kernel: Kernel,
}

impl AniDescriptor {
    /// Validate the parameters and precompute their constants.
    pub fn new(params: AniParams) -> Result<Self> {
        params.validate()?;
        Ok(AniDescriptor {
            kernel: Kernel::new(&params),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &AniParams {
        self.kernel.params()
    }

    /// Features per atom.
    pub fn n_features(&self) -> usize {
        self.params().n_features()
    }

    fn neighbourhoods(&self, structures: &[Structure<'_>]) -> Result<Neighbourhoods> {
        let p = self.params();
        for (b, s) in structures.iter().enumerate() {
            if s.species.len() != s.positions.nrows() {
                return Err(invalid!(
                    "structure {b}: {} species for {} atoms",
                    s.species.len(),
                    s.positions.nrows()
                ));
            }
            if let Some(k) = s.species.iter().position(|&x| x >= p.n_species) {
                return Err(invalid!(
                    "structure {b}: atom {k} has species index {} but the descriptor has {} species",
                    s.species[k],
                    p.n_species
                ));
            }
        }
        let options = Options {
            full_list: true,
            self_interaction: false,
            quantities: Quantities {
                shifts: true,
                vectors: true,
                distances: true,
            },
        };
        let cutoff = Cutoff::Uniform(p.max_cutoff());
        let mut atom_start = Vec::with_capacity(structures.len() + 1);
        let mut offset = 0;
        for s in structures {
            atom_start.push(offset);
            offset += s.species.len();
        }
        atom_start.push(offset);
        // The cell-list search writes each structure's neighbourhoods straight into parts (one
        // per range of atoms), in parallel over structures and, within one, over ranges of atoms.
        let spare = Chunk::spare();
        let search = |b: usize| -> Result<Vec<Part>> {
            let s = &structures[b];
            let mut parts = neighbor_search(
                s.positions,
                &s.cell,
                &cutoff,
                &options,
                false,
                |atoms, room| Part::new(s.species, atom_start[b], atoms, room, &spare),
            )
            .map_err(in_structure(b))?;
            if let Some(c) = parts.iter().find_map(|part| part.too_close) {
                return Err(invalid!(
                    "structure {b}: atoms {} and {} are {:.3e} Å apart (shift {:?}): \
                     overlapping atoms have no defined descriptor gradient",
                    c.0,
                    c.1,
                    c.2,
                    c.3
                ));
            }
            let fill = |part: &mut Part| self.kernel.fill_cutoffs(&mut part.chunk.neighbours);
            if sequential() {
                parts.iter_mut().for_each(fill);
            } else {
                parts.par_iter_mut().for_each(fill);
            }
            Ok(parts)
        };
        let per_structure: Vec<Vec<Part>> = if sequential() {
            (0..structures.len()).map(search).collect::<Result<_>>()?
        } else {
            (0..structures.len())
                .into_par_iter()
                .map(search)
                .collect::<Result<_>>()?
        };
        Chunk::keep(spare.into_inner().unwrap_or_default());
        let parts: Vec<Part> = per_structure.into_iter().flatten().collect();
        let n_atoms = offset;
        let mut pair_start = Vec::with_capacity(n_atoms + 1);
        pair_start.push(0);
        let mut chunk_of_atom = Vec::with_capacity(n_atoms);
        let (mut chunks, mut chunk_start) = (Vec::with_capacity(parts.len()), Vec::new());
        for (c, part) in parts.into_iter().enumerate() {
            // Atoms without a part (structures without atoms or without a cutoff) have no pairs.
            while pair_start.len() <= part.offset + part.start {
                pair_start.push(*pair_start.last().unwrap_or(&0));
                chunk_of_atom.push(c);
            }
            let first = pair_start[pair_start.len() - 1];
            for &count in &part.counts {
                pair_start.push(pair_start[pair_start.len() - 1] + count);
                chunk_of_atom.push(c);
            }
            if pair_start[pair_start.len() - 1] - first != part.chunk.neighbours.len() {
                return Err(Error::Internal("pair offsets do not add up".into()));
            }
            chunk_start.push(first);
            chunks.push(part.chunk);
        }
        while pair_start.len() <= n_atoms {
            pair_start.push(*pair_start.last().unwrap_or(&0));
            chunk_of_atom.push(0);
        }
        Ok(Neighbourhoods {
            atom_start,
            pair_start,
            chunks,
            chunk_of_atom,
            chunk_start,
        })
    }

    /// Find the neighbourhoods of a batch once, for any number of [`forward_prepared`],
    /// [`vjp_prepared`] and [`jvp_prepared`] calls on the same positions (for instance a forward
    /// pass and its backward passes).
    ///
    /// [`forward_prepared`]: AniDescriptor::forward_prepared
    /// [`vjp_prepared`]: AniDescriptor::vjp_prepared
    /// [`jvp_prepared`]: AniDescriptor::jvp_prepared
    pub fn prepare(&self, structures: &[Structure<'_>]) -> Result<Prepared> {
        Ok(Prepared {
            nh: self.neighbourhoods(structures)?,
            n_structures: structures.len(),
            params: self.params().clone(),
        })
    }

    fn check(&self, prepared: &Prepared) -> Result<()> {
        if prepared.params != *self.params() {
            return Err(invalid!(
                "these neighbourhoods were prepared by a descriptor with other parameters"
            ));
        }
        Ok(())
    }

    /// Features of every atom of the batch, `(n_atoms_total, n_features)`.
    pub fn forward(&self, structures: &[Structure<'_>]) -> Result<Array2<f64>> {
        self.forward_prepared(&self.prepare(structures)?)
    }

    /// [`forward`](AniDescriptor::forward) on prepared neighbourhoods.
    pub fn forward_prepared(&self, prepared: &Prepared) -> Result<Array2<f64>> {
        self.check(prepared)?;
        let nh = &prepared.nh;
        let nf = self.n_features();
        let mut out = Array2::<f64>::zeros((nh.n_atoms(), nf));
        let body = |scratch: &mut Scratch, (a, row): (usize, &mut [f64])| {
            self.kernel.forward(nh.atom(a).neighbours, row, scratch);
        };
        if let Some(flat) = out.as_slice_mut() {
            if sequential() {
                let mut scratch = Scratch::default();
                flat.chunks_mut(nf.max(1))
                    .enumerate()
                    .for_each(|x| body(&mut scratch, x));
            } else {
                flat.par_chunks_mut(nf.max(1))
                    .enumerate()
                    .for_each_init(Scratch::default, body);
            }
        }
        Ok(out)
    }

    /// Vector–Jacobian product: with `cotangent = ∂L/∂G` `(n_atoms_total, n_features)`, return
    /// `∂L/∂positions`, `∂L/∂cell` and the virial of each structure.
    pub fn vjp(
        &self,
        structures: &[Structure<'_>],
        cotangent: ArrayView2<'_, f64>,
    ) -> Result<Gradients> {
        self.vjp_prepared(&self.prepare(structures)?, cotangent)
    }

    /// [`vjp`](AniDescriptor::vjp) on prepared neighbourhoods.
    pub fn vjp_prepared(
        &self,
        prepared: &Prepared,
        cotangent: ArrayView2<'_, f64>,
    ) -> Result<Gradients> {
        let nf = self.n_features();
        if cotangent.dim() != (prepared.n_atoms(), nf) {
            return Err(invalid!(
                "the cotangent must have shape ({}, {nf}), got {:?}",
                prepared.n_atoms(),
                cotangent.shape()
            ));
        }
        let many = self.vjp_many_prepared(prepared, cotangent.insert_axis(Axis(0)))?;
        let to_vec = |a: &Array4<f64>| -> Vec<[[f64; 3]; 3]> {
            (0..a.dim().1)
                .map(|b| std::array::from_fn(|x| std::array::from_fn(|y| a[[0, b, x, y]])))
                .collect()
        };
        Ok(Gradients {
            positions: many.positions.index_axis_move(Axis(0), 0),
            cells: to_vec(&many.cells),
            virials: to_vec(&many.virials),
        })
    }

    /// Vector–Jacobian products of `m` cotangents at once, `(m, n_atoms_total, n_features)` (e.g.
    /// `∂E_k/∂G` of each member of a committee): the geometric terms are computed once per pair and
    /// shared, so this costs much less than `m` calls of [`vjp_prepared`](Self::vjp_prepared).
    pub fn vjp_many_prepared(
        &self,
        prepared: &Prepared,
        cotangents: ArrayView3<'_, f64>,
    ) -> Result<ManyGradients> {
        self.check(prepared)?;
        let nh = &prepared.nh;
        let n_structures = prepared.n_structures;
        let nf = self.n_features();
        let (m, n, f) = cotangents.dim();
        if (n, f) != (nh.n_atoms(), nf) || m == 0 {
            return Err(invalid!(
                "the cotangents must have shape (m >= 1, {}, {nf}), got {:?}",
                nh.n_atoms(),
                cotangents.shape()
            ));
        }
        let mut pair_grad = vec![[0.0f64; 3]; nh.n_pairs() * m];
        let mut slices: Vec<&mut [[f64; 3]]> = Vec::with_capacity(nh.n_atoms());
        let mut rest: &mut [[f64; 3]] = &mut pair_grad;
        for a in 0..nh.n_atoms() {
            let (head, tail) = rest.split_at_mut((nh.pair_start[a + 1] - nh.pair_start[a]) * m);
            slices.push(head);
            rest = tail;
        }
        let body = |(scratch, cot): &mut (Scratch, Vec<f64>),
                    (a, grad): (usize, &mut [[f64; 3]])| {
            cot.clear();
            for k in 0..m {
                let row = cotangents.slice(s![k, a, ..]);
                match row.as_slice() {
                    Some(x) => cot.extend_from_slice(x),
                    None => cot.extend(row.iter().copied()),
                }
            }
            self.kernel
                .vjp(nh.atom(a).neighbours, cot, m, grad, scratch);
        };
        let init = || (Scratch::default(), Vec::<f64>::with_capacity(m * nf));
        if sequential() {
            let mut state = init();
            slices
                .into_iter()
                .enumerate()
                .for_each(|x| body(&mut state, x));
        } else {
            slices.into_par_iter().enumerate().for_each_init(init, body);
        }
        let n_atoms = nh.n_atoms();
        let mut positions = Array3::<f64>::zeros((m, n_atoms, 3));
        let mut cells = Array4::<f64>::zeros((m, n_structures, 3, 3));
        let mut virials = Array4::<f64>::zeros((m, n_structures, 3, 3));
        // Pair gradients onto both atoms and into each structure's cell gradient and virial, in
        // pair order (flat slices and 3×3 accumulators: the same sums as indexing the arrays).
        let pos = positions
            .as_slice_mut()
            .ok_or_else(|| Error::Internal("positions array not contiguous".into()))?;
        let (mut cell_acc, mut vir_acc) = (vec![[[0.0f64; 3]; 3]; m], vec![[[0.0f64; 3]; 3]; m]);
        for b in 0..n_structures {
            cell_acc.fill([[0.0; 3]; 3]);
            vir_acc.fill([[0.0; 3]; 3]);
            for i in nh.atom_start[b]..nh.atom_start[b + 1] {
                let atom = nh.atom(i);
                for (local, p) in nh.pairs(i).enumerate() {
                    let j = atom.second[local];
                    let s = atom.shifts[local].map(|x| x as f64);
                    let v = atom.neighbours[local].v;
                    for k in 0..m {
                        let g = pair_grad[p * m + k];
                        let (oj, oi) = ((k * n_atoms + j) * 3, (k * n_atoms + i) * 3);
                        for c in 0..3 {
                            pos[oj + c] += g[c];
                            pos[oi + c] -= g[c];
                        }
                        let (cell, vir) = (&mut cell_acc[k], &mut vir_acc[k]);
                        for x in 0..3 {
                            for y in 0..3 {
                                cell[x][y] += s[x] * g[y];
                                vir[x][y] -= v[x] * g[y];
                            }
                        }
                    }
                }
            }
            for k in 0..m {
                for x in 0..3 {
                    for y in 0..3 {
                        cells[[k, b, x, y]] = cell_acc[k][x][y];
                        virials[[k, b, x, y]] = vir_acc[k][x][y];
                    }
                }
            }
        }
        Ok(ManyGradients {
            positions,
            cells,
            virials,
        })
    }

    /// Jacobian–vector product: the change of every feature, `(n_atoms_total, n_features)`, when
    /// positions move by `tangent` `(n_atoms_total, 3)` (Å) and, optionally, each structure's cell
    /// by `cell_tangents` (3×3 per structure, Å).
    pub fn jvp(
        &self,
        structures: &[Structure<'_>],
        tangent: ArrayView2<'_, f64>,
        cell_tangents: Option<&[[[f64; 3]; 3]]>,
    ) -> Result<Array2<f64>> {
        self.jvp_prepared(&self.prepare(structures)?, tangent, cell_tangents)
    }

    /// [`jvp`](AniDescriptor::jvp) on prepared neighbourhoods.
    pub fn jvp_prepared(
        &self,
        prepared: &Prepared,
        tangent: ArrayView2<'_, f64>,
        cell_tangents: Option<&[[[f64; 3]; 3]]>,
    ) -> Result<Array2<f64>> {
        if tangent.dim() != (prepared.n_atoms(), 3) {
            return Err(invalid!(
                "the tangent must have shape ({}, 3), got {:?}",
                prepared.n_atoms(),
                tangent.shape()
            ));
        }
        let cells = match cell_tangents {
            None => None,
            Some(ct) => {
                let mut a = Array4::<f64>::zeros((1, ct.len(), 3, 3));
                for (b, c) in ct.iter().enumerate() {
                    for x in 0..3 {
                        for y in 0..3 {
                            a[[0, b, x, y]] = c[x][y];
                        }
                    }
                }
                Some(a)
            }
        };
        let out = self.jvp_many_prepared(
            prepared,
            tangent.insert_axis(Axis(0)),
            cells.as_ref().map(|a| a.view()),
        )?;
        Ok(out.index_axis_move(Axis(0), 0))
    }

    /// Jacobian–vector products of `m` tangents at once: positions `(m, n_atoms_total, 3)` (Å)
    /// and optionally cells `(m, n_structures, 3, 3)` (Å); returns `(m, n_atoms_total,
    /// n_features)`. The geometric terms are shared among the `m` tangents.
    pub fn jvp_many_prepared(
        &self,
        prepared: &Prepared,
        tangents: ArrayView3<'_, f64>,
        cell_tangents: Option<ArrayView4<'_, f64>>,
    ) -> Result<Array3<f64>> {
        self.check(prepared)?;
        let nh = &prepared.nh;
        let n_structures = prepared.n_structures;
        let (m, n, three) = tangents.dim();
        if (n, three) != (nh.n_atoms(), 3) || m == 0 {
            return Err(invalid!(
                "the tangents must have shape (m >= 1, {}, 3), got {:?}",
                nh.n_atoms(),
                tangents.shape()
            ));
        }
        if let Some(ct) = &cell_tangents {
            if ct.dim() != (m, n_structures, 3, 3) {
                return Err(invalid!(
                    "the cell tangents must have shape ({m}, {n_structures}, 3, 3), got {:?}",
                    ct.shape()
                ));
            }
        }
        let structure_of = nh.structure_of_atoms();
        let nf = self.n_features();
        // Atom-major while computing (each atom's m rows contiguous), member-major on return.
        let mut out = Array3::<f64>::zeros((nh.n_atoms(), m, nf));
        let body = |(scratch, local): &mut (Scratch, Vec<[f64; 3]>),
                    (a, rows): (usize, &mut [f64])| {
            local.clear();
            let atom = nh.atom(a);
            for (&j, &s) in atom.second.iter().zip(atom.shifts) {
                for k in 0..m {
                    let mut d = [
                        tangents[[k, j, 0]] - tangents[[k, a, 0]],
                        tangents[[k, j, 1]] - tangents[[k, a, 1]],
                        tangents[[k, j, 2]] - tangents[[k, a, 2]],
                    ];
                    if let Some(ct) = &cell_tangents {
                        let b = structure_of[a];
                        for x in 0..3 {
                            for y in 0..3 {
                                d[y] += s[x] as f64 * ct[[k, b, x, y]];
                            }
                        }
                    }
                    local.push(d);
                }
            }
            self.kernel.jvp(atom.neighbours, local, m, rows, scratch);
        };
        let init = || (Scratch::default(), Vec::<[f64; 3]>::new());
        if let Some(flat) = out.as_slice_mut() {
            let chunk = (m * nf).max(1);
            if sequential() {
                let mut state = init();
                flat.chunks_mut(chunk)
                    .enumerate()
                    .for_each(|x| body(&mut state, x));
            } else {
                flat.par_chunks_mut(chunk)
                    .enumerate()
                    .for_each_init(init, body);
            }
        }
        if m == 1 {
            return out
                .into_shape_with_order((1, nh.n_atoms(), nf))
                .map_err(|e| Error::Internal(format!("reshape of the JVP output failed: {e}")));
        }
        Ok(out
            .permuted_axes([1, 0, 2])
            .as_standard_layout()
            .into_owned())
    }

    /// Dense Jacobian `∂G[i, f] / ∂r[j, c]` of one structure, `(n_atoms, n_features, n_atoms, 3)`.
    /// Meant for small systems: refuses above `max_bytes` of output.
    pub fn jacobian(&self, structure: &Structure<'_>, max_bytes: usize) -> Result<Array4<f64>> {
        let n = structure.positions.nrows();
        let nf = self.n_features();
        let bytes = n.saturating_mul(n).saturating_mul(nf).saturating_mul(24);
        if bytes > max_bytes {
            return Err(invalid!(
                "the dense Jacobian of {n} atoms would take {bytes} bytes (limit {max_bytes}): \
                 use the vector–Jacobian or Jacobian–vector product instead"
            ));
        }
        let mut jac = Array4::<f64>::zeros((n, nf, n, 3));
        let prepared = self.prepare(std::slice::from_ref(structure))?;
        for j in 0..n {
            for c in 0..3 {
                let mut tangent = Array2::<f64>::zeros((n, 3));
                tangent[[j, c]] = 1.0;
                let column = self.jvp_prepared(&prepared, tangent.view(), None)?;
                for i in 0..n {
                    for f in 0..nf {
                        jac[[i, f, j, c]] = column[[i, f]];
                    }
                }
            }
        }
        Ok(jac)
    }
}
