"""ANI-style atom-centred descriptors with analytic gradients, from the Rust core.

For each atom, radial symmetry functions per neighbour species and angular symmetry functions per
unordered neighbour species pair (Smith, Isayev & Roitberg, Chem. Sci. 8, 3192 (2017); the ANI-Al
parameters of Smith et al., Nat. Commun. 12, 1257 (2021))::

    G_rad[s, Rs]         = radial_scale · Σ_{j ∈ s} exp(−η_R (r_ij − Rs)²) · fc(r_ij)
    G_ang[(s,t), Rs, θs] = 2 · Σ_{j<k} ((1 + cos(θ_ijk − θs)) / 2)^ζ
                               · exp(−η_A ((r_ij + r_ik)/2 − Rs)²) · fc(r_ij) · fc(r_ik)

with the cosine cutoff ``fc(r) = ½ cos(π r / Rc) + ½`` and ``cos θ_ijk`` multiplied by ``cos_scale``
(torchani's 0.95) before taking the angle. Distances in Å, η in Å⁻², angles in radians.

Gradients never build the Jacobian: :meth:`AniDescriptor.vjp` turns ``∂E/∂G`` into ``∂E/∂positions``
(eV/Å, so forces are its negative), ``∂E/∂cell`` and the virial (eV); :meth:`AniDescriptor.jvp`
turns a displacement field into the change of the features. :mod:`alal.autograd` wires both
into torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols
from numpy.typing import ArrayLike, NDArray

from alal import _core
from alal._validate import float_array, n_threads_arg, pbc_flags
from alal.errors import InvalidInputError

__all__ = [
    "AniDescriptor",
    "AniParameters",
    "Gradients",
    "PackedBatch",
    "ani_1x",
    "ani_al",
    "ani_al_smooth",
]


def _floats(values: Any, name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{name} must be a sequence of numbers, got {values!r}") from err
    if not out:
        raise InvalidInputError(f"{name} must not be empty")
    if not all(math.isfinite(v) for v in out):
        raise InvalidInputError(f"{name} must be finite, got {out}")
    return out


@dataclass(frozen=True)
class AniParameters:
    """Parameters of the ANI descriptor (all distances in Å, η in Å⁻², angles in rad).

    Attributes:
        species: element symbols; channel order follows this order.
        radial_cutoff: radial cutoff Rc_R, Å.
        radial_eta: η_R, Å⁻².
        radial_shifts: radial centres Rs, Å.
        angular_cutoff: angular cutoff Rc_A, Å.
        angular_eta: η_A, Å⁻².
        angular_zeta: ζ (≥ 1).
        angular_shifts: centres of the mean distance of the angular terms, Å.
        angle_sections: θs, rad.
        radial_scale: prefactor of the radial terms (torchani: 0.25).
        cos_scale: factor on cos θ before the angle is taken, in (0, 1) (torchani: 0.95).
    """

    species: tuple[str, ...]
    radial_cutoff: float
    radial_eta: float
    radial_shifts: tuple[float, ...]
    angular_cutoff: float
    angular_eta: float
    angular_zeta: float
    angular_shifts: tuple[float, ...]
    angle_sections: tuple[float, ...]
    radial_scale: float = 0.25
    cos_scale: float = 0.95
    _numbers: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _lookup: NDArray[np.int64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        species = (self.species,) if isinstance(self.species, str) else tuple(self.species)
        if not species:
            raise InvalidInputError("species must name at least one element")
        for s in species:
            if s not in atomic_numbers or s == "X":
                raise InvalidInputError(f"species: unknown element {s!r}")
        if len(set(species)) != len(species):
            raise InvalidInputError(f"species must not repeat an element, got {species}")
        object.__setattr__(self, "species", species)
        object.__setattr__(self, "_numbers", tuple(atomic_numbers[s] for s in species))
        lookup = np.full(len(chemical_symbols), -1, dtype=np.int64)  # species index by Z, -1: none
        lookup[list(self._numbers)] = np.arange(len(species))
        lookup.flags.writeable = False
        object.__setattr__(self, "_lookup", lookup)
        for name in ("radial_shifts", "angular_shifts", "angle_sections"):
            object.__setattr__(self, name, _floats(getattr(self, name), name))
        for name in ("radial_cutoff", "radial_eta", "angular_cutoff", "angular_eta", "angular_zeta",
                     "radial_scale", "cos_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise InvalidInputError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def n_species(self) -> int:
        """Number of elements."""
        return len(self.species)

    @property
    def n_radial(self) -> int:
        """Radial features per atom."""
        return self.n_species * len(self.radial_shifts)

    @property
    def n_features(self) -> int:
        """Features per atom."""
        pairs = self.n_species * (self.n_species + 1) // 2
        return self.n_radial + pairs * len(self.angular_shifts) * len(self.angle_sections)

    @property
    def max_cutoff(self) -> float:
        """Largest cutoff, Å."""
        return max(self.radial_cutoff, self.angular_cutoff)

    def species_indices(self, numbers: ArrayLike) -> NDArray[np.int64]:
        """Map atomic numbers to species indices; an element outside ``species`` is an error."""
        z = np.asarray(numbers, dtype=np.int64).reshape(-1)
        in_table = (z >= 0) & (z < len(self._lookup))
        out = np.where(in_table, self._lookup[np.where(in_table, z, 0)], -1)
        if (out < 0).any():
            missing = np.flatnonzero(out < 0)
            bad = sorted({chemical_symbols[int(z[k])] if 0 <= z[k] < len(chemical_symbols) else str(z[k])
                          for k in missing})
            raise InvalidInputError(
                f"element(s) {', '.join(bad)} not covered by the descriptor's species {self.species}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (lists and floats)."""
        data = asdict(self)
        data.pop("_numbers", None)
        data.pop("_lookup", None)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AniParameters:
        """Inverse of :meth:`to_dict`; an unknown key is an error naming it."""
        known = {f for f in cls.__dataclass_fields__ if not f.startswith("_")}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown descriptor parameter(s): {', '.join(unknown)}")
        return cls(**data)


