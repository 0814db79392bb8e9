//! Bindings of `alal_core::neighbors`.

use alal_core::neighbors::{self, Cutoff, Options, PairList, Quantities};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::convert::{cell_from, invalid};
use crate::errors::{run, threads_for};

/// Below this many atoms a neighbour list runs on the calling thread.
const MIN_PARALLEL_ATOMS: usize = 256;

type Pairs<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray2<i32>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<f64>>,
);

fn to_numpy(py: Python<'_>, list: PairList) -> PyResult<Pairs<'_>> {
    let n = list.len();
    let shifts_n = if list.shifts.is_empty() { 0 } else { n };
    let vectors_n = if list.vectors.is_empty() { 0 } else { n };
    let shifts =
        Array2::from_shape_vec((shifts_n, 3), list.shifts).map_err(|e| invalid(e.to_string()))?;
    let vectors =
        Array2::from_shape_vec((vectors_n, 3), list.vectors).map_err(|e| invalid(e.to_string()))?;
    Ok((
        list.first.into_pyarray(py),
        list.second.into_pyarray(py),
        shifts.into_pyarray(py),
        vectors.into_pyarray(py),
        list.distances.into_pyarray(py),
    ))
}

/// The cutoff rule from the Python arguments: a uniform cutoff, per-atom radii, or a per-species
/// table with each atom's species.
fn cutoff_from(
    cutoff: f64,
    radii: Option<PyReadonlyArray1<'_, f64>>,
    species: Option<PyReadonlyArray1<'_, i64>>,
    table: Option<PyReadonlyArray2<'_, f64>>,
) -> PyResult<Cutoff> {
    match (radii, species, table) {
        (Some(r), None, None) => Ok(Cutoff::Radii(r.as_array().to_vec())),
        (None, Some(s), Some(t)) => {
            let t = t.as_array();
            if t.nrows() != t.ncols() {
                return Err(invalid(format!(
                    "the species-pair cutoff table must be square, got {:?}",
                    t.shape()
                )));
            }
            let species = s
                .as_array()
                .iter()
                .map(|&x| {
                    usize::try_from(x).map_err(|_| invalid(format!("negative species index {x}")))
                })
                .collect::<PyResult<Vec<_>>>()?;
            Ok(Cutoff::SpeciesPairs {
                species,
                n_species: t.nrows(),
                table: t.iter().copied().collect(),
            })
        }
        (None, None, None) => Ok(Cutoff::Uniform(cutoff)),
        _ => Err(invalid(
            "give either radii, or species and table, or neither".into(),
        )),
    }
}

/// The core's options from the Python flags.
fn options_from(
    full_list: bool,
    self_interaction: bool,
    shifts: bool,
    vectors: bool,
    distances: bool,
) -> Options {
    Options {
        full_list,
        self_interaction,
        quantities: Quantities {
            shifts,
            vectors,
            distances,
        },
    }
}

/// Neighbour list of one structure. Returns `(i, j, S, D, d)`; unrequested outputs are empty.
#[pyfunction]
#[pyo3(signature = (positions, cell, pbc, cutoff, *, radii=None, species=None, table=None,
                    full_list=true, self_interaction=false, shifts=true, vectors=true, distances=true,
                    n_threads=0))]
#[allow(clippy::too_many_arguments)]
pub fn neighbor_list<'py>(
    py: Python<'py>,
    positions: PyReadonlyArray2<'py, f64>,
    cell: PyReadonlyArray2<'py, f64>,
    pbc: [bool; 3],
    cutoff: f64,
    radii: Option<PyReadonlyArray1<'py, f64>>,
    species: Option<PyReadonlyArray1<'py, i64>>,
    table: Option<PyReadonlyArray2<'py, f64>>,
    full_list: bool,
    self_interaction: bool,
    shifts: bool,
    vectors: bool,
    distances: bool,
    n_threads: usize,
) -> PyResult<Pairs<'py>> {
    let cell = cell_from(py, cell.as_array(), pbc)?;
    let rule = cutoff_from(cutoff, radii, species, table)?;
    let options = options_from(full_list, self_interaction, shifts, vectors, distances);
    let positions = positions.as_array();
    let n_threads = threads_for(n_threads, positions.nrows(), MIN_PARALLEL_ATOMS);
    let list = run(py, n_threads, || {
        neighbors::neighbor_list(positions, &cell, &rule, &options)
    })?;
    to_numpy(py, list)
}

/// Neighbour lists of many structures with one uniform cutoff, in parallel over structures.
#[pyfunction]
#[pyo3(signature = (positions, cells, pbcs, cutoff, *, full_list=true, self_interaction=false,
                    shifts=true, vectors=true, distances=true, n_threads=0))]
#[allow(clippy::too_many_arguments)]
pub fn neighbor_list_batch<'py>(
    py: Python<'py>,
    positions: Vec<PyReadonlyArray2<'py, f64>>,
    cells: Vec<PyReadonlyArray2<'py, f64>>,
    pbcs: Vec<[bool; 3]>,
    cutoff: f64,
    full_list: bool,
    self_interaction: bool,
    shifts: bool,
    vectors: bool,
    distances: bool,
    n_threads: usize,
) -> PyResult<Vec<Pairs<'py>>> {
    if positions.len() != cells.len() || positions.len() != pbcs.len() {
        return Err(invalid(format!(
            "got {} position arrays, {} cells and {} pbc flags",
            positions.len(),
            cells.len(),
            pbcs.len()
        )));
    }
    let mut systems = Vec::with_capacity(positions.len());
    for (k, (p, (c, pbc))) in positions.iter().zip(cells.iter().zip(&pbcs)).enumerate() {
        let cell = cell_from(py, c.as_array(), *pbc)
            .map_err(|e| invalid(format!("structure {k}: {}", e.value(py))))?;
        systems.push((p.as_array(), cell));
    }
    let options = options_from(full_list, self_interaction, shifts, vectors, distances);
    let total: usize = systems.iter().map(|(p, _)| p.nrows()).sum();
    let n_threads = threads_for(n_threads, total, MIN_PARALLEL_ATOMS);
    let lists = run(py, n_threads, || {
        neighbors::neighbor_lists(&systems, &Cutoff::Uniform(cutoff), &options)
    })?;
    lists.into_iter().map(|l| to_numpy(py, l)).collect()
}
