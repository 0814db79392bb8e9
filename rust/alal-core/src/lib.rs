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

pub mod cell;
pub mod descriptors;
pub mod error;
pub mod neighbors;
pub mod threads;

pub use error::{Error, Result};
