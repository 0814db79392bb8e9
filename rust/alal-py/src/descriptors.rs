//! Bindings of `alal_core::descriptors`: a batch is given as concatenated positions `(N, 3)`,
//! species `(N,)`, cells `(B, 3, 3)`, pbc `(B, 3)` and atom counts `(B,)`.

use alal_core::cell::Cell;
use alal_core::descriptors::{AniDescriptor as CoreAni, AniParams, Gradients, Prepared, Structure};
use ndarray::{Array3, ArrayView2};
use numpy::{
    IntoPyArray, PyArray2, PyArray3, PyArray4, PyReadonlyArray1, PyReadonlyArray2,
    PyReadonlyArray3, PyReadonlyArray4,
};
use pyo3::prelude::*;

use crate::convert::{cell_from, invalid, species_from};
use crate::errors::{run, threads_for, to_py};

/// Below this many atoms a descriptor call runs on the calling thread.
const MIN_PARALLEL_ATOMS: usize = 16;

/// `(dL/dpositions, dL/dcells, virials)` as NumPy arrays.
type VjpArrays<'py> = (
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray3<f64>>,
    Bound<'py, PyArray3<f64>>,
);

/// `(dL_k/dpositions, dL_k/dcells, virials)` of `m` cotangents as NumPy arrays.
type ManyVjpArrays<'py> = (
    Bound<'py, PyArray3<f64>>,
    Bound<'py, PyArray4<f64>>,
    Bound<'py, PyArray4<f64>>,
);

/// Owned, validated form of a batch.
struct Batch {
    cells: Vec<Cell>,
    species: Vec<usize>,
    starts: Vec<usize>,
}

impl Batch {
    fn new(
        py: Python<'_>,
        n_atoms: usize,
        cells: &PyReadonlyArray3<'_, f64>,
        pbc: &PyReadonlyArray2<'_, bool>,
        species: &PyReadonlyArray1<'_, i64>,
        counts: &PyReadonlyArray1<'_, i64>,
    ) -> PyResult<Self> {
        let cells_a = cells.as_array();
        let pbc_a = pbc.as_array();
        let counts_a = counts.as_array();
        let b = counts_a.len();
        if cells_a.shape() != [b, 3, 3] {
            return Err(invalid(format!(
                "cells must have shape ({b}, 3, 3), got {:?}",
                cells_a.shape()
            )));
        }
        if pbc_a.shape() != [b, 3] {
            return Err(invalid(format!(
                "pbc must have shape ({b}, 3), got {:?}",
                pbc_a.shape()
            )));
        }
        let mut starts = Vec::with_capacity(b + 1);
        let mut total = 0usize;
        for (k, &c) in counts_a.iter().enumerate() {
            let c = usize::try_from(c)
                .map_err(|_| invalid(format!("structure {k} has a negative atom count {c}")))?;
            starts.push(total);
            total += c;
        }
        starts.push(total);
        if total != n_atoms {
            return Err(invalid(format!(
                "the atom counts add up to {total} but positions has {n_atoms} rows"
            )));
        }
        let species = species_from(&species.as_array().to_vec())?;
        if species.len() != n_atoms {
            return Err(invalid(format!(
                "got {} species for {n_atoms} atoms",
                species.len()
            )));
        }
        let mut cell_list = Vec::with_capacity(b);
        for k in 0..b {
            let p = [pbc_a[[k, 0]], pbc_a[[k, 1]], pbc_a[[k, 2]]];
            let cell = cell_from(py, cells_a.index_axis(ndarray::Axis(0), k), p)
                .map_err(|e| invalid(format!("structure {k}: {}", e.value(py))))?;
            cell_list.push(cell);
        }
        Ok(Batch {
            cells: cell_list,
            species,
            starts,
        })
    }

    fn structures<'a>(&'a self, positions: ArrayView2<'a, f64>) -> Vec<Structure<'a>> {
        (0..self.cells.len())
            .map(move |k| {
                let (a, b) = (self.starts[k], self.starts[k + 1]);
                Structure {
                    positions: positions.slice_move(ndarray::s![a..b, ..]),
                    cell: self.cells[k],
                    species: &self.species[a..b],
                }
            })
            .collect()
    }
}

fn check_positions(positions: &ArrayView2<'_, f64>) -> PyResult<()> {
    if positions.ncols() != 3 {
        return Err(invalid(format!(
            "positions must have shape (n_atoms, 3), got {:?}",
            positions.shape()
        )));
    }
    Ok(())
}

fn to_3x3_array(mats: Vec<[[f64; 3]; 3]>) -> Array3<f64> {
    let mut out = Array3::<f64>::zeros((mats.len(), 3, 3));
    for (k, m) in mats.iter().enumerate() {
        for r in 0..3 {
            for c in 0..3 {
                out[[k, r, c]] = m[r][c];
            }
        }
    }
    out
}

