"""Neighbour lists of :mod:`alal.neighbors` against ASE's reference implementation.

Property-based (hypothesis) comparisons of :func:`alal.neighbors.neighbor_list` and
:func:`alal.neighbors.primitive_neighbor_list` with :mod:`ase.neighborlist` on random triclinic
cells (mildly and strongly skewed, rotated), every combination of periodic boundary conditions,
cutoffs larger than the cell, atoms outside the cell, one-atom cells, empty structures, clusters
with a zero cell, with and without self interaction, and the three forms of cutoff (a float,
per-atom radii, a per-element-pair dictionary keyed by symbols or atomic numbers).

The pairs ``(i, j, S)`` must be the same sets, and ``D`` and ``d`` must agree to 1e-10 Å. Pairs whose
distance lies within 1e-9 Å of their cutoff may appear in one list only: which side of the cutoff
they fall on is decided by rounding.

Also checked: sorting by ``(i, j, S)``; identical output for 1 and 2 threads; half lists; the
:class:`~alal.neighbors.NeighborList` object; :func:`~alal.neighbors.neighbor_list_batch`; the
return types and dtypes.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.data import chemical_symbols
from ase.neighborlist import neighbor_list as ase_neighbor_list
from ase.neighborlist import primitive_neighbor_list as ase_primitive_neighbor_list
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import alal.neighbors as nb

#: Pairs this close to their cutoff (Å) may be on either side of it.
BOUNDARY = 1e-9
#: Agreement of vectors and distances with ASE (Å).
TOL = 1e-10
#: Elements used for per-element-pair cutoffs.
ELEMENTS = (1, 6, 8, 14)

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    database=None,  # do not write .hypothesis/ into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

Key = tuple[int, int, int, int, int]
PairCutoff = Callable[[int, int], float]


# --------------------------------------------------------------------------------------------------
# Helpers


def rotation(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a (non-normalised) quaternion."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def face_distances(cell: np.ndarray) -> np.ndarray:
    """Distance between lattice planes along each row, as ASE computes it (1 for zero rows)."""
    reciprocal = np.linalg.pinv(cell).T
    lengths = np.linalg.norm(reciprocal, axis=1)
    with np.errstate(over="ignore", divide="ignore"):
        return np.where(lengths > 0, 1 / np.where(lengths > 0, lengths, 1), 1.0)


def search_cost(cell: np.ndarray, pbc: tuple[bool, bool, bool], n_atoms: int, max_cutoff: float) -> tuple[int, float]:
    """(ASE's number of bin-pair loop iterations, a bound on the candidate pairs).

    Used to keep the examples cheap: ASE's pure-Python search loops over neighbouring bins.
    """
    face = face_distances(cell)
    if not (np.isfinite(face).all() and face.max() < 1e6):
        # pinv left rounding noise in the reciprocal of a zero row: ASE would make absurd bins.
        return 10**9, math.inf
    bin_size = max(max_cutoff, 3.0)
    nbins = np.maximum((face / bin_size).astype(int), 1)
    loops = 1
    images = 1.0
    for k in range(3):
        search = int(math.ceil(bin_size * nbins[k] / face[k]))
        if nbins[k] == 1 and not pbc[k]:
            search = 0
        loops *= 2 * search + 1
        if pbc[k]:
            images *= 2 * math.ceil(max_cutoff / face[k]) + 1
    return loops, images * max(n_atoms, 1) ** 2


def keys_of(i: np.ndarray, j: np.ndarray, S: np.ndarray) -> list[Key]:
    return list(zip(i.tolist(), j.tolist(), S[:, 0].tolist(), S[:, 1].tolist(), S[:, 2].tolist()))


def as_map(result: tuple[np.ndarray, ...]) -> dict[Key, tuple[np.ndarray, float]]:
    """``{(i, j, S): (D, d)}`` of an ``"ijSDd"`` result."""
    i, j, S, D, d = result
    keys = keys_of(i, j, S)
    mapping = {k: (D[n], float(d[n])) for n, k in enumerate(keys)}
    assert len(mapping) == len(keys), "a pair (i, j, S) appears more than once"
    return mapping


def assert_same_pairs(
    ours: tuple[np.ndarray, ...], ref: tuple[np.ndarray, ...], pair_cutoff: PairCutoff, context: str = ""
) -> None:
    """Same (i, j, S) sets up to boundary pairs, and D, d equal to ``TOL``."""
    mine, theirs = as_map(ours), as_map(ref)
    for label, extra, source in (("alal found a pair ASE did not", mine.keys() - theirs.keys(), mine),
                                 ("alal missed a pair ASE found", theirs.keys() - mine.keys(), theirs)):
        for key in sorted(extra):
            d = source[key][1]
            cut = pair_cutoff(key[0], key[1])
            assert abs(d - cut) <= BOUNDARY, f"{label}: (i, j, S) = {key}, d = {d!r}, cutoff = {cut!r} {context}"
    common = sorted(mine.keys() & theirs.keys())
    if common:
        D_ours = np.array([mine[k][0] for k in common])
        D_ref = np.array([theirs[k][0] for k in common])
        d_ours = np.array([mine[k][1] for k in common])
        d_ref = np.array([theirs[k][1] for k in common])
        worst = int(np.argmax(np.abs(D_ours - D_ref).max(axis=1)))
        assert np.abs(D_ours - D_ref).max() <= TOL, (
            f"D differs for {common[worst]}: {D_ours[worst]} vs ASE {D_ref[worst]} {context}"
        )
        assert np.abs(d_ours - d_ref).max() <= TOL, f"d differs from ASE {context}"


def assert_sorted(i: np.ndarray, j: np.ndarray, S: np.ndarray) -> None:
    keys = keys_of(i, j, S)
    assert all(a < b for a, b in zip(keys, keys[1:])), "pairs are not strictly sorted by (i, j, S)"


def assert_well_formed(
    result: tuple[np.ndarray, ...], positions: np.ndarray, cell: np.ndarray, pbc: tuple[bool, ...], pair_cutoff: PairCutoff
) -> None:
    """dtypes, shapes, sorting and the documented meaning of D, d and S."""
    i, j, S, D, d = result
    n = len(i)
    for name, array, dtype, shape in (
        ("i", i, np.int64, (n,)),
        ("j", j, np.int64, (n,)),
        ("S", S, np.int64, (n, 3)),
        ("D", D, np.float64, (n, 3)),
        ("d", d, np.float64, (n,)),
    ):
        assert array.dtype == dtype, f"{name} has dtype {array.dtype}, expected {np.dtype(dtype)}"
        assert array.shape == shape, f"{name} has shape {array.shape}, expected {shape}"
    if n == 0:
        return
    assert_sorted(i, j, S)
    for k in range(3):
        if not pbc[k]:
            assert (S[:, k] == 0).all(), f"non-zero shift along non-periodic direction {k}"
    expected_D = positions[j] - positions[i] + S @ cell
    assert np.abs(D - expected_D).max() <= TOL, "D != positions[j] - positions[i] + S @ cell"
    assert np.abs(d - np.linalg.norm(D, axis=1)).max() <= TOL, "d != |D|"
    cutoffs = np.array([pair_cutoff(a, b) for a, b in zip(i.tolist(), j.tolist())])
    assert (d < cutoffs).all(), "a pair at or beyond its cutoff was returned"


def uniform(cutoff: float) -> PairCutoff:
    return lambda i, j: cutoff


def from_radii(radii: list[float]) -> PairCutoff:
    return lambda i, j: radii[i] + radii[j]


def to_number(key: Any) -> int:
    return chemical_symbols.index(key) if isinstance(key, str) else int(key)


def from_table(cutoffs: dict[tuple[Any, Any], float], numbers: np.ndarray) -> PairCutoff:
    """ASE's reading of a per-element-pair dict (a later key overrides an earlier one)."""
    table: dict[tuple[int, int], float] = {}
    for (a, b), value in cutoffs.items():
        za, zb = to_number(a), to_number(b)
        table[za, zb] = table[zb, za] = float(value)
    return lambda i, j: table.get((int(numbers[i]), int(numbers[j])), 0.0)


# --------------------------------------------------------------------------------------------------
# Strategies

PBCS = st.tuples(st.booleans(), st.booleans(), st.booleans())


@st.composite
def structures(draw: st.DrawFn, max_atoms: int = 6) -> dict[str, Any]:
    """A random triclinic cell, periodicity, and atoms in and around it.

    Returns ``pbc``, ``cell`` (rows along non-periodic directions possibly zeroed, and the whole
    cell zero for some clusters), ``positions`` (Cartesian, Å), ``scaled`` (fractional, or None
    when the cell has zero rows) and ``lengths``.
    """
    pbc = draw(PBCS)
    skew = draw(st.sampled_from([0.0, 0.4, 1.5, 4.0, 8.0]))  # 4.0, 8.0: strongly skewed cells
    lengths = [draw(st.floats(1.0, 5.0)) for _ in range(3)]
    t = [draw(st.floats(-skew, skew)) for _ in range(3)]
    a, b, c = lengths
    full = np.array([[a, 0.0, 0.0], [t[0] * a, b, 0.0], [t[1] * a, t[2] * b, c]])
    if draw(st.booleans()):
        q = np.array([draw(st.floats(-1.0, 1.0)) for _ in range(4)])
        if np.linalg.norm(q) > 0.1:
            full = full @ rotation(q).T
    n = draw(st.integers(0, max_atoms))
    if draw(st.booleans()):
        # Quarter-lattice grid: atoms on cell faces and corners, coincident atoms, exact distances.
        frac = np.array([[draw(st.integers(-4, 8)) / 4 for _ in range(3)] for _ in range(n)]).reshape(n, 3)
    else:
        # Anywhere from 1.5 cells before to 1.5 cells after the cell: many atoms outside it.
        frac = np.array([[draw(st.floats(-1.5, 2.5)) for _ in range(3)] for _ in range(n)]).reshape(n, 3)
    positions = frac @ full
    cell = full.copy()
    scaled: np.ndarray | None = frac
    if not all(pbc) and draw(st.booleans()):
        # Rows along non-periodic directions are ignored: zero them (all of them for clusters).
        for k in range(3):
            if not pbc[k]:
                cell[k] = 0.0
        scaled = None
    return {"pbc": pbc, "cell": cell, "positions": positions, "scaled": scaled, "lengths": lengths}


def cutoffs_for(system: dict[str, Any]) -> st.SearchStrategy[float]:
    """Cutoffs from tiny to several cell lengths, plus exact lattice lengths (boundary cases)."""
    a, b, c = system["lengths"]
    return st.one_of(
        st.floats(0.05, 7.0),
        st.sampled_from([a, b, c, 1.0, 2.0, 3.0, a * math.sqrt(2), 2 * a]),
    )


def affordable(system: dict[str, Any], max_cutoff: float) -> bool:
    loops, candidates = search_cost(system["cell"], system["pbc"], len(system["positions"]), max_cutoff)
    return loops <= 1500 and candidates <= 20000


# --------------------------------------------------------------------------------------------------
# primitive_neighbor_list with a float cutoff


@SETTINGS
@given(data=st.data(), self_interaction=st.booleans())
def test_primitive_matches_ase(data: st.DataObject, self_interaction: bool) -> None:
    system = data.draw(structures())
    cutoff = data.draw(cutoffs_for(system))
    assume(affordable(system, cutoff))
    pbc, cell, positions = system["pbc"], system["cell"], system["positions"]
    ours = nb.primitive_neighbor_list("ijSDd", pbc, cell, positions, cutoff, self_interaction=self_interaction)
    ref = ase_primitive_neighbor_list("ijSDd", pbc, cell, positions, cutoff, self_interaction=self_interaction)
    context = f"(pbc={pbc}, cutoff={cutoff!r}, cell={cell.tolist()}, positions={positions.tolist()})"
    assert_well_formed(ours, positions, cell, pbc, uniform(cutoff))
    assert_same_pairs(ours, ref, uniform(cutoff), context)

    for n_threads in (1, 2):
        again = nb.primitive_neighbor_list(
            "ijSDd", pbc, cell, positions, cutoff, self_interaction=self_interaction, n_threads=n_threads
        )
        for x, y in zip(ours, again):
            np.testing.assert_array_equal(x, y, err_msg=f"n_threads={n_threads} changed the output")


@SETTINGS
@given(data=st.data(), self_interaction=st.booleans())
def test_primitive_scaled_positions_match_ase(data: st.DataObject, self_interaction: bool) -> None:
    system = data.draw(structures())
    assume(system["scaled"] is not None)
    cutoff = data.draw(cutoffs_for(system))
    assume(affordable(system, cutoff))
    pbc, cell, scaled = system["pbc"], system["cell"], system["scaled"]
    kwargs = {"self_interaction": self_interaction, "use_scaled_positions": True}
    ours = nb.primitive_neighbor_list("ijSDd", pbc, cell, scaled, cutoff, **kwargs)
    ref = ase_primitive_neighbor_list("ijSDd", pbc, cell, scaled, cutoff, **kwargs)
    assert_same_pairs(ours, ref, uniform(cutoff), f"(pbc={pbc}, cutoff={cutoff!r}, scaled positions)")


# --------------------------------------------------------------------------------------------------
# neighbor_list on ase.Atoms, with per-atom radii and per-element-pair dictionaries


@st.composite
def element_pair_cutoffs(draw: st.DrawFn, max_value: float) -> dict[tuple[Any, Any], float]:
    """A dict ``{(a, b): cutoff}``, each element given as a symbol or an atomic number."""
    pairs = [(a, b) for n, a in enumerate(ELEMENTS) for b in ELEMENTS[n:]]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=len(pairs), unique=True))
    result: dict[tuple[Any, Any], float] = {}
    for a, b in chosen:
        if draw(st.booleans()):
            a, b = b, a
        key = tuple(chemical_symbols[z] if draw(st.booleans()) else z for z in (a, b))
        result[key] = draw(st.one_of(st.just(0.0), st.floats(0.1, max_value)))
    return result


