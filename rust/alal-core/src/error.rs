//! Error type of the core: every user-reachable failure is a value, never a panic.

/// What went wrong in a core computation.
///
/// The binding maps each variant to its own Python exception under `alal.errors.AlalError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller gave input that cannot be used (bad shape, NaN, singular cell, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// The input was valid but the computation could not produce a finite result.
    #[error("{0}")]
    Numerical(String),
    /// A broken invariant inside alal: a bug, please report it.
    #[error("internal error in alal-core (please report): {0}")]
    Internal(String),
}

/// Result with the core's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for an [`Error::InvalidInput`] built with `format!`.
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::Error::InvalidInput(format!($($arg)*)) };
}
pub(crate) use invalid;
