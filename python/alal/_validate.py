"""Input coercion shared by the public wrappers: arrays in the dtype and layout the core wants,
with errors that name the argument."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from alal.errors import InvalidInputError


def float_array(value: Any, name: str, shape: tuple[int | None, ...]) -> NDArray[np.float64]:
    """``value`` as a C-contiguous float64 array of ``shape`` (``None``: any length).

    Only real numbers are accepted: complex, text, dates and other kinds are refused rather than
    silently converted."""
    if (type(value) is np.ndarray and value.dtype == np.float64 and value.flags.c_contiguous
            and value.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, value.shape))):
        return value  # already as wanted: the common case in a loop of calls, kept cheap
    try:
        raw = np.asarray(value)
        if raw.dtype.kind not in "biufO":
            raise TypeError(f"got dtype {raw.dtype}")
        array = np.ascontiguousarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{name} must be an array of real numbers: {err}") from err
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        wanted = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise InvalidInputError(f"{name} must have shape {wanted}, got {array.shape}")
    return array


def pbc_flags(value: Any, name: str = "pbc") -> tuple[bool, bool, bool]:
    """Periodicity as three booleans (a single bool applies to all three directions)."""
    if type(value) is bool:
        return (value, value, value)
    flags = np.asarray(value)
    if flags.shape == ():
        flags = np.repeat(flags, 3)
    if flags.shape != (3,):
        raise InvalidInputError(f"{name} must be a bool or three bools, got {value!r}")
    return (bool(flags[0]), bool(flags[1]), bool(flags[2]))


def distance(value: Any, name: str) -> float:
    """A finite, non-negative distance in Å."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"{name} must be a number (Å), got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise InvalidInputError(f"{name} must be a finite, non-negative distance in Å, got {value}")
    return value


def n_threads_arg(n_threads: int | None) -> int:
    """Thread count for the core: ``None`` means all (0 in the core)."""
    if n_threads is None:
        return 0
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise InvalidInputError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    return int(n_threads)