def _sections(n: int) -> tuple[float, ...]:
    """``n`` angle sections evenly spread over (0, π), centred in each slice (as torchani)."""
    return tuple(float(x) for x in np.linspace(0.0, math.pi, n + 1)[:-1] + math.pi / (2 * n))


def _shifts(start: float, stop: float, n: int) -> tuple[float, ...]:
    """``n`` centres from ``start`` towards ``stop`` (exclusive), as torchani's ``linspace[:-1]``."""
    return tuple(float(x) for x in np.linspace(start, stop, n + 1)[:-1])


def ani_al(species: Sequence[str] = ("Al",)) -> AniParameters:
    """ANI-Al parameters (Smith et al., Nat. Commun. 12, 1257, 2021): radial cutoff 7.0 Å with 32
    shifts from 1.25 to 6.82 Å (η 43.9 Å⁻²); angular cutoff 5.0 Å with 8 shifts from 1.25 to
    4.53 Å × 8 angle sections (ζ 69.4, η 6.5 Å⁻²): 96 features per atom for aluminium alone."""
    return AniParameters(
        species=tuple(species),
        radial_cutoff=7.0,
        radial_eta=43.9,
        radial_shifts=_shifts(1.25, 7.0, 32),
        angular_cutoff=5.0,
        angular_eta=6.5,
        angular_zeta=69.4,
        angular_shifts=_shifts(1.25, 5.0, 8),
        angle_sections=_sections(8),
    )


