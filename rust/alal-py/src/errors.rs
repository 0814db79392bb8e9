//! Maps core errors to the Python exceptions of `alal.errors`, and runs long calls without the GIL.

use alal_core::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// Convert a core error into the matching exception class of `alal.errors`.
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let class = match &err {
        Error::InvalidInput(_) => "InvalidInputError",
        Error::Numerical(_) => "NumericalError",
        _ => "InternalError",
    };
    let message = err.to_string();
    let class = py.import("alal.errors").and_then(|m| m.getattr(class));
    match class.map(|c| c.cast_into::<PyType>()) {
        Ok(Ok(class)) => PyErr::from_type(class, message),
        _ => PyRuntimeError::new_err(message),
    }
}

/// Thread count for a call over `work` items (atoms): small calls run on the calling thread, since
/// handing them to a pool costs more (~15 µs) than it saves. Results do not depend on it.
pub fn threads_for(n_threads: usize, work: usize, min_parallel: usize) -> usize {
    if work < min_parallel {
        1
    } else {
        n_threads
    }
}

/// Run `f` with the GIL released, inside a pool of `n_threads` threads (0: default), and convert
/// its error. A panic inside `f` is caught and becomes `alal.errors.InternalError`.
pub fn run<T: Send>(
    py: Python<'_>,
    n_threads: usize,
    f: impl FnOnce() -> alal_core::Result<T> + Send,
) -> PyResult<T> {
    let outcome = py.detach(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            alal_core::threads::with_threads(n_threads, f).and_then(|r| r)
        }))
    });
    match outcome {
        Ok(result) => result.map_err(|e| to_py(py, e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(to_py(py, Error::Internal(what)))
        }
    }
}
