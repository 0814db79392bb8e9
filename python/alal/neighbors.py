"""Neighbour lists from the Rust core, with ASE's conventions.

A pair ``(i, j, S)`` means that atom ``j`` translated by the integer lattice shift ``S`` lies within
the cutoff of atom ``i``: ``D = positions[j] - positions[i] + S @ cell`` (Å), ``d = |D|`` (Å) and
``d < cutoff`` strictly. Quantities are selected with ASE's letters: ``i``, ``j``, ``S``, ``D``,
``d``. Pairs are sorted by ``(i, j, S)``, so the output is the same for any number of threads.

Three entry points:

* :func:`neighbor_list` / :func:`primitive_neighbor_list`: drop-in replacements for the functions
  of :mod:`ase.neighborlist` (float cutoff, per-atom radii, or a per-element-pair dict);
* :class:`NeighborList`: a configured object in vesin's shape for raw arrays (shifts as int32,
  as vesin gives them; everything else as ASE);
* :func:`neighbor_list_batch`: many structures in one call, in parallel over structures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from numpy.typing import ArrayLike, NDArray

from alal import _core
from alal._validate import distance, float_array, n_threads_arg, pbc_flags
from alal.errors import InvalidInputError

__all__ = ["NeighborList", "neighbor_list", "neighbor_list_batch", "primitive_neighbor_list"]

Cutoff = Union[float, Sequence[float], NDArray[np.float64], Mapping[tuple[Any, Any], float]]
Result = Union[NDArray[Any], tuple[NDArray[Any], ...]]

_LETTERS = "ijSDd"
_LETTER_SET = frozenset(_LETTERS)


def _parse_quantities(quantities: str) -> str:
    if not isinstance(quantities, str) or not quantities:
        raise InvalidInputError(f"quantities must be a non-empty string of {_LETTERS!r}, got {quantities!r}")
    if not _LETTER_SET.issuperset(quantities):
        unknown = sorted(set(quantities) - _LETTER_SET)
        raise InvalidInputError(f"unknown quantities {''.join(unknown)!r}: choose among {_LETTERS!r}")
    return quantities


def _select(quantities: str, pairs: tuple[NDArray[Any], ...], ase_dtypes: bool = True) -> Result:
    """The requested arrays in order; with ``ase_dtypes`` the shifts are int64 as ASE gives them
    (the core makes int32, as vesin does)."""
    by_letter = dict(zip(_LETTERS, pairs))
    if ase_dtypes and "S" in quantities:
        by_letter["S"] = by_letter["S"].astype(np.int64)
    out = tuple(by_letter[q] for q in quantities)
    return out[0] if len(out) == 1 else out


def _element_number(key: Any) -> int:
    if isinstance(key, str):
        if key not in atomic_numbers:
            raise InvalidInputError(f"unknown element {key!r} in the cutoff dictionary")
        return atomic_numbers[key]
    return int(key)


def _cutoff_arguments(cutoff: Cutoff, n_atoms: int, numbers: ArrayLike | None) -> dict[str, Any]:
    """Keyword arguments of ``_core.neighbor_list`` for an ASE-style cutoff."""
    if isinstance(cutoff, Mapping):
        if numbers is None:
            raise InvalidInputError("a per-element-pair cutoff dictionary needs the atomic numbers")
        z = np.asarray(numbers, dtype=np.int64).reshape(-1)
        if z.shape != (n_atoms,):
            raise InvalidInputError(f"got {z.size} atomic numbers for {n_atoms} atoms")
        elements, species = np.unique(z, return_inverse=True)
        index = {int(e): k for k, e in enumerate(elements)}
        table = np.zeros((len(elements), len(elements)))
        for key, value in cutoff.items():
            try:
                a, b = key
            except (TypeError, ValueError) as err:
                raise InvalidInputError(f"cutoff dictionary keys must be element pairs, got {key!r}") from err
            value = distance(value, f"the cutoff of pair {key!r}")
            za, zb = _element_number(a), _element_number(b)
            if za in index and zb in index:
                table[index[za], index[zb]] = table[index[zb], index[za]] = value
        return {"cutoff": float(table.max(initial=0.0)), "species": species.astype(np.int64), "table": table}
    if np.ndim(cutoff) == 0:
        if isinstance(cutoff, np.ndarray):
            cutoff = cutoff.item()
        return {"cutoff": distance(cutoff, "the cutoff")}
    radii = float_array(cutoff, "per-atom cutoff radii", (n_atoms,))
    return {"cutoff": float(2 * radii.max(initial=0.0)), "radii": radii}


def primitive_neighbor_list(
    quantities: str,
    pbc: ArrayLike,
    cell: ArrayLike,
    positions: ArrayLike,
    cutoff: Cutoff,
    numbers: ArrayLike | None = None,
    self_interaction: bool = False,
    use_scaled_positions: bool = False,
    max_nbins: float | None = None,
    *,
    full_list: bool = True,
    n_threads: int | None = None,
) -> Result:
    """Neighbour list of raw arrays, with the signature of ASE's ``primitive_neighbor_list``.

    Args:
        quantities: letters among ``"ijSDd"``; one array per letter, in that order.
        pbc: periodicity along each lattice vector (a bool applies to all three).
        cell: lattice vectors as rows, Å, shape ``(3, 3)``. Rows along non-periodic directions are
            ignored (they may be zero).
        positions: Cartesian positions, Å, shape ``(n_atoms, 3)``; atoms may lie outside the cell.
        cutoff: a float (Å); per-atom radii (pair if ``d < r_i + r_j``); or a dict
            ``{(element, element): cutoff}`` with atomic numbers or symbols (needs ``numbers``).
        numbers: atomic numbers, for a dict cutoff.
        self_interaction: also return each atom as its own neighbour at zero shift.
        use_scaled_positions: ``positions`` are fractional coordinates.
        max_nbins: accepted for compatibility with ASE and ignored (the core sizes its bins itself).
        full_list: every pair twice (ASE's behaviour) or, if False, once.
        n_threads: threads to use (default: all).
    """
    del max_nbins
    quantities = _parse_quantities(quantities)
    flags = pbc_flags(pbc)
    cell_array = float_array(cell, "cell", (3, 3))
    positions_array = float_array(positions, "positions", (None, 3))
    if use_scaled_positions:
        positions_array = np.ascontiguousarray(positions_array @ cell_array)
    pairs = _core.neighbor_list(
        positions_array,
        cell_array,
        flags,
        full_list=bool(full_list),
        self_interaction=bool(self_interaction),
        shifts="S" in quantities,
        vectors="D" in quantities,
        distances="d" in quantities,
        n_threads=n_threads_arg(n_threads),
        **_cutoff_arguments(cutoff, len(positions_array), numbers),
    )
    return _select(quantities, pairs)


def neighbor_list(
    quantities: str,
    a: Atoms,
    cutoff: Cutoff,
    self_interaction: bool = False,
    max_nbins: float | None = None,
    *,
    full_list: bool = True,
    n_threads: int | None = None,
) -> Result:
    """Neighbour list of an :class:`ase.Atoms`, a drop-in for ``ase.neighborlist.neighbor_list``.

    Example::

        i, j, d = neighbor_list("ijd", atoms, 5.0)

    See :func:`primitive_neighbor_list` for the arguments.
    """
    if not isinstance(a, Atoms):
        raise InvalidInputError(f"expected an ase.Atoms, got {type(a).__name__}")
    return primitive_neighbor_list(
        quantities,
        a.pbc,
        np.asarray(a.cell),
        a.positions,
        cutoff,
        numbers=a.numbers,
        self_interaction=self_interaction,
        max_nbins=max_nbins,
        full_list=full_list,
        n_threads=n_threads,
    )


class NeighborList:
    """A reusable neighbour-list calculator for raw arrays, in the shape of vesin's.

    As in vesin, shifts ``S`` come as int32 (the ASE-style functions give int64).

    Example::

        nl = NeighborList(cutoff=5.0, full_list=True)
        i, j, D = nl.compute(points, box, periodic=True, quantities="ijD")

    Args:
        cutoff: spherical cutoff, Å.
        full_list: every pair twice, or once.
        self_interaction: include each atom as its own neighbour at zero shift.
        n_threads: threads to use (default: all).
    """

    def __init__(
        self,
        cutoff: float,
        full_list: bool = True,
        *,
        self_interaction: bool = False,
        n_threads: int | None = None,
    ) -> None:
        self.cutoff = distance(cutoff, "the cutoff")
        self.full_list = bool(full_list)
        self.self_interaction = bool(self_interaction)
        self.n_threads = n_threads_arg(n_threads)

    def compute(self, points: ArrayLike, box: ArrayLike, periodic: ArrayLike, quantities: str = "ij") -> Result:
        """Pairs of ``points`` (Å, ``(n, 3)``) in ``box`` (lattice vectors as rows, Å)."""
        quantities = _parse_quantities(quantities)
        pairs = _core.neighbor_list(
            float_array(points, "points", (None, 3)),
            float_array(box, "box", (3, 3)),
            pbc_flags(periodic, "periodic"),
            self.cutoff,
            full_list=self.full_list,
            self_interaction=self.self_interaction,
            shifts="S" in quantities,
            vectors="D" in quantities,
            distances="d" in quantities,
            n_threads=self.n_threads,
        )
        return _select(quantities, pairs, ase_dtypes=False)


def neighbor_list_batch(
    quantities: str,
    structures: Sequence[Atoms],
    cutoff: float,
    self_interaction: bool = False,
    *,
    full_list: bool = True,
    n_threads: int | None = None,
) -> list[Result]:
    """Neighbour lists of many structures with one cutoff (Å), in parallel over structures.

    Returns one result per structure, each as :func:`neighbor_list` would return it.
    """
    quantities = _parse_quantities(quantities)
    atoms_list = list(structures)
    for k, atoms in enumerate(atoms_list):
        if not isinstance(atoms, Atoms):
            raise InvalidInputError(f"structure {k}: expected an ase.Atoms, got {type(atoms).__name__}")
    results = _core.neighbor_list_batch(
        [float_array(a.positions, f"positions of structure {k}", (None, 3)) for k, a in enumerate(atoms_list)],
        [float_array(np.asarray(a.cell), f"cell of structure {k}", (3, 3)) for k, a in enumerate(atoms_list)],
        [pbc_flags(a.pbc) for a in atoms_list],
        distance(cutoff, "the cutoff"),
        full_list=bool(full_list),
        self_interaction=bool(self_interaction),
        shifts="S" in quantities,
        vectors="D" in quantities,
        distances="d" in quantities,
        n_threads=n_threads_arg(n_threads),
    )
    return [_select(quantities, pairs) for pairs in results]