@SETTINGS
@given(data=st.data(), self_interaction=st.booleans(), kind=st.sampled_from(["float", "radii", "dict"]))
def test_atoms_neighbor_list_matches_ase(data: st.DataObject, self_interaction: bool, kind: str) -> None:
    system = data.draw(structures())
    n = len(system["positions"])
    numbers = np.array(data.draw(st.lists(st.sampled_from(ELEMENTS), min_size=n, max_size=n)), dtype=int)
    atoms = Atoms(numbers=numbers, positions=system["positions"], cell=system["cell"], pbc=system["pbc"])
    cutoff: Any
    if kind == "float":
        cutoff = data.draw(cutoffs_for(system))
        pair_cutoff, max_cutoff = uniform(cutoff), cutoff
    elif kind == "radii":
        cutoff = data.draw(st.lists(st.one_of(st.just(0.0), st.floats(0.05, 3.5)), min_size=n, max_size=n))
        pair_cutoff, max_cutoff = from_radii(cutoff), 2 * max(cutoff, default=0.0)
    else:
        cutoff = data.draw(element_pair_cutoffs(6.0))
        pair_cutoff, max_cutoff = from_table(cutoff, numbers), max(cutoff.values())
    assume(affordable(system, max_cutoff))

    ours = nb.neighbor_list("ijSDd", atoms, cutoff, self_interaction=self_interaction)
    ref = ase_neighbor_list("ijSDd", atoms, cutoff, self_interaction=self_interaction)
    context = f"(kind={kind}, cutoff={cutoff!r}, pbc={system['pbc']}, cell={system['cell'].tolist()})"
    assert_well_formed(ours, atoms.positions, np.asarray(atoms.cell), system["pbc"], pair_cutoff)
    assert_same_pairs(ours, ref, pair_cutoff, context)

    if kind == "dict":
        # The same dict keyed only by atomic numbers, then only by symbols, gives the same list.
        by_number = {(to_number(a), to_number(b)): v for (a, b), v in cutoff.items()}
        by_symbol = {(chemical_symbols[a], chemical_symbols[b]): v for (a, b), v in by_number.items()}
        for variant in (by_number, by_symbol):
            again = nb.neighbor_list("ijSDd", atoms, variant, self_interaction=self_interaction)
            for x, y in zip(ours, again):
                np.testing.assert_array_equal(x, y)
        # primitive_neighbor_list with the numbers gives the same as neighbor_list.
        prim = nb.primitive_neighbor_list(
            "ijSDd", atoms.pbc, atoms.cell, atoms.positions, cutoff, numbers=numbers, self_interaction=self_interaction
        )
        for x, y in zip(ours, prim):
            np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------------------------------
