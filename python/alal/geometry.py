"""Geometry checks applied before a structure reaches an oracle (or is kept as a candidate)."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from alal.errors import UnphysicalStructureError
from alal.neighbors import neighbor_list

__all__ = ["check_geometry", "closest_pair"]


def closest_pair(atoms: Atoms, within: float) -> tuple[int, int, float] | None:
    """``(i, j, d)`` of the closest pair (periodic images included) if it is closer than ``within``
    Å, else ``None``."""
    i, j, d = neighbor_list("ijd", atoms, within)
    if d.size == 0:
        return None
    k = int(np.argmin(d))
    return int(i[k]), int(j[k]), float(d[k])


def check_geometry(atoms: Atoms, *, min_distance: float) -> None:
    """Refuse a structure no oracle should see, with the reason: non-finite positions or cell, a
    periodic direction without a lattice vector, a 3-D periodic cell without volume, or two atoms
    (or an atom and an image) closer than ``min_distance`` Å."""
    if not isinstance(atoms, Atoms):
        raise UnphysicalStructureError(f"expected an ase.Atoms, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise UnphysicalStructureError("the structure has no atoms")
    if not np.isfinite(atoms.positions).all():
        bad = int(np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))[0])
        raise UnphysicalStructureError(f"atom {bad} has a non-finite position {atoms.positions[bad]}")
    cell = np.asarray(atoms.cell)
    if not np.isfinite(cell).all():
        raise UnphysicalStructureError("the cell has non-finite entries")
    for axis, periodic in enumerate(atoms.pbc):
        if periodic and np.linalg.norm(cell[axis]) < 1e-9:
            raise UnphysicalStructureError(f"periodic along axis {axis} without a lattice vector")
    if atoms.pbc.all() and abs(np.linalg.det(cell)) < 1e-6:
        raise UnphysicalStructureError("the periodic cell has no volume")
    if min_distance > 0:
        pair = closest_pair(atoms, min_distance)
        if pair is not None:
            i, j, d = pair
            raise UnphysicalStructureError(
                f"atoms {i} and {j} are {d:.3f} Å apart, closer than the minimum distance {min_distance} Å")
