"""torch wiring of the descriptor: first derivatives, double backward for force training, stress."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk

torch = pytest.importorskip("torch")

from alal.autograd import AniFeatures, ani_features  # noqa: E402
from alal.descriptors import AniDescriptor, ani_al  # noqa: E402


@pytest.fixture(scope="module")
def system():
    atoms = bulk("Al", "fcc", a=4.05).repeat((2, 2, 1))
    atoms.rattle(0.08, seed=3)
    desc = AniDescriptor(ani_al())
    return atoms, desc, desc.pack(atoms)


def _energy(desc, batch, positions, cells, weights):
    g = ani_features(desc, positions, cells, batch.pbc, batch.species, batch.counts)
    return (torch.tanh(3.0 * g) @ weights).sum()


def test_gradcheck_positions_and_cell(system):
    _, desc, batch = system
    torch.manual_seed(0)
    weights = torch.randn(desc.n_features, dtype=torch.float64)
    pos = torch.tensor(batch.positions, requires_grad=True)
    cells = torch.tensor(batch.cells, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, c: _energy(desc, batch, p, c, weights), (pos, cells),
                                    eps=1e-6, atol=1e-6, rtol=1e-5)


def test_force_loss_trains_weights(system):
    """d(force loss)/d(weights) through double backward equals finite differences."""
    _, desc, batch = system
    torch.manual_seed(1)
    weights = torch.randn(desc.n_features, dtype=torch.float64, requires_grad=True)
    cells = torch.tensor(batch.cells)

    def force_loss(w):
        pos = torch.tensor(batch.positions, requires_grad=True)
        e = _energy(desc, batch, pos, cells, w)
        forces = -torch.autograd.grad(e, pos, create_graph=True)[0]
        return (forces**2).sum()

    grad = torch.autograd.grad(force_loss(weights), weights)[0]
    # h = 1e-4: the loss is ~300, so round-off (~1e-16 · 300 / h) would dominate at h = 1e-6.
    h = 1e-4
    for k in (0, 7, 40, 95):
        wp, wm = weights.detach().clone(), weights.detach().clone()
        wp[k] += h
        wm[k] -= h
        fd = (force_loss(wp) - force_loss(wm)).item() / (2 * h)
        assert grad[k].item() == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_cell_gradient_gives_stress(system):
    """Stress from autograd (positions and cell strained together) equals the core's virial."""
    atoms, desc, batch = system
    torch.manual_seed(2)
    weights = torch.randn(desc.n_features, dtype=torch.float64)
    strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    deform = torch.eye(3, dtype=torch.float64) + strain
    pos = torch.tensor(batch.positions) @ deform
    cells = torch.tensor(batch.cells) @ deform
    e = _energy(desc, batch, pos, cells, weights)
    de_dstrain = torch.autograd.grad(e, strain)[0].numpy()
    g = torch.tensor(desc.compute(atoms), requires_grad=True)
    dE_dG = torch.autograd.grad((torch.tanh(3.0 * g) @ weights).sum(), g)[0].numpy()
    virial = desc.vjp(atoms, dE_dG).virial
    np.testing.assert_allclose(de_dstrain, -virial, atol=1e-10)


def test_float32_and_module(system):
    _, desc, batch = system
    module = AniFeatures(desc)
    pos = torch.tensor(batch.positions, dtype=torch.float32, requires_grad=True)
    g = module(pos, torch.tensor(batch.cells, dtype=torch.float32), batch.pbc, batch.species, batch.counts)
    assert g.dtype == torch.float32 and g.shape == (len(pos), desc.n_features)
    g.sum().backward()
    assert pos.grad is not None and pos.grad.dtype == torch.float32


def test_import_alal_does_not_import_torch():
    code = "import sys, alal, alal.neighbors, alal.descriptors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