# Half lists, thread counts, NeighborList, batches


def mirror(key: Key) -> Key:
    i, j, a, b, c = key
    return (j, i, -a, -b, -c)


@SETTINGS
@given(data=st.data(), self_interaction=st.booleans())
def test_half_list_is_half_of_the_full_list(data: st.DataObject, self_interaction: bool) -> None:
    system = data.draw(structures(max_atoms=10))
    cutoff = data.draw(cutoffs_for(system))
    assume(affordable(system, cutoff))
    args = (system["pbc"], system["cell"], system["positions"], cutoff)
    full = nb.primitive_neighbor_list("ijSDd", *args, self_interaction=self_interaction)
    half = nb.primitive_neighbor_list("ijSDd", *args, self_interaction=self_interaction, full_list=False)
    assert_well_formed(half, system["positions"], system["cell"], system["pbc"], uniform(cutoff))
    full_map, half_map = as_map(full), as_map(half)
    for key in half_map:
        if mirror(key) != key:
            assert mirror(key) not in half_map, f"the half list holds both {key} and its mirror"
    assert set(half_map) <= set(full_map), "the half list holds pairs that the full list does not"
    completed = set(half_map) | {mirror(k) for k in half_map}
    # Up to pairs at the cutoff (see test_full_list_is_mirror_symmetric_at_the_cutoff for those).
    for key in completed ^ set(full_map):
        d = (full_map.get(key) or half_map.get(key) or half_map[mirror(key)])[1]
        assert abs(d - cutoff) <= BOUNDARY, f"the half list completed by mirrors differs from the full list at {key}"
    for key, (D, d) in half_map.items():
        D_full, d_full = full_map[key]
        assert np.abs(D - D_full).max() <= TOL and abs(d - d_full) <= TOL
        if mirror(key) in full_map:
            D_mirror, _ = full_map[mirror(key)]
            assert np.abs(D + D_mirror).max() <= TOL, f"D of {mirror(key)} is not -D of {key}"
    for key, (D, d) in full_map.items():
        assert mirror(key) in full_map or abs(d - cutoff) <= BOUNDARY, f"{key} is in the full list, {mirror(key)} is not"


