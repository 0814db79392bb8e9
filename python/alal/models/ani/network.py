"""Per-element committee networks with stacked weights: the K members of one element run as one
batched matrix product (``torch.baddbmm``) instead of K separate passes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["ACTIVATIONS", "CommitteeNetworks"]

_SMOOTH = {"silu": torch.nn.functional.silu, "softplus": torch.nn.functional.softplus, "tanh": torch.tanh}
ACTIVATIONS = ("celu", *_SMOOTH)
"""Hidden-layer activations. ``celu`` (ANI's, with ``celu_alpha``) has a second derivative that
jumps by 1/α where a unit's input crosses zero: the energy of a potential built from it is only
once continuously differentiable, so its curvature (elastic constants, phonons, bulk modulus) can
be bumpy. ``silu``, ``softplus`` and ``tanh`` are smooth to every order."""


class CommitteeNetworks(torch.nn.Module):
    """``n_members`` independent MLPs per element, ``n_features → hidden… → 1``, with the hidden
    activation ``activation`` (one of :data:`ACTIVATIONS`; CELU(α) by default).

    Parameters of element ``e``, layer ``l`` are ``weight_e_l`` ``(K, n_in, n_out)`` and
    ``bias_e_l`` ``(K, 1, n_out)``; member ``k`` owns slice ``k`` of each.
    """

    def __init__(self, n_elements: int, n_members: int, n_features: int, hidden: Sequence[int],
                 celu_alpha: float, seeds: Sequence[int], dtype: torch.dtype = torch.float32,
                 activation: str = "celu") -> None:
        super().__init__()
        if len(seeds) != n_members:
            raise ValueError("one seed per member is needed")
        self.n_elements, self.n_members = n_elements, n_members
        self.sizes = [n_features, *hidden, 1]
        self.celu_alpha = float(celu_alpha)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        for e in range(n_elements):
            for layer, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
                self.register_parameter(f"weight_{e}_{layer}", torch.nn.Parameter(
                    torch.empty(n_members, n_in, n_out, dtype=dtype)))
                self.register_parameter(f"bias_{e}_{layer}", torch.nn.Parameter(
                    torch.zeros(n_members, 1, n_out, dtype=dtype)))
        self.reset_parameters(seeds)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def layer(self, element: int, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"weight_{element}_{layer}"), getattr(self, f"bias_{element}_{layer}")

    @torch.no_grad()
    def reset_parameters(self, seeds: Sequence[int]) -> None:
        """Kaiming-uniform weights for the hidden layers (gain 1 for the last), zero biases;
        member ``k`` draws from its own generator seeded with ``seeds[k]``."""
        for k, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(int(seed))
            for e in range(self.n_elements):
                for layer in range(self.n_layers):
                    w, b = self.layer(e, layer)
                    n_in = w.shape[1]
                    bound = math.sqrt(3.0 / n_in) * (math.sqrt(2.0) if layer < self.n_layers - 1 else 1.0)
                    w[k].copy_((torch.rand(w.shape[1:], generator=gen, dtype=torch.float64) * 2 - 1) * bound)
                    b[k].zero_()

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Atomic outputs ``(K, N)`` of standardised features ``x`` — ``(N, F)`` shared by the
        members or ``(K, N, F)`` per member — for atoms of element indices ``species`` ``(N,)``."""
        k, n = self.n_members, species.shape[0]
        out = x.new_zeros((k, n))
        for e in range(self.n_elements):
            idx = (species == e).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            h = x.index_select(x.ndim - 2, idx)
            if h.ndim == 2:
                h = h.unsqueeze(0).expand(k, -1, -1)
            for layer in range(self.n_layers):
                w, b = self.layer(e, layer)
                h = torch.baddbmm(b, h, w)
                if layer < self.n_layers - 1:
                    h = self._activate(h)
            out = out.index_copy(1, idx, h.squeeze(2))
        return out

    def _activate(self, h: torch.Tensor) -> torch.Tensor:
        if self.activation == "celu":
            return torch.nn.functional.celu(h, alpha=self.celu_alpha)
        return _SMOOTH[self.activation](h)

    @torch.no_grad()
    def copy_member(self, source: CommitteeNetworks, k: int) -> None:
        """Copy member ``k`` of ``source`` (same shapes) into member ``k`` of this one."""
        for (_, mine), (_, theirs) in zip(self.named_parameters(), source.named_parameters()):
            mine[k].copy_(theirs[k])
