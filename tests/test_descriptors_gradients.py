"""Analytic derivatives of the ANI descriptor: VJP (positions, cell, virial), JVP (with and without
a cell tangent) and the dense Jacobian, against central finite differences of ``compute`` and
against each other."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111

from alal.descriptors import AniDescriptor, ani_al
from alal.errors import InvalidInputError

STEP = 1e-5  # Å (and Å of cell / dimensionless strain)
FD_RTOL = 1e-6


def rattled(atoms: Atoms, seed: int, stdev: float = 0.08) -> Atoms:
    atoms = atoms.copy()
    atoms.rattle(stdev=stdev, seed=seed)
    return atoms


def al_fcc() -> Atoms:
    return rattled(bulk("Al", "fcc", a=4.05, cubic=True), seed=1)


def al_triclinic() -> Atoms:
    """Primitive fcc (60° cell, smaller than the cutoff), sheared a little further."""
    atoms = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    cell = np.asarray(atoms.cell) + np.array([[0.0, 0.1, -0.05], [0.07, 0.0, 0.0], [0.0, -0.08, 0.1]])
    atoms.set_cell(cell, scale_atoms=True)
    return rattled(atoms, seed=2)


def al_slab() -> Atoms:
    return rattled(fcc111("Al", size=(1, 2, 3), vacuum=5.0), seed=3)


def al_cluster() -> Atoms:
    block = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    centre = block.positions.mean(axis=0) + 0.3
    cluster = block[np.argsort(np.linalg.norm(block.positions - centre, axis=1))[:9]]
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    return rattled(cluster, seed=4)


def alcu_fcc() -> Atoms:
    atoms = bulk("Al", "fcc", a=4.0, cubic=True)
    atoms.symbols[[0, 3]] = "Cu"
    return rattled(atoms, seed=5)


def alcu_cluster() -> Atoms:
    cluster = al_cluster()
    cluster.symbols[::2] = "Cu"
    return cluster


def unwrapped(atoms: Atoms, seed: int) -> Atoms:
    """Atoms moved by whole lattice vectors along periodic directions, and out of the cell along
    non-periodic ones: derivatives are taken at fixed Cartesian positions, so the lattice shifts
    of the pairs must be those of these positions, not of wrapped ones."""
    atoms = atoms.copy()
    images = np.random.default_rng(seed).integers(-1, 2, size=(len(atoms), 3)) * atoms.pbc
    atoms.positions += images @ np.asarray(atoms.cell)
    for axis in np.flatnonzero(~atoms.pbc):
        atoms.positions[0, axis] -= 9.0
    assert (atoms.get_scaled_positions(wrap=False) < 0).any()
    return atoms


# name -> (structure factory, species)
SYSTEMS: dict[str, tuple[Callable[[], Atoms], tuple[str, ...]]] = {
    "al-fcc": (al_fcc, ("Al",)),
    "al-triclinic": (al_triclinic, ("Al",)),
    "al-slab": (al_slab, ("Al",)),
    "al-cluster": (al_cluster, ("Al",)),
    "al-triclinic-unwrapped": (lambda: unwrapped(al_triclinic(), seed=10), ("Al",)),
    "al-slab-unwrapped": (lambda: unwrapped(al_slab(), seed=11), ("Al",)),
    "alcu-fcc": (alcu_fcc, ("Al", "Cu")),
    "alcu-cluster": (alcu_cluster, ("Al", "Cu")),
}
PERIODIC = [name for name in SYSTEMS if "cluster" not in name]


def setup(name: str, seed: int = 0):
    make, species = SYSTEMS[name]
    atoms = make()
    desc = AniDescriptor(ani_al(species))
    rng = np.random.default_rng(seed)
    return atoms, desc, rng


def moved(atoms: Atoms, dpos: np.ndarray | None = None, dcell: np.ndarray | None = None) -> Atoms:
    """A copy with Cartesian positions and cell vectors displaced independently."""
    out = atoms.copy()
    if dcell is not None:
        out.set_cell(np.asarray(atoms.cell) + dcell, scale_atoms=False)
    if dpos is not None:
        out.positions = atoms.positions + dpos
    return out


def strained(atoms: Atoms, eps: np.ndarray) -> Atoms:
    """Homogeneous deformation ``r -> r (I + eps)`` of positions and cell (row vectors)."""
    out = atoms.copy()
    deform = np.eye(3) + eps
    out.set_cell(np.asarray(atoms.cell) @ deform, scale_atoms=False)
    out.positions = atoms.positions @ deform
    return out


def central_difference(f: Callable[[float], np.ndarray | float], h: float = STEP):
    return (np.asarray(f(h)) - np.asarray(f(-h))) / (2 * h)


def assert_fd_close(analytic: np.ndarray, fd: np.ndarray) -> None:
    """Agreement to ``FD_RTOL`` relative to the largest entry (entries can be ~0)."""
    scale = np.abs(fd).max()
    assert scale > 0
    np.testing.assert_allclose(analytic, fd, rtol=FD_RTOL, atol=FD_RTOL * scale)


def unit_basis(shape: tuple[int, ...]):
    for index in np.ndindex(*shape):
        e = np.zeros(shape)
        e[index] = 1.0
        yield index, e


# --- VJP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_vjp_positions_match_finite_differences(name: str) -> None:
    atoms, desc, rng = setup(name)
    cot = rng.normal(size=(len(atoms), desc.n_features))
    grads = desc.vjp(atoms, cot)
    assert grads.positions.shape == (len(atoms), 3)

    def loss(a: Atoms) -> float:
        return float(np.sum(cot * desc.compute(a)))

    fd = np.zeros((len(atoms), 3))
    for index, e in unit_basis((len(atoms), 3)):
        fd[index] = central_difference(lambda h: loss(moved(atoms, dpos=h * e)))
    assert_fd_close(grads.positions, fd)
    # Translation invariance: the gradient sums to zero over atoms.
    np.testing.assert_allclose(grads.positions.sum(axis=0), 0.0, atol=1e-10 * np.abs(fd).max())


@pytest.mark.parametrize("name", PERIODIC)
def test_vjp_cell_matches_finite_differences(name: str) -> None:
    """``∂L/∂cell`` at fixed Cartesian positions; zero along a non-periodic direction."""
    atoms, desc, rng = setup(name, seed=1)
    cot = rng.normal(size=(len(atoms), desc.n_features))
    grads = desc.vjp(atoms, cot)

    def loss(a: Atoms) -> float:
        return float(np.sum(cot * desc.compute(a)))

    fd = np.zeros((3, 3))
    for index, e in unit_basis((3, 3)):
        fd[index] = central_difference(lambda h: loss(moved(atoms, dcell=h * e)))
    assert_fd_close(grads.cell, fd)
    for axis in np.flatnonzero(~atoms.pbc):
        np.testing.assert_array_equal(grads.cell[axis], 0.0)


@pytest.mark.parametrize("name", ["al-cluster", "alcu-cluster"])
def test_vjp_cell_is_zero_without_periodicity(name: str) -> None:
    atoms, desc, rng = setup(name)
    grads = desc.vjp(atoms, rng.normal(size=(len(atoms), desc.n_features)))
    np.testing.assert_array_equal(grads.cell, 0.0)


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_virial_is_minus_strain_derivative(name: str) -> None:
    """``W = −∂L/∂ε`` for ``r -> r (I + ε)`` applied to positions and cell alike."""
    atoms, desc, rng = setup(name, seed=2)
    cot = rng.normal(size=(len(atoms), desc.n_features))
    grads = desc.vjp(atoms, cot)

    def loss(a: Atoms) -> float:
        return float(np.sum(cot * desc.compute(a)))

    fd = np.zeros((3, 3))
    for index, e in unit_basis((3, 3)):
        fd[index] = central_difference(lambda h: loss(strained(atoms, h * e)))
    assert_fd_close(grads.virial, -fd)
    # The same thing by the chain rule through positions and cell.
    chain = atoms.positions.T @ grads.positions + np.asarray(atoms.cell).T @ grads.cell
    np.testing.assert_allclose(grads.virial, -chain, rtol=1e-10, atol=1e-10 * np.abs(chain).max())
    # A rotation leaves the features unchanged, so L is invariant under antisymmetric ε:
    # the virial is symmetric.
    np.testing.assert_allclose(grads.virial, grads.virial.T, atol=1e-10 * np.abs(grads.virial).max())


# --- JVP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_jvp_matches_finite_differences(name: str) -> None:
    atoms, desc, rng = setup(name, seed=3)
    tangent = rng.normal(size=(len(atoms), 3))
    jvp = desc.jvp(atoms, tangent)
    assert jvp.shape == (len(atoms), desc.n_features)
    fd = central_difference(lambda h: desc.compute(moved(atoms, dpos=h * tangent)))
    assert_fd_close(jvp, fd)


@pytest.mark.parametrize("name", PERIODIC)
def test_jvp_with_cell_tangent_matches_finite_differences(name: str) -> None:
    atoms, desc, rng = setup(name, seed=4)
    tangent = rng.normal(size=(len(atoms), 3))
    cell_tangent = rng.normal(size=(3, 3))
    jvp = desc.jvp(atoms, tangent, cell_tangent=cell_tangent)
    fd = central_difference(lambda h: desc.compute(moved(atoms, dpos=h * tangent, dcell=h * cell_tangent)))
    assert_fd_close(jvp, fd)
    # The cell alone.
    zero = np.zeros_like(tangent)
    jvp_cell = desc.jvp(atoms, zero, cell_tangent=cell_tangent)
    fd_cell = central_difference(lambda h: desc.compute(moved(atoms, dcell=h * cell_tangent)))
    assert_fd_close(jvp_cell, fd_cell)
    # Linearity in the pair (tangent, cell_tangent).
    np.testing.assert_allclose(
        jvp, desc.jvp(atoms, tangent) + jvp_cell, rtol=1e-12, atol=1e-12 * np.abs(jvp).max()
    )


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_vjp_and_jvp_are_adjoint(name: str) -> None:
    """``<c, J u> == <J^T c, u>`` for the positions and the cell together."""
    atoms, desc, rng = setup(name, seed=5)
    for _ in range(3):
        cot = rng.normal(size=(len(atoms), desc.n_features))
        tangent = rng.normal(size=(len(atoms), 3))
        cell_tangent = rng.normal(size=(3, 3))
        grads = desc.vjp(atoms, cot)
        for cell_part in (cell_tangent, None):
            ju = desc.jvp(atoms, tangent, cell_tangent=cell_part)
            lhs = np.sum(cot * ju)
            rhs = np.sum(grads.positions * tangent)
            if cell_part is not None:
                rhs += np.sum(grads.cell * cell_part)
            # Relative to the cancellation-free size of the sum.
            assert abs(lhs - rhs) <= 1e-10 * np.sum(np.abs(cot * ju)), (lhs, rhs)


def test_strain_tangent_gives_the_virial() -> None:
    """JVP along a homogeneous strain (positions ``r ε``, cell ``h ε``) contracts to ``−W : ε``."""
    atoms, desc, rng = setup("alcu-fcc", seed=6)
    cot = rng.normal(size=(len(atoms), desc.n_features))
    eps = rng.normal(size=(3, 3))
    change = np.sum(cot * desc.jvp(atoms, atoms.positions @ eps, cell_tangent=np.asarray(atoms.cell) @ eps))
    virial = desc.vjp(atoms, cot).virial
    assert change == pytest.approx(-np.sum(virial * eps), rel=1e-10)


# --- Jacobian ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["al-triclinic", "alcu-fcc", "al-cluster"])
def test_jacobian_is_stacked_jvps(name: str) -> None:
    atoms, desc, rng = setup(name, seed=7)
    n, nf = len(atoms), desc.n_features
    jac = desc.jacobian(atoms)
    assert jac.shape == (n, nf, n, 3)
    for (j, c), e in unit_basis((n, 3)):
        np.testing.assert_allclose(jac[:, :, j, c], desc.jvp(atoms, e), rtol=1e-14, atol=1e-14)
    cot = rng.normal(size=(n, nf))
    np.testing.assert_allclose(
        np.einsum("if,ifjc->jc", cot, jac), desc.vjp(atoms, cot).positions, rtol=1e-10, atol=1e-10
    )


def test_jacobian_refuses_above_max_bytes() -> None:
    atoms, desc, _ = setup("alcu-fcc")
    n, nf = len(atoms), desc.n_features
    needed = n * nf * n * 3 * 8
    with pytest.raises(InvalidInputError, match="Jacobian"):
        desc.jacobian(atoms, max_bytes=needed - 1)
    with pytest.raises(InvalidInputError):
        desc.jacobian(atoms, max_bytes=0)
    assert desc.jacobian(atoms, max_bytes=needed).shape == (n, nf, n, 3)


# --- batches -----------------------------------------------------------------------------------


def batch_structures() -> list[Atoms]:
    return [alcu_fcc(), al_slab(), alcu_cluster(), al_fcc(), al_triclinic()]


def test_compute_batch_equals_per_structure() -> None:
    desc = AniDescriptor(ani_al(("Al", "Cu")))
    structures = batch_structures()
    batch = desc.compute_batch(structures)
    assert len(batch) == len(structures)
    for atoms, features in zip(structures, batch):
        np.testing.assert_allclose(features, desc.compute(atoms), rtol=1e-14, atol=1e-14)
    assert desc.compute_batch([]) == []


@pytest.mark.parametrize("n_threads", [1, 2])
def test_batch_with_empty_and_large_structures(n_threads: int) -> None:
    """Structures without atoms between others, and one large enough to be searched in several
    ranges of atoms in parallel: each atom's features are those of its structure alone."""
    desc = AniDescriptor(ani_al(("Al", "Cu")), n_threads=n_threads)
    big = al_fcc().repeat((3, 3, 2))
    structures = [Atoms(), alcu_fcc(), Atoms(cell=[5.0, 5.0, 5.0], pbc=True), big, Atoms(), al_slab()]
    batch = desc.compute_batch(structures)
    assert [f.shape for f in batch] == [(len(a), desc.n_features) for a in structures]
    for atoms, features in zip(structures, batch):
        if len(atoms):
            np.testing.assert_array_equal(features, desc.compute(atoms))
    rng = np.random.default_rng(9)
    cotangents = [rng.normal(size=(len(a), desc.n_features)) for a in structures]
    for atoms, cot, grads in zip(structures, cotangents, desc.vjp_batch(structures, cotangents)):
        if len(atoms):
            np.testing.assert_allclose(grads[0], desc.vjp(atoms, cot)[0], rtol=1e-13, atol=1e-13)