def test_full_list_is_mirror_symmetric_at_the_cutoff() -> None:
    # A full list holds every pair twice, as (i, j, S) and (j, i, -S) (documented in
    # alal_core::neighbors::Options), and a half list completed by mirrors is the full list, even
    # for pairs exactly at the cutoff. ASE guarantees it: D = r[j] - r[i] + S @ cell is exactly
    # antisymmetric in floating point. Here the self images at S = (+-1, 0, 0) lie exactly at the
    # cutoff (|S @ cell| = 3.047 = cutoff); ASE returns neither.
    cell = np.eye(3) * 3.047
    positions = np.array([[2.745, 0.3, 0.2]])
    cutoff = 3.047
    i, j, S, d = nb.primitive_neighbor_list("ijSd", True, cell, positions, cutoff)
    full = dict(zip(keys_of(i, j, S), d.tolist()))
    unmatched = {k: v for k, v in full.items() if mirror(k) not in full}
    assert not unmatched, f"full list holds (i, j, S) -> d without its mirror (j, i, -S): {unmatched}"
    hi, hj, hS = nb.primitive_neighbor_list("ijS", True, cell, positions, cutoff, full_list=False)
    half = set(keys_of(hi, hj, hS))
    assert half | {mirror(k) for k in half} == set(full), "half list + mirrors != full list"
    ref = ase_primitive_neighbor_list("ijS", (True,) * 3, cell, positions, cutoff)
    assert set(keys_of(*ref)) == set(full)


