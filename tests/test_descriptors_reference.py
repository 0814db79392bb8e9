"""The ANI descriptor against an independent NumPy reference and against torchani's AEVComputer."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest
from ani_reference import reference_features, species_pair_index
from ase import Atoms
from ase.build import bulk, fcc111

from alal.descriptors import AniDescriptor, AniParameters, ani_1x, ani_al

RTOL = 1e-10
# Features are O(1) (up to ~10); an absolute floor of 1e-10 covers entries that are ~0.
ATOL = 1e-10


def assert_features_close(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def rattled(atoms: Atoms, seed: int, stdev: float = 0.08) -> Atoms:
    atoms = atoms.copy()
    atoms.rattle(stdev=stdev, seed=seed)
    return atoms


def al_cluster() -> Atoms:
    """A compact 13-19 atom piece of fcc Al, non-periodic, with no cell at all."""
    block = bulk("Al", "fcc", a=4.05, cubic=True).repeat(3)
    centre = block.positions.mean(axis=0)
    cluster = block[np.linalg.norm(block.positions - centre, axis=1) < 4.2]
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    return rattled(cluster, seed=7)


def random_molecule(symbols: Sequence[str], n_atoms: int, box: float, seed: int, min_distance: float = 0.9) -> Atoms:
    """Random positions in a cube, no two atoms closer than ``min_distance`` Å."""
    rng = np.random.default_rng(seed)
    positions: list[np.ndarray] = []
    while len(positions) < n_atoms:
        trial = rng.uniform(0.0, box, 3)
        if all(np.linalg.norm(trial - p) >= min_distance for p in positions):
            positions.append(trial)
    return Atoms([str(x) for x in rng.choice(list(symbols), n_atoms)], positions=positions)


AL_SYSTEMS = {
    "fcc-cubic": lambda: rattled(bulk("Al", "fcc", a=4.05, cubic=True), seed=1),
    # Primitive fcc: a non-orthogonal (60°) cell smaller than the cutoff in every direction.
    "fcc-primitive-x2": lambda: rattled(bulk("Al", "fcc", a=4.05).repeat((2, 1, 1)), seed=2),
    "bcc": lambda: rattled(bulk("Al", "bcc", a=3.24).repeat((1, 1, 2)), seed=3),
    "hcp": lambda: rattled(bulk("Al", "hcp", a=2.86, c=4.67), seed=4),
    # pbc = (True, True, False) with 6 Å of vacuum above and below.
    "slab-111": lambda: rattled(fcc111("Al", size=(2, 2, 3), vacuum=6.0), seed=5),
    "cluster": al_cluster,
}


# --- (1) alal against the NumPy reference -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(AL_SYSTEMS))
def test_ani_al_matches_reference(name: str) -> None:
    atoms = AL_SYSTEMS[name]()
    params = ani_al()
    features = AniDescriptor(params).compute(atoms)
    expected = reference_features(atoms, params)
    assert features.shape == (len(atoms), 96)
    # Guard against a vacuous comparison: radial and angular parts must both be populated.
    assert expected[:, :32].max() > 0.1 and expected[:, 32:].max() > 0.1
    assert_features_close(features, expected)


def test_reference_systems_have_the_intended_periodicity() -> None:
    assert AL_SYSTEMS["slab-111"]().pbc.tolist() == [True, True, False]
    cluster = AL_SYSTEMS["cluster"]()
    assert not cluster.pbc.any() and len(cluster) >= 13


def alcu_fcc() -> Atoms:
    atoms = bulk("Al", "fcc", a=4.0, cubic=True)
    atoms.symbols[[1, 2]] = "Cu"
    return rattled(atoms, seed=11)


def alcu_cluster() -> Atoms:
    cluster = al_cluster()
    cluster.symbols[::3] = "Cu"
    return cluster


@pytest.mark.parametrize("species", [("Al", "Cu"), ("Cu", "Al")])
@pytest.mark.parametrize("make", [alcu_fcc, alcu_cluster], ids=["fcc", "cluster"])
def test_two_species_matches_reference(species: tuple[str, str], make) -> None:
    atoms = make()
    params = ani_al(species)
    features = AniDescriptor(params).compute(atoms)
    assert features.shape == (len(atoms), 2 * 32 + 3 * 64)
    assert_features_close(features, reference_features(atoms, params))


def test_species_order_permutes_the_channels() -> None:
    """Swapping the species order swaps the radial blocks and maps the angular pair blocks
    (Al,Al),(Al,Cu),(Cu,Cu) onto (Cu,Cu),(Cu,Al),(Al,Al) — checked without the reference."""
    atoms = alcu_fcc()
    g_alcu = AniDescriptor(ani_al(("Al", "Cu"))).compute(atoms)
    g_cual = AniDescriptor(ani_al(("Cu", "Al"))).compute(atoms)
    n_r, n_a = 32, 64

    def radial(g, s):
        return g[:, s * n_r:(s + 1) * n_r]

    def angular(g, b):
        return g[:, 2 * n_r + b * n_a:2 * n_r + (b + 1) * n_a]

    for s, t in [(0, 1), (1, 0)]:
        np.testing.assert_allclose(radial(g_alcu, s), radial(g_cual, t), rtol=1e-13, atol=1e-14)
    for b, c in [(0, 2), (1, 1), (2, 0)]:
        np.testing.assert_allclose(angular(g_alcu, b), angular(g_cual, c), rtol=1e-13, atol=1e-14)
    # Every block is populated, so the check above is not vacuous.
    for b in range(3):
        assert angular(g_alcu, b).max() > 1e-3


def test_ani_1x_molecule_matches_reference() -> None:
    atoms = random_molecule("HCNO", 14, box=4.5, seed=3)
    params = ani_1x()
    assert set(atoms.get_chemical_symbols()) == {"H", "C", "N", "O"}
    features = AniDescriptor(params).compute(atoms)
    assert features.shape == (len(atoms), 384)
    assert_features_close(features, reference_features(atoms, params))


def test_custom_parameters_match_reference() -> None:
    """Non-default prefactors, ζ = 1 and three species, on a periodic triclinic cell."""
    params = AniParameters(
        species=("O", "H", "Al"),
        radial_cutoff=4.5,
        radial_eta=3.0,
        radial_shifts=(0.8, 1.9, 3.3),
        angular_cutoff=4.0,
        angular_eta=2.5,
        angular_zeta=1.0,
        angular_shifts=(1.0, 2.5),
        angle_sections=(0.3, 1.9, 2.8),
        radial_scale=0.7,
        cos_scale=0.6,
    )
    atoms = random_molecule(("O", "H", "Al"), 7, box=4.0, seed=5, min_distance=1.0)
    atoms.cell = [[4.6, 0.0, 0.0], [0.9, 4.4, 0.0], [-0.5, 0.7, 4.8]]
    atoms.pbc = True
    features = AniDescriptor(params).compute(atoms)
    assert features.shape == (len(atoms), params.n_features) == (len(atoms), 3 * 3 + 6 * 6)
    assert_features_close(features, reference_features(atoms, params))


@pytest.mark.parametrize("angular_eta", [4.0, 60.0])
def test_mean_distance_gaussians_split_or_direct_match_reference(angular_eta: float) -> None:
    """The angular Gaussians of the mean distance are split into per-neighbour factors where the
    exponents stay small (η 4 Å⁻² here) and computed directly where they would not (η 60 Å⁻²
    with shifts 2.5 Å apart); both match the reference."""
    params = AniParameters(
        species=("Al",),
        radial_cutoff=5.0,
        radial_eta=8.0,
        radial_shifts=(1.0, 2.2, 3.4, 4.6),
        angular_cutoff=4.5,
        angular_eta=angular_eta,
        angular_zeta=7.3,
        angular_shifts=(1.0, 2.0, 2.7, 3.5),
        angle_sections=(0.4, 1.3, 2.2, 2.9),
    )
    atoms = rattled(bulk("Al", "fcc", a=4.05, cubic=True), seed=11, stdev=0.2)
    assert_features_close(AniDescriptor(params).compute(atoms), reference_features(atoms, params))


# --- (2) alal against torchani -----------------------------------------------------------------


@pytest.fixture(scope="module")
def torchani_aev():
    """torchani 2.x's ``AEVComputer`` module (pure-PyTorch 'pyaev' strategy, CPU)."""
    # torchani.csrc warns at import time that its optional CUDA extensions (cuaev, mnp,
    # cell_list) are not compiled; they are not used here (strategy 'pyaev', 'all_pairs'
    # neighbour list), so that one warning is ignored. Nothing here touches the network.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The extensions: .* are not installed", category=UserWarning)
        pytest.importorskip("torchani")
        aev_module = pytest.importorskip("torchani.aev")
        utils = pytest.importorskip("torchani.utils")
    return aev_module.AEVComputer, utils


