//! alal-core: the pure-Rust core of alal.
//!
//! * [`neighbors`]: linear-time cell-list neighbour lists for any triclinic cell, mixed periodic
//!   boundary conditions, cutoffs larger than the cell, full or half lists, ASE's conventions.
//! * [`descriptors`]: ANI-style atom-centred radial and angular symmetry functions with their
//!   vector–Jacobian and Jacobian–vector products (forces, virial and force training without
//!   materialising the Jacobian).
//!
//! Units: positions, cells, cutoffs in Å; energies in eV where a caller supplies them.
//! Parallelism uses rayon through [`threads::with_threads`].

// Numerical kernels index several arrays with one loop variable, and `!(x > 0.0)` is used on
// purpose so that NaN fails the check.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

pub mod cell;
pub mod descriptors;
pub mod error;
pub mod neighbors;
pub mod threads;

pub use error::{Error, Result};

/// Reproducible pseudo-random numbers for the unit tests (xorshift64).
#[cfg(test)]
pub(crate) fn uniform_numbers(mut seed: u64) -> impl FnMut() -> f64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    }
}
