"""Content-hash ids of structures, as the dataset store keys its rows.

The id is the first 16 hex digits of a SHA-256 over
atomic numbers, positions, cell and pbc, built so that equal structures get equal ids:

- positions are first wrapped into the cell along periodic directions (ASE's ``wrap_positions``,
  which keeps fractional coordinates in ``[-1e-7, 1 - 1e-7)``: an atom on a cell face, the common
  case in crystals, stays at 0 whatever float noise puts it at ``-1e-17`` or ``1 - 1e-16``); a copy
  translated by a lattice vector therefore collides. Non-periodic directions are kept as they are;
- coordinates (Å) are rounded to integers of 1e-8 Å (what extended XYZ files keep), then, in integer
  arithmetic, to 1e-6 Å. The first step makes the id survive an export to extxyz and a re-import:
  stored positions are the wrapped ones, the file rounds them to 1e-8 Å, and re-rounding those to
  1e-8 Å gives the same integers, so no coordinate can fall on the other side of a 1e-6 Å boundary;
- atoms are sorted by (Z, x, y, z) before hashing, so a permuted copy collides too;
- the cell is rounded the same way; pbc is hashed as three bytes. A different but equivalent cell
  choice (a supercell, another basis) is a different structure.
A rattled copy (any displacement ≳ 1e-6 Å) is a new structure. Adding a structure already present,
in any state, returns its id and changes nothing.
"""

from __future__ import annotations

import hashlib

import numpy as np
from ase import Atoms
from ase.geometry import complete_cell, wrap_positions

from alal.errors import InvalidInputError

__all__ = ["canonical", "content_hash", "structure_id"]


def _quantise(values: np.ndarray) -> np.ndarray:
    """Å → integers of 1e-6 Å, through integers of 1e-8 Å (see the module docstring)."""
    fine = np.rint(np.asarray(values, dtype=np.float64) * 1e8).astype(np.int64)
    return np.floor_divide(fine + 50, 100)


def canonical(atoms: Atoms, where: str) -> Atoms:
    """A bare copy of ``atoms`` (numbers, positions wrapped along periodic directions, cell, pbc),
    after checking that it can be stored."""
    if not isinstance(atoms, Atoms):
        raise InvalidInputError(f"{where} is a {type(atoms).__name__}, not an ase.Atoms")
    positions = np.array(atoms.positions, dtype=np.float64)
    cell = np.array(atoms.cell[:], dtype=np.float64)
    pbc = np.array(atoms.pbc, dtype=bool)
    if not (np.isfinite(positions).all() and np.isfinite(cell).all()):
        raise InvalidInputError(f"{where} has non-finite positions or cell")
    if max(np.abs(positions).max(initial=0.0), np.abs(cell).max()) > 1e9:
        raise InvalidInputError(f"{where} has coordinates beyond 1e9 Å")
    if pbc.any():
        if not np.linalg.norm(cell[pbc], axis=1).all():
            raise InvalidInputError(f"{where} is periodic along a direction without a cell vector")
        if abs(np.linalg.det(complete_cell(cell))) < 1e-12:
            raise InvalidInputError(f"{where} has a singular cell")
        positions = wrap_positions(positions, cell, pbc)
    return Atoms(numbers=np.array(atoms.numbers), positions=positions, cell=cell, pbc=pbc)


def structure_id(atoms: Atoms) -> str:
    """The content hash of a structure (16 hex digits): equal for copies that differ by lattice
    translations, atom order or below 1e-6 Å; see the module docstring."""
    return content_hash(canonical(atoms, "structure"))


def content_hash(atoms: Atoms) -> str:
    numbers = np.asarray(atoms.numbers, dtype=np.int64)
    q = _quantise(atoms.positions)
    order = np.lexsort((q[:, 2], q[:, 1], q[:, 0], numbers)) if len(numbers) else np.arange(0)
    h = hashlib.sha256(b"alal.structure.v1")
    h.update(np.asarray(atoms.pbc, dtype="u1").tobytes())
    h.update(_quantise(atoms.cell[:]).astype("<i8").tobytes())
    h.update(np.int64(len(numbers)).astype("<i8").tobytes())
    h.update(numbers[order].astype("<i8").tobytes())
    h.update(q[order].astype("<i8").tobytes())
    return h.hexdigest()[:16]