def float64_1x_computer(AEVComputer, params: AniParameters):
    """``AEVComputer.like_1x()`` in float64 with the exact float64 constants of ``params``.

    torchani stores its constants as float32 buffers, so ``.double()`` alone would leave them
    rounded to float32 (~1e-7); after checking they agree to that precision they are replaced
    by the float64 values.
    """
    import torch

    computer = AEVComputer.like_1x(strategy="pyaev", neighborlist="all_pairs")
    buffers = dict(computer.named_buffers())
    f32 = dict(rtol=1e-6, atol=0)
    np.testing.assert_allclose(buffers["radial.shifts"].numpy(), params.radial_shifts, **f32)
    np.testing.assert_allclose(buffers["angular.shifts"].numpy(), params.angular_shifts, **f32)
    np.testing.assert_allclose(buffers["angular.sections"].numpy(), params.angle_sections, **f32)
    np.testing.assert_allclose(buffers["radial.eta"].numpy(), [params.radial_eta], **f32)
    np.testing.assert_allclose(buffers["angular.eta"].numpy(), [params.angular_eta], **f32)
    np.testing.assert_allclose(buffers["angular.zeta"].numpy(), [params.angular_zeta], **f32)
    assert computer.radial.cutoff == params.radial_cutoff
    assert computer.angular.cutoff == params.angular_cutoff
    assert computer.num_species == params.n_species
    assert computer.out_dim == params.n_features
    # Same block order for species pairs as alal's (upper triangle, row by row).
    np.testing.assert_array_equal(buffers["triu_index"].numpy(), species_pair_index(params.n_species))

    computer = computer.double()
    computer.radial.shifts = torch.tensor(params.radial_shifts, dtype=torch.float64)
    computer.angular.shifts = torch.tensor(params.angular_shifts, dtype=torch.float64)
    computer.angular.sections = torch.tensor(params.angle_sections, dtype=torch.float64)
    return computer


