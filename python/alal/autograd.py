"""torch bindings of the ANI descriptor: features as a differentiable function of positions and cells.

``forces = -torch.autograd.grad(E, positions)`` works through the core's vector–Jacobian product, and
a loss on those forces back-propagates to model weights (double backward) through the
Jacobian–vector product. The descriptor itself is computed in float64 on the CPU by the Rust core;
results come back in the dtype and on the device of ``positions``.

Limitation: second derivatives of the features with respect to positions or cells (Hessians,
force-constant matrices) are not provided; gradients flow through the forces to everything that
produced ``∂E/∂G`` (the network weights), which is what force training needs.

torch is imported only when this module is imported: ``import alal`` does not need it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from alal.descriptors import AniDescriptor, PackedBatch
from alal.errors import InvalidInputError

__all__ = ["AniFeatures", "ani_features", "vector_jacobian"]


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(device="cpu", dtype=torch.float64).numpy())


class _Features(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        positions: torch.Tensor,
        cells: torch.Tensor,
        descriptor: AniDescriptor,
        batch: PackedBatch,
    ) -> torch.Tensor:
        batch = batch._replace(positions=_numpy(positions), cells=_numpy(cells))
        prepared = descriptor.prepare(batch)  # neighbourhoods, reused by every backward pass
        ctx.descriptor = descriptor
        ctx.prepared = prepared
        ctx.like = positions
        out = descriptor.forward_prepared(prepared)
        return torch.from_numpy(out).to(dtype=positions.dtype, device=positions.device)

    @staticmethod
    def backward(ctx: Any, grad_features: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        grad_positions, grad_cells = _VectorJacobian.apply(grad_features, ctx.descriptor, ctx.prepared, ctx.like)
        return grad_positions, grad_cells, None, None


class _VectorJacobian(torch.autograd.Function):
    """``(∂L/∂positions, ∂L/∂cells) = Jᵀ · ∂L/∂G``, linear in ``∂L/∂G``; its own backward is ``J · v``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        grad_features: torch.Tensor,
        descriptor: AniDescriptor,
        prepared: Any,
        like: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.descriptor = descriptor
        ctx.prepared = prepared
        ctx.like = grad_features
        grad_positions, grad_cells, _ = descriptor.vjp_prepared(prepared, _numpy(grad_features))
        opts = {"dtype": like.dtype, "device": like.device}
        return torch.from_numpy(grad_positions).to(**opts), torch.from_numpy(grad_cells).to(**opts)

    @staticmethod
    def backward(ctx: Any, tangent_positions: torch.Tensor | None, tangent_cells: torch.Tensor | None
                 ) -> tuple[Any, ...]:  # type: ignore[override]
        prepared = ctx.prepared
        if tangent_positions is None:
            tangent = np.zeros((prepared.n_atoms, 3))
        else:
            tangent = _numpy(tangent_positions)
        cell_tangents = None if tangent_cells is None else _numpy(tangent_cells)
        out = ctx.descriptor.jvp_prepared(prepared, tangent, cell_tangents)
        like = ctx.like
        return torch.from_numpy(out).to(dtype=like.dtype, device=like.device), None, None, None


class _ManyVectorJacobian(torch.autograd.Function):
    """``m`` vector–Jacobian products at once: ``(∂L_k/∂positions, ∂L_k/∂cells)`` for cotangents
    ``(m, N, F)``; linear in the cotangents, so its backward is the ``m`` Jacobian–vector
    products."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        cotangents: torch.Tensor,
        descriptor: AniDescriptor,
        prepared: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.descriptor = descriptor
        ctx.prepared = prepared
        ctx.like = cotangents
        grad_positions, grad_cells, _ = descriptor.vjp_many_prepared(prepared, _numpy(cotangents))
        opts = {"dtype": cotangents.dtype, "device": cotangents.device}
        return torch.from_numpy(grad_positions).to(**opts), torch.from_numpy(grad_cells).to(**opts)

    @staticmethod
    def backward(ctx: Any, tangent_positions: torch.Tensor | None, tangent_cells: torch.Tensor | None
                 ) -> tuple[Any, ...]:  # type: ignore[override]
        prepared, like = ctx.prepared, ctx.like
        m = like.shape[0]
        if tangent_positions is None:
            tangent = np.zeros((m, prepared.n_atoms, 3))
        else:
            tangent = _numpy(tangent_positions)
        cell_tangents = None if tangent_cells is None else _numpy(tangent_cells)
        out = ctx.descriptor.jvp_many_prepared(prepared, tangent, cell_tangents)
        return torch.from_numpy(out).to(dtype=like.dtype, device=like.device), None, None


def vector_jacobian(descriptor: AniDescriptor, prepared: Any, cotangents: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable vector–Jacobian products of the features of a prepared batch.

    With ``cotangents[k] = ∂E_k/∂G`` ``(m, N, n_features)`` (e.g. one per committee member),
    returns ``∂E_k/∂positions`` ``(m, N, 3)`` (eV/Å: minus the forces) and ``∂E_k/∂cells``
    ``(m, B, 3, 3)`` (eV/Å). A loss on these back-propagates to whatever produced the cotangents
    (network weights), through the Jacobian–vector products of the core; the geometric terms are
    computed once for all ``m``.
    """
    if cotangents.ndim != 3:
        raise InvalidInputError(f"cotangents must have shape (m, N, F), got {tuple(cotangents.shape)}")
    return _ManyVectorJacobian.apply(cotangents, descriptor, prepared)


def ani_features(
    descriptor: AniDescriptor,
    positions: torch.Tensor,
    cells: torch.Tensor,
    pbc: Any,
    species: Any,
    counts: Any,
) -> torch.Tensor:
    """Differentiable ANI features ``(N, n_features)`` of a batch of structures.

    Args:
        descriptor: the :class:`~alal.descriptors.AniDescriptor` to evaluate.
        positions: ``(N, 3)`` tensor, Å: atoms of all structures concatenated.
        cells: ``(B, 3, 3)`` tensor, Å, lattice vectors as rows (differentiable: stress).
        pbc: ``(B, 3)`` booleans.
        species: ``(N,)`` species indices into ``descriptor.parameters.species``.
        counts: ``(B,)`` number of atoms of each structure.
    """
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise InvalidInputError(f"positions must have shape (N, 3), got {tuple(positions.shape)}")
    if cells.ndim != 3 or cells.shape[1:] != (3, 3):
        raise InvalidInputError(f"cells must have shape (B, 3, 3), got {tuple(cells.shape)}")
    as_np = lambda x, dtype: np.ascontiguousarray(  # noqa: E731
        x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x), dtype=dtype
    )
    batch = PackedBatch(
        positions=np.zeros((0, 3)),
        cells=np.zeros((0, 3, 3)),
        pbc=as_np(pbc, bool).reshape(-1, 3),
        species=as_np(species, np.int64).reshape(-1),
        counts=as_np(counts, np.int64).reshape(-1),
    )
    return _Features.apply(positions, cells, descriptor, batch)


class AniFeatures(torch.nn.Module):
    """:func:`ani_features` as a module with a fixed descriptor, for use inside torch models."""

    def __init__(self, descriptor: AniDescriptor) -> None:
        super().__init__()
        self.descriptor = descriptor

    def forward(self, positions: torch.Tensor, cells: torch.Tensor, pbc: Any, species: Any,
                counts: Any) -> torch.Tensor:
        return ani_features(self.descriptor, positions, cells, pbc, species, counts)
