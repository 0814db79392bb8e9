"""The differentiable heart of the ``ani`` model: features → per-member energies, forces and
stress of a batch of structures, used both by prediction and by training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from alal.autograd import vector_jacobian
from alal.descriptors import AniDescriptor, PackedBatch
from alal.models.ani.network import CommitteeNetworks

__all__ = ["Committee", "TorchBatch"]


@dataclass
class TorchBatch:
    """A packed batch of structures with its prepared neighbourhoods and cached features."""

    packed: PackedBatch
    prepared: Any
    features: torch.Tensor
    """``(N, F)`` raw descriptor features, float64."""
    species: torch.Tensor
    """``(N,)`` element index of each atom."""
    structure: torch.Tensor
    """``(N,)`` index of each atom's structure in the batch."""
    n_atoms: torch.Tensor
    """``(B,)`` atoms per structure, float64."""

    @classmethod
    def build(cls, descriptor: AniDescriptor, packed: PackedBatch,
              features: np.ndarray | None = None) -> TorchBatch:
        prepared = descriptor.prepare(packed)
        if features is None:
            features = descriptor.forward_prepared(prepared)
        counts = torch.from_numpy(packed.counts)
        return cls(
            packed=packed,
            prepared=prepared,
            features=torch.from_numpy(np.ascontiguousarray(features)),
            species=torch.from_numpy(packed.species),
            structure=torch.repeat_interleave(torch.arange(len(counts)), counts),
            n_atoms=counts.to(torch.float64),
        )

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.shape[0])


class Committee(torch.nn.Module):
    """Energy of member ``k`` for structure ``b``:
    ``E_kb = Σ_{i∈b} (e_ref[z_i] + scale · net_k,z_i((G_i − μ_z) / σ_z))`` (eV)."""

    def __init__(self, networks: CommitteeNetworks, n_features: int) -> None:
        super().__init__()
        self.networks = networks
        n_el = networks.n_elements
        self.register_buffer("feature_mean", torch.zeros(n_el, n_features, dtype=torch.float64))
        self.register_buffer("feature_inv_std", torch.ones(n_el, n_features, dtype=torch.float64))
        self.register_buffer("reference_energies", torch.zeros(n_el, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))

    @property
    def n_members(self) -> int:
        return self.networks.n_members

    @property
    def dtype(self) -> torch.dtype:
        return self.networks.weight_0_0.dtype

    def member_energies(self, batch: TorchBatch, features: torch.Tensor) -> torch.Tensor:
        """``(K, B)`` energies (float64, eV) from features ``(N, F)`` or ``(K, N, F)``."""
        s = batch.species
        x = (features - self.feature_mean[s]) * self.feature_inv_std[s]
        y = self.networks(x.to(self.dtype), s).to(torch.float64)
        atomic = y * self.energy_scale + self.reference_energies[s]
        return atomic.new_zeros((self.n_members, batch.n_structures)).index_add(1, batch.structure, atomic)

    def energies_and_gradients(self, batch: TorchBatch, descriptor: AniDescriptor, *,
                               create_graph: bool, members: bool = True
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(E (K, B), ∂E/∂positions (K, N, 3), ∂E/∂cells (K, B, 3, 3))``, all float64; with
        ``create_graph`` the gradients are differentiable w.r.t. the weights (force training).

        ``members=False``: only the gradients of the committee-mean energy, ``(1, N, 3)`` and
        ``(1, B, 3, 3)``, with one vector–Jacobian product instead of K (MD steps that do not
        check the force spread)."""
        k = self.n_members
        with torch.enable_grad():
            feats = batch.features.expand(k, -1, -1).requires_grad_(True)
            energies = self.member_energies(batch, feats)
            (cot,) = torch.autograd.grad(energies.sum(), feats, create_graph=create_graph)
            if not members:
                cot = cot.mean(0, keepdim=True)
            if create_graph:
                grad_pos, grad_cells = vector_jacobian(descriptor, batch.prepared, cot)
            else:
                gp, gc, _ = descriptor.vjp_many_prepared(batch.prepared, cot.detach().numpy())
                grad_pos, grad_cells = torch.from_numpy(gp), torch.from_numpy(gc)
        return energies, grad_pos, grad_cells

    @staticmethod
    def stress(batch: TorchBatch, grad_pos: torch.Tensor, grad_cells: torch.Tensor) -> torch.Tensor:
        """Stress ``(K, B, 3, 3)`` (eV/Å³) from the energy gradients: ``σ = (Rᵀ ∂E/∂R + Lᵀ ∂E/∂L)
        / V`` (the strain derivative; ``L`` the cell, rows as lattice vectors). NaN where the cell
        has no volume."""
        pos = torch.from_numpy(batch.packed.positions)
        cells = torch.from_numpy(batch.packed.cells)
        outer = pos.unsqueeze(0).unsqueeze(3) * grad_pos.unsqueeze(2)  # (K, N, 3, 3)
        k, b = grad_pos.shape[0], batch.n_structures
        strain = outer.new_zeros((k, b, 3, 3)).index_add(1, batch.structure, outer)
        strain = strain + torch.einsum("bax,kbay->kbxy", cells, grad_cells)
        volume = torch.linalg.det(cells).abs()
        volume = torch.where(volume > 1e-9, volume, torch.nan)
        sigma = strain / volume.view(1, b, 1, 1)
        return 0.5 * (sigma + sigma.transpose(2, 3))
