"""Builders of starting cells (alal.builders) and the EMT aluminium data set (alal.testing.emt)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from alal.builders import crystal, min_distance, random_box, slab, vacancies
from alal.errors import InvalidInputError
from alal.testing.emt import KINDS, emt_aluminium

AL_VOLUME = 4.05**3 / 4  # Å³ per atom of ASE's reference fcc Al


def brute_min_distance(atoms: Atoms, reach: int = 4) -> float:
    """Shortest distance over all pairs and lattice shifts up to ``reach`` along periodic axes."""
    ranges = [range(-reach, reach + 1) if p else range(1) for p in atoms.pbc]
    shifts = np.array(list(itertools.product(*ranges))) @ np.asarray(atoms.cell)
    diff = atoms.positions[None, :, None, :] - atoms.positions[:, None, None, :] + shifts[None, None, :, :]
    d = np.linalg.norm(diff, axis=-1)
    zero = np.flatnonzero(np.all(shifts == 0, axis=1))
    for i in range(len(atoms)):
        d[i, i, zero] = np.inf
    return float(d.min(initial=np.inf))


# ---------------------------------------------------------------------------------------------
# crystal


@pytest.mark.parametrize(
    ("structure", "target", "expected"),
    [("fcc", 32, 32), ("fcc", 50, 48), ("fcc", 108, 108), ("fcc", 3, 4), ("bcc", 54, 54), ("bcc", 16, 16),
     ("hcp", 40, 32), ("sc", 27, 27), ("diamond", 64, 64), ("diamond", 7, 8)],
)
def test_crystal_atom_count(structure: str, target: int, expected: int) -> None:
    atoms = crystal("Al", structure, n_atoms=target)
    assert len(atoms) == expected
    assert atoms.pbc.all()
    lengths = atoms.cell.lengths()
    assert lengths.max() <= 2 * lengths.min() + 1e-9  # near-cubic


@pytest.mark.parametrize("structure", ["fcc", "bcc", "hcp", "sc", "diamond"])
def test_crystal_density_is_the_reference_volume(structure: str) -> None:
    atoms = crystal("Al", structure, repeat=(2, 1, 1))
    assert len(atoms) == 2 * {"fcc": 4, "bcc": 2, "hcp": 4, "sc": 1, "diamond": 8}[structure]
    assert atoms.get_volume() / len(atoms) == pytest.approx(AL_VOLUME, rel=1e-12)


def test_crystal_lattice_constants() -> None:
    assert np.allclose(crystal("Al").cell.lengths(), 4.05)
    assert np.allclose(crystal("Fe", "bcc").cell.lengths(), 2.87)  # Fe's reference is bcc
    assert crystal("Fe", "fcc").get_volume() / 4 == pytest.approx(2.87**3 / 2)
    assert np.allclose(crystal("Cu", a=3.7).cell.lengths(), 3.7)
    a, b, c = crystal("Al", "hcp").cell.lengths()
    assert b == pytest.approx(math.sqrt(3) * a) and c / a == pytest.approx(math.sqrt(8 / 3))
    a, _, c = crystal("Al", "hcp", covera=1.6).cell.lengths()
    assert c / a == pytest.approx(1.6)
    a, _, c = crystal("Mg", "hcp").cell.lengths()
    assert (a, c / a) == pytest.approx((3.21, 1.624))
    assert len(crystal("Al", repeat=(1, 2, 3))) == 24


def test_crystal_strain() -> None:
    base = crystal("Al", n_atoms=32)
    scaled = crystal("Al", n_atoms=32, strain=0.02)
    assert np.allclose(scaled.cell.lengths(), 1.02 * base.cell.lengths())
    assert scaled.get_volume() == pytest.approx(1.02**3 * base.get_volume())
    f = np.array([[1.01, 0.02, 0.0], [0.0, 0.98, 0.01], [0.03, 0.0, 1.0]])
    sheared = crystal("Al", n_atoms=32, strain=f)
    assert np.allclose(np.asarray(sheared.cell), np.asarray(base.cell) @ f.T)
    assert np.allclose(sheared.positions, base.positions @ f.T)  # atoms follow the cell
    assert sheared.get_volume() == pytest.approx(np.linalg.det(f) * base.get_volume())


def test_crystal_rattle_is_reproducible() -> None:
    base = crystal("Al", n_atoms=108)
    one = crystal("Al", n_atoms=108, rattle=0.05, rng=np.random.default_rng(1))
    two = crystal("Al", n_atoms=108, rattle=0.05, rng=np.random.default_rng(1))
    assert np.array_equal(one.positions, two.positions)
    assert np.std(one.positions - base.positions) == pytest.approx(0.05, rel=0.15)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"symbol": "Xx"}, "symbol"), ({"structure": "bct"}, "structure"), ({"a": -1.0}, "a"),
     ({"a": float("nan")}, "a"), ({"covera": 0}, "covera"), ({"n_atoms": 0}, "n_atoms"),
     ({"n_atoms": 8, "repeat": (1, 1, 1)}, "n_atoms"), ({"repeat": (1, 0, 1)}, "repeat"),
     ({"repeat": (1, 2)}, "repeat"), ({"strain": -1.0}, "strain"), ({"strain": np.diag([1, 1, -1])}, "strain"),
     ({"strain": np.eye(2)}, "strain"), ({"rattle": 0.1}, "rng"), ({"rattle": -0.1}, "rattle"),
     ({"rattle": 0.1, "rng": 3}, "rng")],
)
def test_crystal_refuses_bad_input(kwargs: dict, word: str) -> None:
    kwargs = {"symbol": "Al", **kwargs}
    with pytest.raises(InvalidInputError, match=word):
        crystal(**kwargs)


def test_crystal_without_reference_needs_a() -> None:
    with pytest.raises(InvalidInputError, match="pass the lattice constant a"):
        crystal("H", "fcc")
    assert len(crystal("H", "fcc", a=4.0)) == 4


# ---------------------------------------------------------------------------------------------
# vacancies and slabs


def test_vacancies() -> None:
    base = crystal("Al", n_atoms=32)
    out = vacancies(base, 3, rng=np.random.default_rng(0))
    assert len(out) == 29 and len(base) == 32
    kept = {tuple(np.round(p, 9)) for p in out.positions}
    assert kept <= {tuple(np.round(p, 9)) for p in base.positions}
    assert len(vacancies(base, 0, rng=np.random.default_rng(0))) == 32
    with pytest.raises(InvalidInputError, match="n must be smaller"):
        vacancies(base, 32, rng=np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="n must"):
        vacancies(base, -1, rng=np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="rng"):
        vacancies(base, 1, rng=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("facet", ["100", "110", "111"])
def test_slab(facet: str) -> None:
    atoms = slab("Al", facet, layers=5, size=(3, 2), vacuum=7.0)
    assert len(atoms) == 30
    assert atoms.pbc.all()
    z = atoms.positions[:, 2]
    assert atoms.cell.lengths()[2] - (z.max() - z.min()) == pytest.approx(14.0)  # vacuum on both sides
    assert "adsorbate_info" not in atoms.info
    assert min_distance(atoms) == pytest.approx(4.05 / math.sqrt(2))


def test_slab_refuses_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="reference structure is bcc"):
        slab("Fe")
    assert len(slab("Fe", a=3.6)) == 16
    with pytest.raises(InvalidInputError, match="facet"):
        slab("Al", "211")
    with pytest.raises(InvalidInputError, match="vacuum"):
        slab("Al", vacuum=0.0)
    with pytest.raises(InvalidInputError, match="layers"):
        slab("Al", layers=0)
    with pytest.raises(InvalidInputError, match="size"):
        slab("Al", size=(2,))


# ---------------------------------------------------------------------------------------------
# min_distance and random_box


def test_min_distance_matches_brute_force_on_triclinic_mixed_pbc() -> None:
    rng = np.random.default_rng(42)
    for trial in range(40):
        n = int(rng.integers(1, 6))
        cell = rng.uniform(3.0, 6.0) * (np.eye(3) + rng.uniform(-0.35, 0.35, (3, 3)))
        pbc = rng.random(3) < 0.6 if trial % 4 else np.ones(3, bool)
        atoms = Atoms(f"Al{n}", scaled_positions=rng.random((n, 3)), cell=cell, pbc=pbc)
        atoms.positions += rng.normal(0, 2.0, (n, 3))  # some atoms outside the cell
        expected = brute_min_distance(atoms)
        if np.isinf(expected):
            assert np.isinf(min_distance(atoms))
        else:
            assert min_distance(atoms) == pytest.approx(expected, rel=1e-12), trial


def test_min_distance_special_cases() -> None:
    assert math.isinf(min_distance(Atoms()))
    assert math.isinf(min_distance(Atoms("Al", positions=[[1, 2, 3]])))
    assert math.isinf(min_distance(Atoms("Al", cell=[5, 5, 5], pbc=False)))
    # One atom in a periodic cell meets its own image; the shortest translation is a1 - a2 here.
    one = Atoms("Al", cell=[[4, 0, 0], [3, 1, 0], [0, 0, 9]], pbc=True)
    assert min_distance(one) == pytest.approx(math.sqrt(2))
    assert min_distance(Atoms("Al", cell=[4, 5, 6], pbc=[False, True, False])) == pytest.approx(5.0)
    gas = Atoms("Al2", positions=[[0, 0, 0], [30, 20, 0]])  # far apart, no cell: the cutoff must grow
    assert min_distance(gas) == pytest.approx(math.hypot(30, 20))
    assert min_distance(Atoms("Al2", positions=[[1, 1, 1], [1, 1, 1]], cell=[5, 5, 5], pbc=True)) == 0.0
    assert min_distance(crystal("Al", n_atoms=108)) == pytest.approx(4.05 / math.sqrt(2))
    with pytest.raises(InvalidInputError, match="atoms"):
        min_distance("Al")  # type: ignore[arg-type]


def test_random_box() -> None:
    atoms = random_box("Al", 64, volume_per_atom=17.5, min_distance=2.2, rng=np.random.default_rng(0))
    assert len(atoms) == 64 and atoms.pbc.all()
    assert np.allclose(np.asarray(atoms.cell), np.eye(3) * (64 * 17.5) ** (1 / 3))
    assert atoms.get_volume() / 64 == pytest.approx(17.5)
    assert min_distance(atoms) >= 2.2
    assert brute_min_distance(atoms, reach=1) >= 2.2
    again = random_box("Al", 64, volume_per_atom=17.5, min_distance=2.2, rng=np.random.default_rng(0))
    assert np.array_equal(atoms.positions, again.positions)


def test_random_box_mixed_symbols() -> None:
    atoms = random_box(["Cu", "Au"], 200, volume_per_atom=15.0, min_distance=1.8, rng=np.random.default_rng(1))
    counts = {s: atoms.get_chemical_symbols().count(s) for s in ("Cu", "Au")}
    assert counts["Cu"] + counts["Au"] == 200 and min(counts.values()) > 60


def test_random_box_refuses_impossible_boxes() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidInputError, match="cannot fit"):  # denser than close packing
        random_box("Al", 50, volume_per_atom=5.0, min_distance=2.5, rng=rng)
    with pytest.raises(InvalidInputError, match="cannot fit"):  # one atom meets its own image
        random_box("Al", 1, volume_per_atom=8.0, min_distance=2.5, rng=rng)
    # below close packing, but too dense for random sequential placement
    with pytest.raises(InvalidInputError, match="could not place atom .* max_tries=200"):
        random_box("Al", 100, volume_per_atom=12.0, min_distance=2.5, rng=rng, max_tries=200)
    with pytest.raises(InvalidInputError, match="volume_per_atom"):
        random_box("Al", 4, volume_per_atom=0.0, min_distance=1.0, rng=rng)
    with pytest.raises(InvalidInputError, match="symbols"):
        random_box(["Al", "Qq"], 4, volume_per_atom=10.0, min_distance=1.0, rng=rng)
    with pytest.raises(InvalidInputError, match="rng"):
        legacy = np.random.RandomState(0)
        random_box("Al", 4, volume_per_atom=10.0, min_distance=1.0, rng=legacy)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# emt_aluminium

SIZES = (16, 48)
TEMPERATURES = (300.0, 1500.0)


@pytest.fixture(scope="module")
def frames() -> list[Atoms]:
    return emt_aluminium(14, seed=0, sizes=SIZES, temperatures=TEMPERATURES)


def test_emt_frames_are_labelled_and_varied(frames: list[Atoms]) -> None:
    assert len(frames) == 14
    assert sorted(a.info["kind"] for a in frames) == sorted(KINDS * 2)  # two shuffled rounds
    for atoms in frames:
        assert isinstance(atoms.calc, SinglePointCalculator)
        assert atoms.pbc.all() and set(atoms.get_chemical_symbols()) == {"Al"}
        slab_kind = atoms.info["kind"].startswith("slab")
        assert (SIZES[0] <= len(atoms) or slab_kind) and len(atoms) <= SIZES[1]
        assert TEMPERATURES[0] <= atoms.info["temperature_K"] <= TEMPERATURES[1]
        energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        assert np.isfinite(energy) and forces.shape == (len(atoms), 3) and stress.shape == (6,)
        assert np.isfinite(forces).all() and np.isfinite(stress).all()
        assert np.abs(forces).max() > 0.05  # thermalised, not a perfect lattice
        assert min_distance(atoms) >= 1.5
    energies = [a.get_potential_energy() / len(a) for a in frames]
    assert max(energies) - min(energies) > 0.1  # eV/atom: liquid and slabs above the crystals


def test_emt_labels_equal_a_fresh_emt_calculation(frames: list[Atoms]) -> None:
    for atoms in frames:
        fresh = atoms.copy()
        fresh.calc = EMT()
        assert fresh.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
        assert np.allclose(fresh.get_forces(), atoms.get_forces(), rtol=0, atol=1e-10)
        assert np.allclose(fresh.get_stress(), atoms.get_stress(), rtol=0, atol=1e-12)


def test_emt_is_reproducible(frames: list[Atoms]) -> None:
    same = emt_aluminium(3, seed=0, sizes=SIZES, temperatures=TEMPERATURES)  # a prefix of the fixture
    other = emt_aluminium(3, seed=1, sizes=SIZES, temperatures=TEMPERATURES)
    for a, b, c in zip(frames, same, other):
        assert a.info == b.info
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.cell, b.cell)
        assert a.get_potential_energy() == b.get_potential_energy()
        assert len(a) != len(c) or not np.allclose(a.positions, c.positions)
    assert [a.get_potential_energy() for a in same] != [c.get_potential_energy() for c in other]


def test_emt_default_sizes() -> None:
    for atoms in emt_aluminium(7, seed=3):
        assert len(atoms) <= 108 and (len(atoms) >= 32 or atoms.info["kind"].startswith("slab"))
        assert 300.0 <= atoms.info["temperature_K"] <= 2000.0


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"n_structures": -1}, "n_structures"), ({"seed": -3}, "seed"), ({"seed": 1.5}, "seed"),
     ({"sizes": (10,)}, "sizes"), ({"sizes": (40, 20)}, "sizes"), ({"sizes": (0, 20)}, "sizes"),
     ({"temperatures": (500.0, 100.0)}, "temperatures"), ({"temperatures": (-1.0, 100.0)}, "temperatures")],
)
def test_emt_refuses_bad_input(kwargs: dict, word: str) -> None:
    kwargs = {"n_structures": 1, "seed": 0, **kwargs}
    with pytest.raises(InvalidInputError, match=word):
        emt_aluminium(**kwargs)


def test_interstitials_add_atoms_in_holes():
    from alal.builders import interstitials

    base = crystal("Al", "fcc", n_atoms=32)
    out = interstitials(base, 2, rng=np.random.default_rng(0))
    assert len(out) == 34 and len(base) == 32
    assert min_distance(out) > 1.5  # in a hole, not on top of an atom
    assert out.get_chemical_symbols()[-1] == "Al"
    with pytest.raises(InvalidInputError, match="symbol"):
        interstitials(base, 1, symbol="Xx", rng=np.random.default_rng(0))


def test_every_start_kind_builds():
    from alal.config import BuilderConfig
    from alal.starts import draw_start

    rng = np.random.default_rng(1)
    for kind in ("fcc", "bcc", "hcp", "sc", "diamond", "vacancy", "interstitial", "slab", "random"):
        atoms = draw_start(BuilderConfig(sizes=(16, 40), kinds={kind: 1.0}), ("Al",), rng)
        assert atoms.info["builder"] == kind and 8 <= len(atoms) <= 64
        assert min_distance(atoms) > 1.5


def test_cold_fraction_leaves_that_share_of_crystals_unrattled():
    from alal.config import BuilderConfig
    from alal.starts import draw_start

    def is_perfect(atoms) -> bool:
        # An unrattled (strained) fcc crystal: every atom has the same sorted distances to the others.
        d = np.sort(atoms.get_all_distances(mic=True), axis=1)
        return bool(np.allclose(d, d[0], atol=1e-8))

    rng = np.random.default_rng(3)
    starts = [draw_start(BuilderConfig(sizes=(16, 32), kinds={"fcc": 1.0}, cold_fraction=0.5), ("Al",), rng)
              for _ in range(60)]
    cold = [is_perfect(a) for a in starts]
    assert 15 <= sum(cold) <= 45  # binomial(60, 0.5): outside only with probability < 1e-4
    assert cold == [a.info.get("cold", False) for a in starts]  # marked, for the samplers
    rng = np.random.default_rng(3)
    assert not any(is_perfect(draw_start(BuilderConfig(sizes=(16, 32), kinds={"fcc": 1.0}), ("Al",), rng))
                   for _ in range(10))
    # Without cold cells, the random stream (and so every start) is what it was before the option.
    a = draw_start(BuilderConfig(sizes=(16, 32)), ("Al",), np.random.default_rng(5))
    b = draw_start(BuilderConfig(sizes=(16, 32), cold_fraction=0.0), ("Al",), np.random.default_rng(5))
    assert np.array_equal(a.positions, b.positions)