@settings(max_examples=15, deadline=None, database=None)
@given(
    n_atoms=st.integers(64, 400),
    pbc=PBCS,
    cutoff=st.floats(0.5, 4.0),
    seed=st.integers(0, 2**32 - 1),
    full_list=st.booleans(),
)
def test_thread_count_does_not_change_the_output(
    n_atoms: int, pbc: tuple[bool, bool, bool], cutoff: float, seed: int, full_list: bool
) -> None:
    # Large enough for the core to split the atoms between threads.
    rng = np.random.default_rng(seed)
    cell = np.array([[8.0, 0.0, 0.0], [2.5, 7.0, 0.0], [-1.0, 1.5, 9.0]])
    positions = rng.uniform(-0.2, 1.2, (n_atoms, 3)) @ cell
    results = [
        nb.primitive_neighbor_list("ijSDd", pbc, cell, positions, cutoff, full_list=full_list, n_threads=t)
        for t in (1, 2, 2)
    ]
    assert_sorted(*results[0][:3])
    for other in results[1:]:
        for x, y in zip(results[0], other):
            np.testing.assert_array_equal(x, y)


def test_thread_count_does_not_change_an_output_larger_than_the_caches() -> None:
    # About 1.1 M pairs (66 MB): on two threads the core copies its buffers into an output this
    # large with non-temporal stores (above 32 MiB), a path no smaller system takes.
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((20, 20, 20))
    atoms.rattle(0.1, seed=3)
    one, *others = (
        nb.primitive_neighbor_list("ijSDd", atoms.pbc, atoms.cell[:], atoms.positions, 5.0, n_threads=t)
        for t in (1, 2, 2)
    )
    assert len(one[0]) > 1_000_000
    assert_sorted(*one[:3])
    for other in others:
        for x, y in zip(one, other):
            np.testing.assert_array_equal(x, y)


