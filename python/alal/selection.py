"""Batch selection among a generation's candidates: uncertainty per unit of oracle cost, spread out
in descriptor space (greedy farthest-point sampling on each structure's mean descriptor).

Score of candidate ``i`` given what is already chosen (and, optionally, the existing data set):
``u_i / c_i · (d_i / d̄)^diversity``, where ``u_i`` is its uncertainty, ``c_i`` its relative
cost (``N^cost_exponent`` normalised to mean 1), ``d_i`` the distance from its mean descriptor to
the nearest chosen or existing structure and ``d̄`` the median of those distances. ``diversity = 0``
picks by uncertainty per cost alone.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from alal.errors import InvalidInputError

__all__ = ["select_batch"]


def select_batch(
    uncertainty: ArrayLike,
    n_atoms: ArrayLike,
    descriptors: ArrayLike,
    n: int,
    *,
    existing: ArrayLike | None = None,
    cost_exponent: float = 3.0,
    diversity: float = 1.0,
) -> list[int]:
    """Indices of at most ``n`` candidates, in the order chosen.

    Args:
        uncertainty: ``(C,)`` non-negative scores (e.g. max force spread, eV/Å).
        n_atoms: ``(C,)`` atoms per candidate (the oracle cost is ``n_atoms**cost_exponent``).
        descriptors: ``(C, F)`` mean descriptor of each candidate.
        existing: ``(M, F)`` mean descriptors of structures already labelled (they count as chosen).
    """
    u = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
    sizes = np.asarray(n_atoms, dtype=np.float64).reshape(-1)
    x = np.asarray(descriptors, dtype=np.float64)
    c = len(u)
    if sizes.shape != (c,) or x.ndim != 2 or x.shape[0] != c:
        raise InvalidInputError("uncertainty, n_atoms and descriptors must describe the same candidates")
    if not (np.isfinite(u).all() and (u >= 0).all() and (sizes > 0).all() and np.isfinite(x).all()):
        raise InvalidInputError("uncertainties must be finite and non-negative, sizes positive, descriptors finite")
    if n <= 0 or c == 0:
        return []
    cost = sizes**cost_exponent
    value = (u + 1e-12) / (cost / cost.mean())
    # Standardise the descriptor space so that no feature dominates the distances.
    ref = x if existing is None else np.vstack([x, np.asarray(existing, dtype=np.float64)])
    # Features that barely vary (std below a tenth of the median std) are not blown up into noise.
    scale = ref.std(axis=0)
    scale = np.maximum(scale, max(0.1 * float(np.median(scale)), 1e-12))
    z = (x - ref.mean(axis=0)) / scale
    nearest = np.full(c, np.inf)
    if existing is not None and len(existing):
        e = (np.asarray(existing, dtype=np.float64) - ref.mean(axis=0)) / scale
        for row in e:
            nearest = np.minimum(nearest, np.linalg.norm(z - row, axis=1))
    chosen: list[int] = []
    available = np.ones(c, dtype=bool)
    while len(chosen) < min(n, c):
        finite = nearest[available & np.isfinite(nearest)]
        if diversity > 0 and finite.size:
            typical = max(float(np.median(finite)), 1e-12)
            spread = np.where(np.isfinite(nearest), nearest / typical, 1.0)
            score = value * np.power(np.maximum(spread, 0.0), diversity)
        else:
            score = value.copy()
        score[~available] = -np.inf
        k = int(np.argmax(score))
        chosen.append(k)
        available[k] = False
        nearest = np.minimum(nearest, np.linalg.norm(z - z[k], axis=1))
    return chosen


def mean_descriptors(descriptor: object, structures: list) -> NDArray[np.float64]:
    """``(len(structures), F)`` mean over atoms of each structure's features."""
    feats = descriptor.compute_batch(structures)  # type: ignore[attr-defined]
    return np.array([f.mean(axis=0) for f in feats])
