"""Symmetries of the ANI descriptor, thread independence, parameter handling and errors."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111

from alal.descriptors import AniDescriptor, AniParameters, ani_1x, ani_al, ani_al_smooth
from alal.errors import InvalidInputError

SPECIES = ("Al", "Cu")


def rattled(atoms: Atoms, seed: int, stdev: float = 0.1) -> Atoms:
    atoms = atoms.copy()
    atoms.rattle(stdev=stdev, seed=seed)
    return atoms


def alcu_bulk() -> Atoms:
    """Triclinic periodic Al/Cu (primitive fcc, 3 atoms)."""
    atoms = bulk("Al", "fcc", a=4.05).repeat((3, 1, 1))
    atoms.symbols[1] = "Cu"
    return rattled(atoms, seed=1)


def alcu_slab() -> Atoms:
    atoms = fcc111("Al", size=(2, 1, 3), vacuum=5.0)
    atoms.symbols[[0, 4]] = "Cu"
    return rattled(atoms, seed=2)


def alcu_cluster() -> Atoms:
    block = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    centre = block.positions.mean(axis=0) + 0.2
    cluster = block[np.argsort(np.linalg.norm(block.positions - centre, axis=1))[:10]]
    cluster.symbols[::3] = "Cu"
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    return rattled(cluster, seed=3)


SYSTEMS = {"bulk": alcu_bulk, "slab": alcu_slab, "cluster": alcu_cluster}


@pytest.fixture(scope="module")
def desc() -> AniDescriptor:
    return AniDescriptor(ani_al(SPECIES))


def assert_same_features(got: np.ndarray, expected: np.ndarray, rtol: float = 1e-12) -> None:
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


# --- symmetries --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_rotation_invariance(desc: AniDescriptor, name: str) -> None:
    atoms = SYSTEMS[name]()
    reference = desc.compute(atoms)
    rng = np.random.default_rng(0)
    for _ in range(2):
        rot = random_rotation(rng)
        rotated = atoms.copy()
        rotated.set_cell(np.asarray(atoms.cell) @ rot.T, scale_atoms=False)
        rotated.positions = atoms.positions @ rot.T
        assert_same_features(desc.compute(rotated), reference)
    # An improper rotation (reflection) too: the descriptor only sees distances and angles.
    mirrored = atoms.copy()
    mirrored.set_cell(np.asarray(atoms.cell) * [1, 1, -1], scale_atoms=False)
    mirrored.positions = atoms.positions * [1, 1, -1]
    assert_same_features(desc.compute(mirrored), reference)


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_translation_invariance(desc: AniDescriptor, name: str) -> None:
    atoms = SYSTEMS[name]()
    reference = desc.compute(atoms)
    for shift in ([0.37, -1.21, 2.9], [-13.0, 7.5, 0.01]):
        translated = atoms.copy()
        translated.positions += shift
        assert_same_features(desc.compute(translated), reference)


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_permutation_equivariance(desc: AniDescriptor, name: str) -> None:
    atoms = SYSTEMS[name]()
    reference = desc.compute(atoms)
    rng = np.random.default_rng(1)
    perm = np.arange(len(atoms))
    while np.array_equal(perm, np.arange(len(atoms))):
        perm = rng.permutation(len(atoms))
    assert_same_features(desc.compute(atoms[perm]), reference[perm])


@pytest.mark.parametrize("name", ["bulk", "slab"])
def test_wrapping_into_the_cell(desc: AniDescriptor, name: str) -> None:
    """Moving atoms by lattice vectors along periodic directions changes nothing."""
    atoms = SYSTEMS[name]()
    reference = desc.compute(atoms)
    rng = np.random.default_rng(2)
    shifted = atoms.copy()
    images = rng.integers(-3, 4, size=(len(atoms), 3)) * atoms.pbc
    assert images.any()
    shifted.positions = atoms.positions + images @ np.asarray(atoms.cell)
    assert_same_features(desc.compute(shifted), reference)
    wrapped = shifted.copy()
    wrapped.wrap()
    assert_same_features(desc.compute(wrapped), reference)


@pytest.mark.parametrize(("name", "reps"), [("bulk", (2, 2, 2)), ("slab", (2, 2, 1))])
def test_replication_tiles_the_features(desc: AniDescriptor, name: str, reps) -> None:
    atoms = SYSTEMS[name]()
    reference = desc.compute(atoms)
    big = atoms.repeat(reps)
    # ase's repeat appends whole copies of the original atoms, one per image.
    assert_same_features(desc.compute(big), np.tile(reference, (int(np.prod(reps)), 1)))


def test_isolated_atom_and_far_apart_clusters(desc: AniDescriptor) -> None:
    """Features are local: two copies of a cluster farther apart than the cutoff each keep their
    own features, and a lone atom has all-zero features."""
    cluster = alcu_cluster()
    reference = desc.compute(cluster)
    far = cluster.copy()
    far.positions += [30.0, 0.0, 0.0]
    lone = Atoms("Cu", positions=[[-20.0, 5.0, 5.0]])
    combined = cluster + far + lone
    features = desc.compute(combined)
    assert_same_features(features[: len(cluster)], reference)
    assert_same_features(features[len(cluster): 2 * len(cluster)], reference)
    np.testing.assert_array_equal(features[-1], 0.0)


# --- threads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_results_do_not_depend_on_threads(name: str) -> None:
    atoms = SYSTEMS[name]().repeat((2, 1, 1)) if name != "cluster" else SYSTEMS[name]()
    one = AniDescriptor(ani_al(SPECIES), n_threads=1)
    two = AniDescriptor(ani_al(SPECIES), n_threads=2)
    rng = np.random.default_rng(3)
    cot = rng.normal(size=(len(atoms), one.n_features))
    tangent = rng.normal(size=(len(atoms), 3))
    cell_tangent = rng.normal(size=(3, 3))
    np.testing.assert_array_equal(one.compute(atoms), two.compute(atoms))
    for a, b in zip(one.vjp(atoms, cot), two.vjp(atoms, cot)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        one.jvp(atoms, tangent, cell_tangent=cell_tangent), two.jvp(atoms, tangent, cell_tangent=cell_tangent)
    )
    structures = [SYSTEMS[k]() for k in SYSTEMS]
    for a, b in zip(one.compute_batch(structures), two.compute_batch(structures)):
        np.testing.assert_array_equal(a, b)


def test_invalid_thread_count() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidInputError, match="n_threads"):
            AniDescriptor(ani_al(), n_threads=bad)


# --- errors ------------------------------------------------------------------------------------


def test_element_not_in_species_is_named() -> None:
    atoms = alcu_bulk()
    with pytest.raises(InvalidInputError, match=r"\bCu\b"):
        AniDescriptor(ani_al()).compute(atoms)
    atoms.symbols[0] = "Zn"
    with pytest.raises(InvalidInputError, match=r"\bZn\b"):
        AniDescriptor(ani_al(SPECIES)).compute(atoms)
    two = AniDescriptor(ani_al(SPECIES))
    with pytest.raises(InvalidInputError, match=r"\bZn\b"):
        two.vjp(atoms, np.zeros((len(atoms), two.n_features)))
    # InvalidInputError is also a ValueError.
    with pytest.raises(ValueError):
        AniDescriptor(ani_al()).compute(Atoms("H"))


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"radial_cutoff": -1.0}, "radial_cutoff"),
        ({"radial_cutoff": 0.0}, "radial_cutoff"),
        ({"angular_cutoff": -2.5}, "angular_cutoff"),
        ({"radial_cutoff": float("nan")}, "radial_cutoff"),
        ({"radial_eta": -1.0}, "radial_eta"),
        ({"angular_eta": float("inf")}, "angular_eta"),
        ({"radial_shifts": ()}, "radial_shifts"),
        ({"angular_shifts": []}, "angular_shifts"),
        ({"angle_sections": ()}, "angle_sections"),
        ({"radial_shifts": (1.0, float("nan"))}, "radial_shifts"),
        ({"radial_shifts": "abc"}, "radial_shifts"),
        ({"angular_zeta": 0.5}, "angular_zeta"),
        ({"angular_zeta": -3.0}, "angular_zeta"),
        ({"cos_scale": 1.0}, "cos_scale"),
        ({"cos_scale": 1.2}, "cos_scale"),
        ({"cos_scale": 0.0}, "cos_scale"),
        ({"radial_scale": -0.25}, "radial_scale"),
        ({"radial_cutoff": "7"}, "radial_cutoff"),
        ({"species": ("Al", "Qq")}, "species"),
        ({"species": ("Xx",)}, "species"),
        ({"species": ()}, "species"),
        ({"species": ("Al", "Al")}, "species"),
    ],
)
def test_invalid_parameters_are_named(changes: dict, name: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(name)):
        AniDescriptor(dataclasses.replace(ani_al(), **changes))


def test_limits_of_valid_parameters() -> None:
    """ζ = 1 and a cos_scale just below 1 are allowed."""
    p = dataclasses.replace(ani_al(), angular_zeta=1.0, cos_scale=0.999)
    features = AniDescriptor(p).compute(alcu_cluster()[[1, 2, 4, 5]])
    assert np.isfinite(features).all()


def test_parameters_must_be_ani_parameters() -> None:
    with pytest.raises(InvalidInputError, match="AniParameters"):
        AniDescriptor(ani_al().to_dict())  # type: ignore[arg-type]


def test_bad_array_shapes(desc: AniDescriptor) -> None:
    atoms = alcu_bulk()
    with pytest.raises(InvalidInputError, match="cotangent"):
        desc.vjp(atoms, np.zeros((len(atoms), desc.n_features + 1)))
    with pytest.raises(InvalidInputError, match="tangent"):
        desc.jvp(atoms, np.zeros((len(atoms) + 1, 3)))


# --- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [ani_al, lambda: ani_al(("Cu", "Al", "Ni")), ani_1x, ani_al_smooth])
def test_parameters_dict_round_trip(make) -> None:
    params = make()
    data = params.to_dict()
    assert "_numbers" not in data
    assert set(data) == {
        "species", "radial_cutoff", "radial_eta", "radial_shifts", "angular_cutoff", "angular_eta",
        "angular_zeta", "angular_shifts", "angle_sections", "radial_scale", "cos_scale",
    }
    # Plain JSON survives a text round trip exactly (floats are written with repr precision).
    text = json.dumps(data)
    again = AniParameters.from_dict(json.loads(text))
    assert again == params
    assert again.to_dict() == data
    assert AniParameters.from_dict(data) == params
    # And it describes the same descriptor.
    sample = Atoms(
        [params.species[k % params.n_species] for k in range(4)],
        positions=[[0.0, 0.0, 0.0], [1.9, 0.0, 0.2], [0.3, 2.1, 0.0], [0.8, 0.9, 1.7]],
    )
    np.testing.assert_array_equal(AniDescriptor(again).compute(sample), AniDescriptor(params).compute(sample))


def test_from_dict_unknown_key_is_named() -> None:
    data = ani_al().to_dict()
    data["radial_cutof"] = 6.0
    data["extra"] = 1
    with pytest.raises(InvalidInputError, match="radial_cutof") as info:
        AniParameters.from_dict(data)
    assert "extra" in str(info.value)
    data = ani_al().to_dict()
    data["_numbers"] = [13]
    with pytest.raises(InvalidInputError, match="_numbers"):
        AniParameters.from_dict(data)


def test_feature_counts() -> None:
    assert ani_al().n_features == 96
    assert ani_1x().n_features == 384
    assert AniDescriptor(ani_al()).n_features == 96
    assert AniDescriptor(ani_1x()).n_features == 384
    assert ani_al(SPECIES).n_features == 2 * 32 + 3 * 8 * 8
    assert AniDescriptor(ani_al(SPECIES)).n_features == ani_al(SPECIES).n_features
    assert AniDescriptor(ani_al()).compute(alcu_cluster()[[1, 2]]).shape == (2, 96)
    p = ani_al()
    assert (len(p.radial_shifts), len(p.angular_shifts), len(p.angle_sections)) == (32, 8, 8)
    assert (p.radial_cutoff, p.angular_cutoff, p.max_cutoff) == (7.0, 5.0, 7.0)
    smooth = ani_al_smooth(SPECIES)  # ANI-Al's angular terms, 12 wider radial Gaussians
    assert smooth.n_features == 2 * 12 + 3 * 8 * 8 and smooth.radial_eta == 4.0
    assert (smooth.radial_cutoff, smooth.radial_shifts[0], smooth.radial_shifts[-1]) == (7.0, 1.25, pytest.approx(6.5208333))
    assert {k: v for k, v in smooth.to_dict().items() if not k.startswith("radial")} == \
        {k: v for k, v in ani_al(SPECIES).to_dict().items() if not k.startswith("radial")}