def test_thread_count_on_a_large_system_matches_ase() -> None:
    rng = np.random.default_rng(7)
    cell = np.array([[9.0, 0.0, 0.0], [3.0, 8.0, 0.0], [1.0, -2.0, 10.0]])
    positions = rng.uniform(-0.3, 1.3, (300, 3)) @ cell
    pbc = (True, False, True)
    ref = ase_primitive_neighbor_list("ijSDd", pbc, cell, positions, 3.5)
    for n_threads in (1, 2):
        ours = nb.primitive_neighbor_list("ijSDd", pbc, cell, positions, 3.5, n_threads=n_threads)
        assert_well_formed(ours, positions, cell, pbc, uniform(3.5))
        assert_same_pairs(ours, ref, uniform(3.5), f"(n_threads={n_threads})")


def test_large_system_with_open_axis_and_strided_positions_matches_ase() -> None:
    # Over 8192 atoms: the binning runs its per-atom passes on the threads (copy of the positions,
    # wrapping, extent along the open axis); positions that are not one contiguous block (a
    # strided view, Fortran order) are read in place.
    rng = np.random.default_rng(11)
    cell = np.array([[30.0, 0.0, 0.0], [6.0, 28.0, 0.0], [-3.0, 4.0, 32.0]])
    positions = rng.uniform(-0.3, 1.3, (8500, 3)) @ cell
    pbc = (True, False, True)
    ref = ase_primitive_neighbor_list("ijSDd", pbc, cell, positions, 2.5)
    first = nb.primitive_neighbor_list("ijSDd", pbc, cell, positions, 2.5, n_threads=2)
    assert_same_pairs(first, ref, uniform(2.5), "(n_threads=2)")
    strided = np.repeat(positions, 2, axis=0)[::2]
    for layout in (positions, strided, np.asfortranarray(positions)):
        for n_threads in (1, 2):
            ours = nb.primitive_neighbor_list("ijSDd", pbc, cell, layout, 2.5, n_threads=n_threads)
            for x, y in zip(first, ours):
                np.testing.assert_array_equal(x, y)


@SETTINGS
@given(data=st.data(), full_list=st.booleans(), self_interaction=st.booleans(), quantities=st.sampled_from(["ijSDd", "ij", "dD", "Sji"]))
def test_neighbor_list_object_matches_function(
    data: st.DataObject, full_list: bool, self_interaction: bool, quantities: str
) -> None:
    system = data.draw(structures(max_atoms=10))
    cutoff = data.draw(cutoffs_for(system))
    assume(affordable(system, cutoff))
    pbc, cell, positions = system["pbc"], system["cell"], system["positions"]
    calculator = nb.NeighborList(cutoff, full_list, self_interaction=self_interaction)
    ours = calculator.compute(positions, cell, pbc, quantities)
    expected = nb.primitive_neighbor_list(
        quantities, pbc, cell, positions, cutoff, self_interaction=self_interaction, full_list=full_list
    )
    assert isinstance(ours, tuple) and len(ours) == len(quantities)
    for letter, x, y in zip(quantities, ours, expected):
        # The vesin-shaped object gives shifts as int32, as vesin does; the ASE-style function int64.
        assert x.dtype == (np.int32 if letter == "S" else y.dtype)
        np.testing.assert_array_equal(x, y)
    # Reusable: a second call gives the same; a single bool for `periodic` applies to all axes.
    for x, y in zip(calculator.compute(positions, cell, pbc, quantities), ours):
        np.testing.assert_array_equal(x, y)
    if len(set(pbc)) == 1:
        for x, y in zip(calculator.compute(positions, cell, pbc[0], quantities), ours):
            np.testing.assert_array_equal(x, y)