def test_vjp_batch_equals_per_structure() -> None:
    desc = AniDescriptor(ani_al(("Al", "Cu")))
    structures = batch_structures()
    rng = np.random.default_rng(8)
    cotangents = [rng.normal(size=(len(a), desc.n_features)) for a in structures]
    batch = desc.vjp_batch(structures, cotangents)
    assert len(batch) == len(structures)
    for atoms, cot, grads in zip(structures, cotangents, batch):
        single = desc.vjp(atoms, cot)
        for got, expected in zip(grads, single):
            np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13 * max(np.abs(expected).max(), 1.0))


def test_jvp_packed_batch_equals_per_structure() -> None:
    desc = AniDescriptor(ani_al(("Al", "Cu")))
    structures = batch_structures()
    rng = np.random.default_rng(9)
    tangents = [rng.normal(size=(len(a), 3)) for a in structures]
    cell_tangents = rng.normal(size=(len(structures), 3, 3))
    batch = desc.jvp_packed(desc.pack(structures), np.concatenate(tangents), cell_tangents)
    parts = np.split(batch, np.cumsum([len(a) for a in structures])[:-1])
    for atoms, t, ct, got in zip(structures, tangents, cell_tangents, parts):
        np.testing.assert_allclose(got, desc.jvp(atoms, t, cell_tangent=ct), rtol=1e-13, atol=1e-13)
