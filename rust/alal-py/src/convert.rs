//! Conversions from Python/NumPy arguments to core types, with errors that name the problem.

use alal_core::cell::Cell;
use alal_core::Error;
use ndarray::ArrayView2;
use pyo3::prelude::*;

use crate::errors::to_py;

/// An `alal.errors.InvalidInputError` with this message.
pub fn invalid(message: String) -> PyErr {
    Python::attach(|py| to_py(py, Error::InvalidInput(message)))
}

/// A validated [`Cell`] from a `(3, 3)` array (lattice vectors as rows, Å) and periodicity flags.
pub fn cell_from(py: Python<'_>, cell: ArrayView2<'_, f64>, pbc: [bool; 3]) -> PyResult<Cell> {
    if cell.shape() != [3, 3] {
        return Err(invalid(format!(
            "the cell must have shape (3, 3), got {:?}",
            cell.shape()
        )));
    }
    let mut m = [[0.0; 3]; 3];
    for r in 0..3 {
        for c in 0..3 {
            m[r][c] = cell[[r, c]];
        }
    }
    Cell::new(m, pbc).map_err(|e| to_py(py, e))
}

/// Species indices from int64, refusing negatives.
pub fn species_from(species: &[i64]) -> PyResult<Vec<usize>> {
    species
        .iter()
        .enumerate()
        .map(|(k, &x)| {
            usize::try_from(x)
                .map_err(|_| invalid(format!("atom {k} has a negative species index {x}")))
        })
        .collect()
}