def test_neighbor_list_object_default_quantities() -> None:
    cell = np.eye(3) * 3.0
    positions = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    i, j = nb.NeighborList(2.0).compute(positions, cell, True)
    ref_i, ref_j = nb.primitive_neighbor_list("ij", True, cell, positions, 2.0)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(j, ref_j)


@SETTINGS
@given(
    data=st.data(),
    n_structures=st.integers(0, 4),
    full_list=st.booleans(),
    self_interaction=st.booleans(),
    quantities=st.sampled_from(["ijSDd", "ij", "d", "DS"]),
)
def test_batch_equals_per_structure_calls(
    data: st.DataObject, n_structures: int, full_list: bool, self_interaction: bool, quantities: str
) -> None:
    cutoff = data.draw(st.floats(0.1, 4.0))
    batch: list[Atoms] = []
    for _ in range(n_structures):
        system = data.draw(structures())
        assume(affordable(system, cutoff))
        batch.append(Atoms("H" * len(system["positions"]), positions=system["positions"], cell=system["cell"], pbc=system["pbc"]))
    results = nb.neighbor_list_batch(quantities, batch, cutoff, self_interaction, full_list=full_list, n_threads=2)
    assert isinstance(results, list) and len(results) == n_structures
    for atoms, result in zip(batch, results):
        expected = nb.neighbor_list(quantities, atoms, cutoff, self_interaction, full_list=full_list, n_threads=1)
        if len(quantities) == 1:
            assert isinstance(result, np.ndarray)
            result, expected = (result,), (expected,)
        for x, y in zip(result, expected):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------------------------------
# Specific cases


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, False)])
@pytest.mark.parametrize("self_interaction", [False, True])
def test_no_atoms(pbc: tuple[bool, bool, bool], self_interaction: bool) -> None:
    cell = np.eye(3) * 4.0 if any(pbc) else np.zeros((3, 3))
    positions = np.zeros((0, 3))
    ours = nb.primitive_neighbor_list("ijSDd", pbc, cell, positions, 3.0, self_interaction=self_interaction)
    ref = ase_primitive_neighbor_list("ijSDd", pbc, cell, positions, 3.0, self_interaction=self_interaction)
    for name, x, y in zip("ijSDd", ours, ref):
        assert x.shape == y.shape, f"{name}: shape {x.shape}, ASE {y.shape}"
        assert x.dtype == y.dtype, f"{name}: dtype {x.dtype}, ASE {y.dtype}"
    assert_well_formed(ours, positions, cell, pbc, uniform(3.0))
    empty = Atoms(cell=cell, pbc=pbc)
    for x, y in zip(nb.neighbor_list("ijSDd", empty, 3.0), ours):
        np.testing.assert_array_equal(x, y)
    # Per-atom radii and dicts also accept an empty structure.
    assert len(nb.neighbor_list("i", empty, [])) == 0
    assert len(nb.neighbor_list("i", empty, {("H", "H"): 1.0})) == 0