def ani_al_smooth(species: Sequence[str] = ("Al",)) -> AniParameters:
    """ANI-Al's angular terms with 12 wider radial Gaussians (η 4 Å⁻², shifts from 1.25 to
    6.52 Å, 0.48 Å apart) within the same 7.0 Å: 76 features per atom for aluminium alone.

    ANI-Al's 32 radial Gaussians (η 43.9 Å⁻², 0.11 Å wide, 0.18 Å apart) resolve neighbour shells
    finer than thermal motion smears them. A committee trained on a hundred thermal frames leaves
    that fine structure unconstrained, and on the perfect lattice its energy ripples as the shells
    move through the Gaussians: bumpy E(V) curves, wrong elastic constants. With these, trained on
    the quick-start data, the E(V) fit residual fell 10×, and test-set forces did not get worse."""
    return replace(ani_al(species), radial_eta=4.0, radial_shifts=_shifts(1.25, 7.0, 12))


def ani_1x() -> AniParameters:
    """torchani's ANI-1x constants for H, C, N, O (384 features per atom), for cross-checking."""
    return AniParameters(
        species=("H", "C", "N", "O"),
        radial_cutoff=5.2,
        radial_eta=16.0,
        radial_shifts=_shifts(0.9, 5.2, 16),
        angular_cutoff=3.5,
        angular_eta=8.0,
        angular_zeta=32.0,
        angular_shifts=_shifts(0.9, 3.5, 4),
        angle_sections=_sections(8),
    )


class Gradients(NamedTuple):
    """Result of a vector–Jacobian product for one structure (``L`` is typically the energy, eV).

    Attributes:
        positions: ``∂L/∂positions``, ``(n_atoms, 3)``, eV/Å. Forces are ``-positions``.
        cell: ``∂L/∂cell`` at fixed Cartesian positions, ``(3, 3)``, eV/Å.
        virial: ``W = −Σ_pairs D ⊗ ∂L/∂D``, ``(3, 3)``, eV. The stress is ``−W / volume`` (eV/Å³).
    """

    positions: NDArray[np.float64]
    cell: NDArray[np.float64]
    virial: NDArray[np.float64]


class PackedBatch(NamedTuple):
    """Structures packed as the core takes them: atoms of all structures concatenated."""

    positions: NDArray[np.float64]  # (N, 3), Å
    cells: NDArray[np.float64]  # (B, 3, 3), Å
    pbc: NDArray[np.bool_]  # (B, 3)
    species: NDArray[np.int64]  # (N,), indices into AniParameters.species
    counts: NDArray[np.int64]  # (B,)


