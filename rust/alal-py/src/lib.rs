//! `alal._core`: thin pyo3 bindings of `alal-core`. The documented public API is the Python
//! modules `alal.neighbors` and `alal.descriptors`, which wrap these functions.

mod convert;
mod descriptors;
mod errors;
mod neighbors;

use pyo3::prelude::*;

/// Rust allocations of the module (pair lists, descriptors, gradients, whose buffers NumPy then
/// owns and frees through Rust) come from mimalloc: see Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Forget the thread pools inherited through `fork()` (called by `alal` in the child process).
#[pyfunction]
fn _reset_after_fork() {
    alal_core::threads::forget_pools_after_fork();
}

/// Number of threads used when `n_threads` is 0.
#[pyfunction]
fn default_threads() -> usize {
    alal_core::threads::default_threads()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(neighbors::neighbor_list, m)?)?;
    m.add_function(wrap_pyfunction!(neighbors::neighbor_list_batch, m)?)?;
    m.add_function(wrap_pyfunction!(_reset_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(default_threads, m)?)?;
    m.add_class::<descriptors::PyAniDescriptor>()?;
    m.add_class::<descriptors::PyPrepared>()?;
    Ok(())
}