def torchani_features(computer, params: AniParameters, atoms: Atoms) -> np.ndarray:
    import torch

    species = torch.as_tensor(params.species_indices(atoms.numbers))[None]
    coords = torch.as_tensor(atoms.positions, dtype=torch.float64)[None]
    if atoms.pbc.any():
        cell = torch.as_tensor(np.asarray(atoms.cell), dtype=torch.float64)
        pbc = torch.as_tensor(atoms.pbc.copy())
        out = computer(species, coords, cell, pbc)
    else:
        out = computer(species, coords)
    assert out.dtype == torch.float64
    return out.detach().numpy()[0]


def test_ani_1x_constants_match_torchani(torchani_aev) -> None:
    """alal's ``ani_1x()`` has torchani's ANI-1x constants, to the last bit of the float64
    construction (torchani's pure-Python linspace), not only to float32."""
    _, utils = torchani_aev
    p = ani_1x()
    assert p.species == ("H", "C", "N", "O")
    np.testing.assert_allclose(p.radial_shifts, utils.linspace(0.9, 5.2, 16), rtol=1e-15, atol=0)
    np.testing.assert_allclose(p.angular_shifts, utils.linspace(0.9, 3.5, 4), rtol=1e-15, atol=0)
    np.testing.assert_allclose(
        p.angle_sections, utils.linspace(np.pi / 16, np.pi + np.pi / 16, 8), rtol=1e-15, atol=0
    )
    assert (p.radial_cutoff, p.radial_eta) == (5.2, 16.0)
    assert (p.angular_cutoff, p.angular_eta, p.angular_zeta) == (3.5, 8.0, 32.0)
    assert (p.radial_scale, p.cos_scale) == (0.25, 0.95)