@pytest.mark.parametrize("self_interaction", [False, True])
@pytest.mark.parametrize(
    "cell",
    [
        np.eye(3) * 1.3,
        np.array([[1.2, 0.0, 0.0], [2.5, 1.3, 0.0], [-1.5, 1.8, 1.1]]),  # strongly skewed
    ],
    ids=["cubic", "skewed"],
)
@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False), (False, True, False)])
def test_one_atom_with_a_cutoff_much_larger_than_the_cell(
    cell: np.ndarray, pbc: tuple[bool, bool, bool], self_interaction: bool
) -> None:
    positions = np.array([[0.31, -0.7, 2.2]])  # outside the cell
    cutoff = 3.5
    ours = nb.primitive_neighbor_list("ijSDd", pbc, cell, positions, cutoff, self_interaction=self_interaction)
    ref = ase_primitive_neighbor_list("ijSDd", pbc, cell, positions, cutoff, self_interaction=self_interaction)
    assert len(ours[0]) >= (50 if all(pbc) else 2), "expected many periodic images of the atom"
    assert_well_formed(ours, positions, cell, pbc, uniform(cutoff))
    assert_same_pairs(ours, ref, uniform(cutoff))


@pytest.mark.parametrize("self_interaction", [False, True])
def test_cluster_with_a_zero_cell(self_interaction: bool) -> None:
    rng = np.random.default_rng(3)
    positions = rng.uniform(-6.0, 6.0, (40, 3))
    atoms = Atoms("C40", positions=positions)  # zero cell, no periodicity
    assert not atoms.cell.any()
    ours = nb.neighbor_list("ijSDd", atoms, 4.0, self_interaction=self_interaction)
    ref = ase_neighbor_list("ijSDd", atoms, 4.0, self_interaction=self_interaction)
    assert len(ours[0]) > 0
    assert not ours[2].any()
    assert_well_formed(ours, positions, np.zeros((3, 3)), (False, False, False), uniform(4.0))
    assert_same_pairs(ours, ref, uniform(4.0))


def test_pair_distance_exactly_at_the_cutoff_is_excluded() -> None:
    # d < cutoff strictly: atoms exactly one lattice constant apart are not neighbours at that cutoff.
    cell = np.eye(3) * 2.0
    positions = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    d = nb.primitive_neighbor_list("d", True, cell, positions, 1.0)
    assert len(d) == 0
    d = nb.primitive_neighbor_list("d", True, cell, positions, 1.0 + 1e-6)
    assert len(d) == 4 and np.allclose(d, 1.0)


@pytest.mark.parametrize("quantities", list("ijSDd"))
def test_single_quantity_returns_an_array(quantities: str) -> None:
    atoms = Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], cell=np.eye(3) * 3.0, pbc=True)
    result = nb.neighbor_list(quantities, atoms, 2.0)
    assert isinstance(result, np.ndarray)
    reference = ase_neighbor_list(quantities, atoms, 2.0)
    assert result.shape == reference.shape
    batch = nb.neighbor_list_batch(quantities, [atoms], 2.0)
    assert isinstance(batch[0], np.ndarray)
    assert isinstance(nb.NeighborList(2.0).compute(atoms.positions, atoms.cell, True, quantities), np.ndarray)


@pytest.mark.parametrize("quantities", ["ij", "dD", "Sji", "ijSDd", "dd", "jiDSd"])
def test_several_quantities_return_a_tuple_in_order(quantities: str) -> None:
    atoms = Atoms("H3", positions=[[0, 0, 0], [0.7, 0, 0], [0, 0.9, 0.2]], cell=np.eye(3) * 3.0, pbc=True)
    result = nb.neighbor_list(quantities, atoms, 2.5)
    assert isinstance(result, tuple) and len(result) == len(quantities)
    full = dict(zip("ijSDd", nb.neighbor_list("ijSDd", atoms, 2.5)))
    dtypes = {"i": np.int64, "j": np.int64, "S": np.int64, "D": np.float64, "d": np.float64}
    for letter, array in zip(quantities, result):
        assert array.dtype == dtypes[letter], f"{letter} has dtype {array.dtype}"
        np.testing.assert_array_equal(array, full[letter])


def test_dtypes_and_shapes() -> None:
    atoms = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], cell=[5.0, 6.0, 7.0], pbc=True)
    i, j, S, D, d = nb.neighbor_list("ijSDd", atoms, 6.0)
    n = len(i)
    assert n > 0
    assert (i.dtype, j.dtype, S.dtype, D.dtype, d.dtype) == (np.int64, np.int64, np.int64, np.float64, np.float64)
    assert (i.shape, j.shape, S.shape, D.shape, d.shape) == ((n,), (n,), (n, 3), (n, 3), (n,))
