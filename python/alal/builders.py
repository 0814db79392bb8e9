"""Builders of starting cells: crystals, vacancies, slabs and random periodic boxes.

Every builder returns a new :class:`ase.Atoms` (no calculator attached). Randomness comes only from
an explicit :class:`numpy.random.Generator` (``rng``), so a seed reproduces a cell exactly. Lengths
are in Å, volumes in Å³. Bad arguments raise :class:`alal.errors.InvalidInputError` (a
``ValueError``) naming the argument.

Example::

    rng = np.random.default_rng(0)
    fcc = crystal("Al", "fcc", n_atoms=108, strain=0.01, rattle=0.05, rng=rng)
    liquid = random_box("Al", 64, volume_per_atom=17.5, min_distance=2.0, rng=rng)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Union

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc100, fcc110, fcc111
from ase.data import atomic_numbers, reference_states
from numpy.typing import ArrayLike

from alal.errors import InvalidInputError
from alal.neighbors import neighbor_list

__all__ = ["crystal", "interstitials", "min_distance", "random_box", "slab", "vacancies"]

Strain = Union[float, ArrayLike, None]

STRUCTURES = ("fcc", "bcc", "hcp", "sc", "diamond")
FACETS = ("100", "110", "111")

# a³ per atom of the conventional cell (hcp: times c/a, see _lattice_constant).
_VOLUME_FACTOR = {"fcc": 1 / 4, "bcc": 1 / 2, "hcp": math.sqrt(3) / 4, "sc": 1.0, "diamond": 1 / 8}
_IDEAL_COVERA = math.sqrt(8 / 3)
# The most elongated repetition that crystal(n_atoms=...) accepts: longest / shortest cell height.
_MAX_ASPECT = 2.0


def _element(symbol: Any, name: str = "symbol") -> str:
    if not isinstance(symbol, str) or symbol not in atomic_numbers or symbol == "X":
        raise InvalidInputError(f"{name} must be a chemical symbol such as 'Al', got {symbol!r}")
    return symbol


def _generator(rng: Any, name: str = "rng") -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(f"{name} must be a numpy.random.Generator (np.random.default_rng), got {rng!r}")
    return rng


def _integer(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _number(value: Any, name: str, *, positive: bool = False, unit: str = "") -> float:
    """A finite real number; with ``positive``, > 0; otherwise >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"{name} must be a number{unit}, got {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        bound = "> 0" if positive else ">= 0"
        raise InvalidInputError(f"{name} must be finite and {bound}{unit}, got {value!r}")
    return x


def _int_tuple(value: Any, name: str, length: int) -> tuple[int, ...]:
    try:
        items = tuple(value)
    except TypeError as err:
        raise InvalidInputError(f"{name} must be {length} positive integers, got {value!r}") from err
    if len(items) != length:
        raise InvalidInputError(f"{name} must be {length} positive integers, got {value!r}")
    return tuple(_integer(v, name, 1) for v in items)


def _reference_volume(symbol: str) -> float:
    """Volume per atom (Å³) of ``symbol`` in ASE's reference crystal structure."""
    try:
        reference = bulk(symbol)
    except (ValueError, KeyError, RuntimeError, TypeError) as err:
        message = f"ASE has no reference crystal for {symbol!r}: pass the lattice constant a"
        raise InvalidInputError(message) from err
    return float(reference.get_volume() / len(reference))


def _lattice_constant(symbol: str, structure: str, covera: float) -> float:
    """``a`` (Å): ASE's reference value when ``structure`` is the element's reference structure,
    otherwise the value that keeps the reference volume per atom."""
    reference = reference_states[atomic_numbers[symbol]] or {}
    if reference.get("symmetry") == structure and "a" in reference:
        return float(reference["a"])
    factor = _VOLUME_FACTOR[structure] * (covera if structure == "hcp" else 1.0)
    return float((_reference_volume(symbol) / factor) ** (1 / 3))