@pytest.mark.parametrize("seed", [0, 1])
def test_ani_1x_molecule_matches_torchani(torchani_aev, seed: int) -> None:
    AEVComputer, _ = torchani_aev
    params = ani_1x()
    computer = float64_1x_computer(AEVComputer, params)
    atoms = random_molecule("HCNO", 16, box=5.0, seed=100 + seed)
    expected = torchani_features(computer, params, atoms)
    assert expected[:, 64:].max() > 0.1  # angular terms are populated
    assert_features_close(AniDescriptor(params).compute(atoms), expected)


@pytest.mark.parametrize(
    ("pbc", "cell"),
    [
        ((True, True, True), [[4.4, 0.0, 0.0], [0.8, 4.6, 0.0], [-0.6, 0.5, 4.9]]),
        # torchani's map_to_central wraps fractional coordinates along every cell vector and then
        # restores the *Cartesian* components of the non-periodic directions, which is only
        # consistent when the non-periodic cell vector is along its own Cartesian axis and
        # orthogonal to the periodic ones; the mixed case is built that way.
        ((True, True, False), [[4.4, 0.0, 0.0], [0.8, 4.6, 0.0], [0.0, 0.0, 4.9]]),
    ],
    ids=["3d-triclinic", "mixed"],
)
def test_ani_1x_periodic_matches_torchani(torchani_aev, pbc, cell) -> None:
    """A periodic box smaller than twice the cutoff (several images of each atom), with atoms
    placed partly outside the cell."""
    AEVComputer, _ = torchani_aev
    params = ani_1x()
    computer = float64_1x_computer(AEVComputer, params)
    atoms = random_molecule("HCNO", 10, box=4.2, seed=42)
    atoms.cell = cell
    atoms.pbc = pbc
    atoms.positions += (-1.5, 0.7, 0.4)
    assert (atoms.get_scaled_positions(wrap=False)[:, :2] < 0).any()
    expected = torchani_features(computer, params, atoms)
    assert_features_close(AniDescriptor(params).compute(atoms), expected)


def test_ani_al_periodic_matches_torchani(torchani_aev) -> None:
    """The ANI-Al constants through torchani's ``from_constants`` (single species, float64)."""
    import torch

    AEVComputer, _ = torchani_aev
    p = ani_al()
    computer = AEVComputer.from_constants(
        radial_cutoff=p.radial_cutoff,
        angular_cutoff=p.angular_cutoff,
        radial_eta=p.radial_eta,
        radial_shifts=p.radial_shifts,
        angular_eta=p.angular_eta,
        angular_zeta=p.angular_zeta,
        angular_shifts=p.angular_shifts,
        sections=p.angle_sections,
        num_species=1,
        strategy="pyaev",
        neighborlist="all_pairs",
    ).double()
    computer.radial.eta = torch.tensor([p.radial_eta], dtype=torch.float64)
    computer.radial.shifts = torch.tensor(p.radial_shifts, dtype=torch.float64)
    computer.angular.eta = torch.tensor([p.angular_eta], dtype=torch.float64)
    computer.angular.zeta = torch.tensor([p.angular_zeta], dtype=torch.float64)
    computer.angular.shifts = torch.tensor(p.angular_shifts, dtype=torch.float64)
    computer.angular.sections = torch.tensor(p.angle_sections, dtype=torch.float64)
    assert computer.out_dim == p.n_features == 96
    atoms = AL_SYSTEMS["fcc-primitive-x2"]()
    assert_features_close(AniDescriptor(p).compute(atoms), torchani_features(computer, p, atoms))
    slab = AL_SYSTEMS["slab-111"]()
    assert_features_close(AniDescriptor(p).compute(slab), torchani_features(computer, p, slab))