/// Cell tangents `(B, 3, 3)` as 3×3 arrays, checked against the number of structures.
fn cell_tangents_from(
    c: &Option<PyReadonlyArray3<'_, f64>>,
    n_structures: usize,
) -> PyResult<Option<Vec<[[f64; 3]; 3]>>> {
    let Some(c) = c else { return Ok(None) };
    let a = c.as_array();
    if a.shape() != [n_structures, 3, 3] {
        return Err(invalid(format!(
            "cell_tangents must have shape ({n_structures}, 3, 3), got {:?}",
            a.shape()
        )));
    }
    Ok(Some(
        (0..n_structures)
            .map(|k| std::array::from_fn(|r| std::array::from_fn(|c| a[[k, r, c]])))
            .collect(),
    ))
}

fn vjp_arrays(py: Python<'_>, g: Gradients) -> VjpArrays<'_> {
    (
        g.positions.into_pyarray(py),
        to_3x3_array(g.cells).into_pyarray(py),
        to_3x3_array(g.virials).into_pyarray(py),
    )
}

/// Neighbourhoods of a batch prepared once for several descriptor calls (`AniDescriptor.prepare`).
#[pyclass(name = "PreparedBatch", module = "alal._core", frozen)]
pub struct PyPrepared {
    inner: Prepared,
}

#[pymethods]
impl PyPrepared {
    /// Atoms in the batch.
    #[getter]
    fn n_atoms(&self) -> usize {
        self.inner.n_atoms()
    }

    /// Structures in the batch.
    #[getter]
    fn n_structures(&self) -> usize {
        self.inner.n_structures()
    }

    /// Neighbour pairs in the batch.
    #[getter]
    fn n_pairs(&self) -> usize {
        self.inner.n_pairs()
    }
}

/// ANI-style descriptor (see `alal.descriptors.AniDescriptor` for the documented wrapper).
#[pyclass(name = "AniDescriptor", module = "alal._core", frozen)]
pub struct PyAniDescriptor {
    inner: CoreAni,
}

#[pymethods]
impl PyAniDescriptor {
    #[new]
    #[pyo3(signature = (*, n_species, radial_cutoff, radial_eta, radial_shifts, radial_scale,
                        angular_cutoff, angular_eta, angular_zeta, angular_shifts, angle_sections,
                        cos_scale))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        n_species: usize,
        radial_cutoff: f64,
        radial_eta: f64,
        radial_shifts: Vec<f64>,
        radial_scale: f64,
        angular_cutoff: f64,
        angular_eta: f64,
        angular_zeta: f64,
        angular_shifts: Vec<f64>,
        angle_sections: Vec<f64>,
        cos_scale: f64,
    ) -> PyResult<Self> {
        let params = AniParams {
            n_species,
            radial_cutoff,
            radial_eta,
            radial_shifts,
            radial_scale,
            angular_cutoff,
            angular_eta,
            angular_zeta,
            angular_shifts,
            angle_sections,
            cos_scale,
        };
        CoreAni::new(params)
            .map(|inner| PyAniDescriptor { inner })
            .map_err(|e| to_py(py, e))
    }

    /// Number of features per atom.
    #[getter]
    fn n_features(&self) -> usize {
        self.inner.n_features()
    }

    /// Neighbourhoods of a batch, for the `*_prepared` methods (the Python wrapper's one-shot
    /// calls are `prepare` followed by one of them).
    #[pyo3(signature = (positions, cells, pbc, species, counts, n_threads=0))]
    #[allow(clippy::too_many_arguments)]
    fn prepare<'py>(
        &self,
        py: Python<'py>,
        positions: PyReadonlyArray2<'py, f64>,
        cells: PyReadonlyArray3<'py, f64>,
        pbc: PyReadonlyArray2<'py, bool>,
        species: PyReadonlyArray1<'py, i64>,
        counts: PyReadonlyArray1<'py, i64>,
        n_threads: usize,
    ) -> PyResult<PyPrepared> {
        let pos = positions.as_array();
        check_positions(&pos)?;
        let batch = Batch::new(py, pos.nrows(), &cells, &pbc, &species, &counts)?;
        let structures = batch.structures(pos);
        let n_threads = threads_for(n_threads, pos.nrows(), MIN_PARALLEL_ATOMS);
        let inner = run(py, n_threads, || self.inner.prepare(&structures))?;
        Ok(PyPrepared { inner })
    }

    /// Features `(N, n_features)` of a prepared batch.
    #[pyo3(signature = (prepared, n_threads=0))]
    fn forward_prepared<'py>(
        &self,
        py: Python<'py>,
        prepared: &PyPrepared,
        n_threads: usize,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let n_threads = threads_for(n_threads, prepared.inner.n_atoms(), MIN_PARALLEL_ATOMS);
        let out = run(py, n_threads, || {
            self.inner.forward_prepared(&prepared.inner)
        })?;
        Ok(out.into_pyarray(py))
    }

    /// Vector–Jacobian product of a prepared batch.
    #[pyo3(signature = (prepared, cotangent, n_threads=0))]
    fn vjp_prepared<'py>(
        &self,
        py: Python<'py>,
        prepared: &PyPrepared,
        cotangent: PyReadonlyArray2<'py, f64>,
        n_threads: usize,
    ) -> PyResult<VjpArrays<'py>> {
        let cot = cotangent.as_array();
        let n_threads = threads_for(n_threads, prepared.inner.n_atoms(), MIN_PARALLEL_ATOMS);
        let g = run(py, n_threads, || {
            self.inner.vjp_prepared(&prepared.inner, cot)
        })?;
        Ok(vjp_arrays(py, g))
    }

    /// Jacobian–vector product of a prepared batch.
    #[pyo3(signature = (prepared, tangent, cell_tangents=None, n_threads=0))]
    fn jvp_prepared<'py>(
        &self,
        py: Python<'py>,
        prepared: &PyPrepared,
        tangent: PyReadonlyArray2<'py, f64>,
        cell_tangents: Option<PyReadonlyArray3<'py, f64>>,
        n_threads: usize,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let ct = cell_tangents_from(&cell_tangents, prepared.inner.n_structures())?;
        let t = tangent.as_array();
        let n_threads = threads_for(n_threads, prepared.inner.n_atoms(), MIN_PARALLEL_ATOMS);
        let out = run(py, n_threads, || {
            self.inner.jvp_prepared(&prepared.inner, t, ct.as_deref())
        })?;
        Ok(out.into_pyarray(py))
    }

    /// Vector–Jacobian products of `m` cotangents `(m, N, n_features)` of a prepared batch:
    /// `(m, N, 3)`, `(m, B, 3, 3)`, `(m, B, 3, 3)`.
    #[pyo3(signature = (prepared, cotangents, n_threads=0))]
    fn vjp_many_prepared<'py>(
        &self,
        py: Python<'py>,
        prepared: &PyPrepared,
        cotangents: PyReadonlyArray3<'py, f64>,
        n_threads: usize,
    ) -> PyResult<ManyVjpArrays<'py>> {
        let cot = cotangents.as_array();
        let n_threads = threads_for(n_threads, prepared.inner.n_atoms(), MIN_PARALLEL_ATOMS);
        let g = run(py, n_threads, || {
            self.inner.vjp_many_prepared(&prepared.inner, cot)
        })?;
        Ok((
            g.positions.into_pyarray(py),
            g.cells.into_pyarray(py),
            g.virials.into_pyarray(py),
        ))
    }

    /// Jacobian–vector products of `m` tangents `(m, N, 3)` (and cells `(m, B, 3, 3)`) of a
    /// prepared batch: `(m, N, n_features)`.
    #[pyo3(signature = (prepared, tangents, cell_tangents=None, n_threads=0))]
    fn jvp_many_prepared<'py>(
        &self,
        py: Python<'py>,
        prepared: &PyPrepared,
        tangents: PyReadonlyArray3<'py, f64>,
        cell_tangents: Option<PyReadonlyArray4<'py, f64>>,
        n_threads: usize,
    ) -> PyResult<Bound<'py, PyArray3<f64>>> {
        let t = tangents.as_array();
        let ct = cell_tangents.as_ref().map(|c| c.as_array());
        let n_threads = threads_for(n_threads, prepared.inner.n_atoms(), MIN_PARALLEL_ATOMS);
        let out = run(py, n_threads, || {
            self.inner.jvp_many_prepared(&prepared.inner, t, ct)
        })?;
        Ok(out.into_pyarray(py))
    }

    /// Dense Jacobian `(n, n_features, n, 3)` of one structure.
    #[pyo3(signature = (positions, cell, pbc, species, max_bytes, n_threads=0))]
    #[allow(clippy::too_many_arguments)]
    fn jacobian<'py>(
        &self,
        py: Python<'py>,
        positions: PyReadonlyArray2<'py, f64>,
        cell: PyReadonlyArray2<'py, f64>,
        pbc: [bool; 3],
        species: PyReadonlyArray1<'py, i64>,
        max_bytes: usize,
        n_threads: usize,
    ) -> PyResult<Bound<'py, PyArray4<f64>>> {
        let pos = positions.as_array();
        check_positions(&pos)?;
        let cell = cell_from(py, cell.as_array(), pbc)?;
        let species = species_from(&species.as_array().to_vec())?;
        let structure = Structure {
            positions: pos,
            cell,
            species: &species,
        };
        let out = run(py, n_threads, || self.inner.jacobian(&structure, max_bytes))?;
        Ok(out.into_pyarray(py))
    }
}