def _heights(cell: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of a cell (Å)."""
    volume = abs(np.linalg.det(cell))
    areas = np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    return volume / areas


def _near_cubic_repeat(cell: np.ndarray, atoms_per_cell: int, n_atoms: int) -> tuple[int, int, int]:
    """The repetition with the most atoms not above ``n_atoms`` among those whose longest cell height
    is at most ``_MAX_ASPECT`` times the shortest; ties go to the most cubic. At least one cell."""
    h = _heights(cell)
    n_cells = n_atoms // atoms_per_cell
    best: tuple[int, float, tuple[int, int, int]] = (1, float(h.max() / h.min()), (1, 1, 1))
    if n_cells < 1:
        return best[2]
    # Every side of an accepted repetition is at most _MAX_ASPECT times the cube root of its volume.
    edge = _MAX_ASPECT * (n_cells * float(np.prod(h))) ** (1 / 3) * (1 + 1e-9)
    tol = 1 + 1e-9
    for n1 in range(1, min(n_cells, int(edge / h[0])) + 1):
        for n2 in range(1, min(n_cells // n1, int(edge / h[1])) + 1):
            l1, l2 = n1 * h[0], n2 * h[1]
            if max(l1, l2) > _MAX_ASPECT * min(l1, l2) * tol:
                continue
            n3 = min(n_cells // (n1 * n2), int(_MAX_ASPECT * min(l1, l2) * tol / h[2]))
            if n3 < 1 or max(l1, l2) > _MAX_ASPECT * n3 * h[2] * tol:
                continue
            sides = np.array([l1, l2, n3 * h[2]])
            key = (n1 * n2 * n3, float(sides.max() / sides.min()), (n1, n2, n3))
            if key[0] > best[0] or (key[0] == best[0] and (key[1], key[2]) < (best[1], best[2])):
                best = key
    return best[2]


def _deformation(strain: Strain) -> np.ndarray:
    """The deformation gradient F (3×3) of a scalar linear strain or of a given F."""
    if np.ndim(strain) == 0:
        if isinstance(strain, (bool, np.bool_)) or not isinstance(strain, (int, float, np.number)):
            raise InvalidInputError(f"strain must be a number or a 3x3 deformation gradient, got {strain!r}")
        if not (math.isfinite(float(strain)) and float(strain) > -1):
            raise InvalidInputError(f"a scalar strain must be finite and > -1, got {strain!r}")
        return (1.0 + float(strain)) * np.eye(3)
    try:
        f = np.asarray(strain, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"strain must be a number or a 3x3 deformation gradient: {err}") from err
    if f.shape != (3, 3) or not np.isfinite(f).all():
        raise InvalidInputError(f"strain must be a number or a finite 3x3 deformation gradient, got {f.shape}")
    if np.linalg.det(f) <= 0:
        raise InvalidInputError("strain: the deformation gradient must have a positive determinant")
    return f


def crystal(
    symbol: str,
    structure: str = "fcc",
    *,
    a: float | None = None,
    covera: float | None = None,
    n_atoms: int | None = None,
    repeat: Sequence[int] | None = None,
    strain: Strain = None,
    rattle: float = 0.0,
    rng: np.random.Generator | None = None,
) -> Atoms:
    """A periodic crystal of one element, from its conventional cell (hcp: orthorhombic, 4 atoms).

    Args:
        symbol: chemical symbol, e.g. ``"Al"``.
        structure: ``"fcc"``, ``"bcc"``, ``"hcp"``, ``"sc"`` or ``"diamond"``.
        a: lattice constant, Å. Default: ASE's reference value when ``structure`` is the element's
            reference structure; otherwise the ``a`` that keeps the reference volume per atom (so the
            density stays sensible, e.g. bcc Al at 16.6 Å³/atom).
        covera: c/a of hcp. Default: the element's reference c/a if its reference structure is hcp,
            otherwise the ideal sqrt(8/3).
        n_atoms: target size: the near-cubic repetition (longest/shortest side <= 2) with the most
            atoms not above ``n_atoms``; at least one cell. Exclusive with ``repeat``.
        repeat: repetitions ``(n1, n2, n3)`` of the conventional cell. Default: one cell.
        strain: a scalar ε (every length times 1 + ε, the volume times (1 + ε)³) or a 3×3
            deformation gradient F (cell rows ``a_k -> F a_k``); atoms move with the cell.
        rattle: standard deviation (Å) of Gaussian displacements added to every coordinate.
        rng: the random generator; needed when ``rattle > 0``.
    """
    symbol = _element(symbol)
    if structure not in STRUCTURES:
        raise InvalidInputError(f"structure must be one of {STRUCTURES}, got {structure!r}")
    reference = reference_states[atomic_numbers[symbol]] or {}
    if covera is None:
        is_hcp = reference.get("symmetry") == "hcp" and "c/a" in reference
        covera = float(reference["c/a"]) if is_hcp else _IDEAL_COVERA
    else:
        covera = _number(covera, "covera", positive=True)
    if a is None:
        a = _lattice_constant(symbol, structure, covera)
    else:
        a = _number(a, "a", positive=True, unit=" (Å)")
    rattle = _number(rattle, "rattle", unit=" (Å)")
    if rattle > 0:
        rng = _generator(rng)
    if n_atoms is not None and repeat is not None:
        raise InvalidInputError("give either n_atoms or repeat, not both")

    if structure == "hcp":
        atoms = bulk(symbol, "hcp", a=a, covera=covera, orthorhombic=True)
    else:
        atoms = bulk(symbol, structure, a=a, cubic=True)
    if n_atoms is not None:
        target = _integer(n_atoms, "n_atoms", 1)
        reps = _near_cubic_repeat(np.asarray(atoms.cell), len(atoms), target)
    else:
        reps = (1, 1, 1) if repeat is None else _int_tuple(repeat, "repeat", 3)
    atoms = atoms.repeat(reps)
    if strain is not None:
        f = _deformation(strain)
        atoms.set_cell(np.asarray(atoms.cell) @ f.T, scale_atoms=True)
    if rattle > 0:
        assert rng is not None
        atoms.positions = atoms.positions + rng.normal(0.0, rattle, size=atoms.positions.shape)
    atoms.pbc = True
    return atoms


def vacancies(atoms: Atoms, n: int, *, rng: np.random.Generator) -> Atoms:
    """A copy of ``atoms`` with ``n`` atoms, drawn at random without replacement, removed.

    ``n`` must leave at least one atom (``0 <= n < len(atoms)``). The calculator is not copied.
    """
    if not isinstance(atoms, Atoms):
        raise InvalidInputError(f"atoms must be an ase.Atoms, got {type(atoms).__name__}")
    n = _integer(n, "n", 0)
    if n >= len(atoms):
        raise InvalidInputError(f"n must be smaller than the number of atoms ({len(atoms)}), got {n}")
    removed = _generator(rng).choice(len(atoms), size=n, replace=False)
    out = atoms.copy()
    del out[[int(i) for i in removed]]
    return out


def interstitials(atoms: Atoms, n: int, *, symbol: str | None = None, rng: np.random.Generator,
                  max_tries: int = 500) -> Atoms:
    """A copy of ``atoms`` with ``n`` extra atoms (``symbol``, default: the first atom's element)
    placed one at a time at the random point, among ``max_tries`` uniform trials in the cell, that
    lies farthest from every atom and periodic image (the largest hole found)."""
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise InvalidInputError("atoms must be a non-empty ase.Atoms")
    n = _integer(n, "n", 0)
    rng = _generator(rng)
    symbol = _element(symbol if symbol is not None else atoms.get_chemical_symbols()[0])
    out = atoms.copy()
    out.calc = None
    cell = np.asarray(out.cell)
    if abs(np.linalg.det(cell)) < 1e-9:
        raise InvalidInputError("interstitials need a cell with a volume")
    for _ in range(n):
        trial = rng.random((max_tries, 3)) @ cell
        probe = out.copy()
        probe += Atoms([symbol] * max_tries, positions=trial, cell=cell, pbc=out.pbc)
        i, j, d = neighbor_list("ijd", probe, 4.0)
        best = np.full(max_tries, 4.0)
        mask = (i >= len(out)) & (j < len(out))
        np.minimum.at(best, i[mask] - len(out), d[mask])
        out += Atoms(symbol, positions=[trial[int(np.argmax(best))]])
    return out


def slab(
    symbol: str,
    facet: str = "111",
    *,
    layers: int = 4,
    size: Sequence[int] = (2, 2),
    vacuum: float = 6.0,
    a: float | None = None,
) -> Atoms:
    """An fcc (100), (110) or (111) slab, built by ASE's ``fcc100``/``fcc110``/``fcc111``.

    The cell is periodic along all three directions (``pbc = True``): the slab and ``vacuum`` Å of
    empty space on each side of it fill the cell along z, so a slab faces its periodic image across
    ``2 * vacuum`` Å, as plane-wave DFT codes expect.

    Args:
        symbol: an element whose reference structure is fcc (others need an explicit ``a``).
        facet: ``"100"``, ``"110"`` or ``"111"``.
        layers: number of atomic layers.
        size: surface cells along x and y (one atom per layer each).
        vacuum: empty space on each side of the slab, Å (> 0).
        a: fcc lattice constant, Å. Default: ASE's reference value.
    """
    symbol = _element(symbol)
    builders = {"100": fcc100, "110": fcc110, "111": fcc111}
    if facet not in builders:
        raise InvalidInputError(f"facet must be one of {FACETS}, got {facet!r}")
    layers = _integer(layers, "layers", 1)
    nx, ny = _int_tuple(size, "size", 2)
    vacuum = _number(vacuum, "vacuum", positive=True, unit=" (Å)")
    if a is None:
        reference = reference_states[atomic_numbers[symbol]] or {}
        if reference.get("symmetry") != "fcc":
            found = reference.get("symmetry")
            message = f"slab builds fcc surfaces; {symbol}'s reference structure is {found}: pass a"
            raise InvalidInputError(message)
        a = float(reference["a"])
    else:
        a = _number(a, "a", positive=True, unit=" (Å)")
    atoms = builders[facet](symbol, (nx, ny, layers), a=a, vacuum=vacuum, periodic=True)
    atoms.info.pop("adsorbate_info", None)  # nested arrays that extxyz and ase.db cannot store
    atoms.pbc = True
    return atoms


def random_box(
    symbols: str | Sequence[str],
    n_atoms: int,
    *,
    volume_per_atom: float,
    min_distance: float,
    rng: np.random.Generator,
    max_tries: int = 10_000,
) -> Atoms:
    """A cubic periodic box of ``n_atoms`` atoms placed uniformly at random, one at a time.

    A trial position is rejected when it lies closer than ``min_distance`` to an atom already placed
    or to any periodic image of one (minimum image in the cubic box).

    Args:
        symbols: one chemical symbol, or a sequence drawn from uniformly for each atom.
        n_atoms: number of atoms (>= 1).
        volume_per_atom: Å³; the box edge is ``(n_atoms * volume_per_atom) ** (1/3)`` Å.
        min_distance: smallest allowed interatomic distance, Å.
        rng: the random generator.
        max_tries: trial positions per atom before giving up.

    Raises:
        InvalidInputError: bad arguments, or an atom could not be placed after ``max_tries`` trials
            (the box is too dense for ``min_distance``).
    """
    n_atoms = _integer(n_atoms, "n_atoms", 1)
    volume_per_atom = _number(volume_per_atom, "volume_per_atom", positive=True, unit=" (Å³)")
    d_min = _number(min_distance, "min_distance", unit=" (Å)")
    rng = _generator(rng)
    max_tries = _integer(max_tries, "max_tries", 1)
    if isinstance(symbols, str):
        species = [_element(symbols, "symbols")] * n_atoms
    else:
        pool = [_element(s, "symbols") for s in symbols]
        if not pool:
            raise InvalidInputError("symbols must name at least one element")
        species = [pool[int(k)] for k in rng.integers(len(pool), size=n_atoms)]

    edge = (n_atoms * volume_per_atom) ** (1 / 3)
    packing = n_atoms * (math.pi / 6) * d_min**3 / edge**3
    if d_min > edge or packing > math.pi / math.sqrt(18):
        raise InvalidInputError(
            f"random_box: {n_atoms} atoms at least {d_min} Å apart cannot fit in a {edge:.3f} Å box "
            f"(volume_per_atom={volume_per_atom} Å³): lower min_distance or raise volume_per_atom"
        )
    positions = np.empty((n_atoms, 3))
    for k in range(n_atoms):
        tries = 0
        while tries < max_tries:
            batch = min(64, max_tries - tries)
            trial = rng.random((batch, 3)) * edge
            diff = trial[:, None, :] - positions[None, :k, :]
            diff -= edge * np.round(diff / edge)
            ok = np.flatnonzero(np.all(np.einsum("tkx,tkx->tk", diff, diff) >= d_min**2, axis=1))
            if ok.size:
                positions[k] = trial[ok[0]]
                break
            tries += batch
        else:
            raise InvalidInputError(
                f"random_box: could not place atom {k + 1} of {n_atoms} at least {d_min} Å from the others "
                f"after max_tries={max_tries} trials; the box is too dense "
                f"(volume_per_atom={volume_per_atom} Å³): "
                "lower min_distance or raise volume_per_atom"
            )
    return Atoms(species, positions=positions, cell=np.eye(3) * edge, pbc=True)


def min_distance(atoms: Atoms) -> float:
    """The shortest distance (Å) between two atoms, periodic images included.

    An atom's own image across a periodic direction counts (a one-atom periodic cell gives the
    length of its shortest lattice translation). Any cell shape and mixed ``pbc`` work. Returns
    ``inf`` when there is no pair at all (fewer than two atoms and no periodic direction).
    """
    if not isinstance(atoms, Atoms):
        raise InvalidInputError(f"atoms must be an ase.Atoms, got {type(atoms).__name__}")
    positions, cell = atoms.positions, np.asarray(atoms.cell)
    if not np.isfinite(positions).all() or not np.isfinite(cell).all():
        raise InvalidInputError("atoms: positions and cell must be finite")
    # An upper bound that some pair attains: the first two atoms, or a periodic lattice translation.
    bounds = [float(np.linalg.norm(v)) for v, periodic in zip(cell, atoms.pbc) if periodic]
    if min(bounds, default=1.0) == 0.0:
        raise InvalidInputError("atoms: a periodic direction has a zero lattice vector")
    if len(atoms) >= 2:
        bounds.append(float(np.linalg.norm(positions[1] - positions[0])))
    if not bounds or len(atoms) == 0:
        return math.inf
    upper = min(bounds)
    if upper == 0.0:
        return 0.0
    # Grow the cutoff so the list stays short: it ends below twice the answer (or at the bound).
    cutoff = min(3.0, upper)
    while True:
        stop = cutoff >= upper
        d = neighbor_list("d", atoms, upper * (1 + 1e-9) + 1e-9 if stop else cutoff)
        if d.size:
            return float(d.min())
        if stop:
            return upper  # rounding only: the pair that gives the bound lies inside the cutoff
        cutoff *= 2.0