class AniDescriptor:
    """Computes ANI descriptors and their vector–Jacobian / Jacobian–vector products.

    Example::

        desc = AniDescriptor(ani_al())
        G = desc.compute(atoms)                  # (n_atoms, 96)
        grads = desc.vjp(atoms, dE_dG)           # forces = -grads.positions

    Args:
        parameters: the descriptor's parameters (see :func:`ani_al`, :func:`ani_1x`).
        n_threads: threads to use (default: all); results do not depend on it.
    """

    def __init__(self, parameters: AniParameters, *, n_threads: int | None = None) -> None:
        if not isinstance(parameters, AniParameters):
            raise InvalidInputError(f"parameters must be AniParameters, got {type(parameters).__name__}")
        self.parameters = parameters
        self.n_threads = n_threads_arg(n_threads)
        p = parameters
        self._core = _core.AniDescriptor(
            n_species=p.n_species,
            radial_cutoff=p.radial_cutoff,
            radial_eta=p.radial_eta,
            radial_shifts=list(p.radial_shifts),
            radial_scale=p.radial_scale,
            angular_cutoff=p.angular_cutoff,
            angular_eta=p.angular_eta,
            angular_zeta=p.angular_zeta,
            angular_shifts=list(p.angular_shifts),
            angle_sections=list(p.angle_sections),
            cos_scale=p.cos_scale,
        )

    @property
    def n_features(self) -> int:
        """Features per atom."""
        return int(self._core.n_features)

    def __repr__(self) -> str:
        return f"AniDescriptor(species={self.parameters.species}, n_features={self.n_features})"

    # -- packing -------------------------------------------------------------------------------
    def pack(self, structures: Atoms | Sequence[Atoms]) -> PackedBatch:
        """Pack one or many :class:`ase.Atoms` into the arrays the core takes."""
        atoms_list = [structures] if isinstance(structures, Atoms) else list(structures)
        for k, atoms in enumerate(atoms_list):
            if not isinstance(atoms, Atoms):
                raise InvalidInputError(f"structure {k}: expected an ase.Atoms, got {type(atoms).__name__}")
        n = sum(len(a) for a in atoms_list)
        positions = (
            np.concatenate([a.positions for a in atoms_list]) if n else np.zeros((0, 3))
        )
        numbers = np.concatenate([a.numbers for a in atoms_list]) if n else np.zeros(0, dtype=np.int64)
        return PackedBatch(
            positions=float_array(positions, "positions", (None, 3)),
            cells=float_array(np.array([np.asarray(a.cell) for a in atoms_list]).reshape(-1, 3, 3), "cells",
                              (None, 3, 3)),
            pbc=np.array([pbc_flags(a.pbc) for a in atoms_list], dtype=bool).reshape(-1, 3),
            species=self.parameters.species_indices(numbers),
            counts=np.array([len(a) for a in atoms_list], dtype=np.int64),
        )

    # -- packed-array API (used by alal.autograd) ----------------------------------------------
    def prepare(self, batch: PackedBatch) -> _core.PreparedBatch:
        """Find the neighbourhoods of a packed batch once, for several ``*_prepared`` calls on the
        same positions (a forward pass and its backward passes). Holds ~100 bytes per pair; once
        it is freed, up to 2^18 pairs' worth of that memory (~27 MB) is kept for the next call,
        which then need not fault fresh memory in (one ``prepare`` per MD step)."""
        return self._core.prepare(*batch, n_threads=self.n_threads)

    def forward_prepared(self, prepared: _core.PreparedBatch) -> NDArray[np.float64]:
        """Features ``(N, n_features)`` of a prepared batch."""
        return self._core.forward_prepared(prepared, n_threads=self.n_threads)

    def vjp_prepared(
        self, prepared: _core.PreparedBatch, cotangent: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """:meth:`vjp_packed` on a prepared batch."""
        cot = float_array(cotangent, "cotangent", (prepared.n_atoms, self.n_features))
        return self._core.vjp_prepared(prepared, cot, n_threads=self.n_threads)

    def jvp_prepared(
        self, prepared: _core.PreparedBatch, tangent: ArrayLike, cell_tangents: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """:meth:`jvp_packed` on a prepared batch."""
        t = float_array(tangent, "tangent", (prepared.n_atoms, 3))
        ct = None if cell_tangents is None else float_array(
            cell_tangents, "cell_tangents", (prepared.n_structures, 3, 3))
        return self._core.jvp_prepared(prepared, t, ct, n_threads=self.n_threads)

    def vjp_many_prepared(
        self, prepared: _core.PreparedBatch, cotangents: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Vector–Jacobian products of ``m`` cotangents ``(m, N, n_features)`` at once (one per
        committee member): ``(∂L_k/∂positions (m, N, 3), ∂L_k/∂cells (m, B, 3, 3), virials
        (m, B, 3, 3))``. The geometric terms are shared, so this is much cheaper than ``m``
        calls of :meth:`vjp_prepared`."""
        cot = float_array(cotangents, "cotangents", (None, prepared.n_atoms, self.n_features))
        return self._core.vjp_many_prepared(prepared, cot, n_threads=self.n_threads)

    def jvp_many_prepared(
        self, prepared: _core.PreparedBatch, tangents: ArrayLike, cell_tangents: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """Jacobian–vector products of ``m`` position tangents ``(m, N, 3)`` (Å) and optional cell
        tangents ``(m, B, 3, 3)`` (Å) at once: ``(m, N, n_features)``."""
        t = float_array(tangents, "tangents", (None, prepared.n_atoms, 3))
        ct = None if cell_tangents is None else float_array(
            cell_tangents, "cell_tangents", (t.shape[0], prepared.n_structures, 3, 3))
        return self._core.jvp_many_prepared(prepared, t, ct, n_threads=self.n_threads)

    def forward_packed(self, batch: PackedBatch) -> NDArray[np.float64]:
        """Features ``(N, n_features)`` of a packed batch."""
        return self.forward_prepared(self.prepare(batch))

    def vjp_packed(
        self, batch: PackedBatch, cotangent: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """``(∂L/∂positions (N, 3), ∂L/∂cells (B, 3, 3), virials (B, 3, 3))`` for ``∂L/∂G``."""
        return self.vjp_prepared(self.prepare(batch), cotangent)

    def jvp_packed(
        self, batch: PackedBatch, tangent: ArrayLike, cell_tangents: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """Change of the features ``(N, n_features)`` for position tangents ``(N, 3)`` (Å) and
        optional cell tangents ``(B, 3, 3)`` (Å)."""
        return self.jvp_prepared(self.prepare(batch), tangent, cell_tangents)

    # -- ASE-level API -------------------------------------------------------------------------
    def compute(self, atoms: Atoms) -> NDArray[np.float64]:
        """Features of every atom, ``(n_atoms, n_features)``."""
        return self.forward_packed(self.pack(atoms))

    def compute_batch(self, structures: Sequence[Atoms]) -> list[NDArray[np.float64]]:
        """Features of many structures in one parallel call, one array per structure."""
        batch = self.pack(structures)
        features = self.forward_packed(batch)
        return np.split(features, np.cumsum(batch.counts)[:-1]) if len(batch.counts) else []

    def vjp(self, atoms: Atoms, cotangent: ArrayLike) -> Gradients:
        """Vector–Jacobian product for one structure: ``cotangent = ∂L/∂G``, ``(n_atoms, n_features)``."""
        grad, cells, virials = self.vjp_packed(self.pack(atoms), cotangent)
        return Gradients(positions=grad, cell=cells[0], virial=virials[0])

    def vjp_batch(self, structures: Sequence[Atoms], cotangents: Sequence[ArrayLike]) -> list[Gradients]:
        """Vector–Jacobian products of many structures in one parallel call."""
        batch = self.pack(structures)
        cot = np.concatenate([np.asarray(c, dtype=np.float64).reshape(-1, self.n_features) for c in cotangents]) \
            if len(cotangents) else np.zeros((0, self.n_features))
        grad, cells, virials = self.vjp_packed(batch, cot)
        parts = np.split(grad, np.cumsum(batch.counts)[:-1]) if len(batch.counts) else []
        return [Gradients(g, c, v) for g, c, v in zip(parts, cells, virials)]

    def jvp(self, atoms: Atoms, tangent: ArrayLike, cell_tangent: ArrayLike | None = None) -> NDArray[np.float64]:
        """Jacobian–vector product for one structure: the change of the features when positions
        move by ``tangent`` ``(n_atoms, 3)`` (Å) and the cell by ``cell_tangent`` ``(3, 3)`` (Å)."""
        ct = None if cell_tangent is None else np.asarray(cell_tangent, dtype=np.float64).reshape(1, 3, 3)
        return self.jvp_packed(self.pack(atoms), tangent, ct)

    def jacobian(self, atoms: Atoms, *, max_bytes: int = 2**30) -> NDArray[np.float64]:
        """Dense Jacobian ``∂G[i, f] / ∂r[j, c]``, ``(n_atoms, n_features, n_atoms, 3)``, for small
        systems; refuses when the array would exceed ``max_bytes``."""
        batch = self.pack(atoms)
        return self._core.jacobian(
            batch.positions, batch.cells[0], pbc_flags(batch.pbc[0]), batch.species, int(max_bytes),
            n_threads=self.n_threads,
        )
