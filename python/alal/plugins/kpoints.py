"""The k-point rule of alal's DFT oracles: one Γ-centred Monkhorst–Pack mesh from a k-point
density for every cell, so that cells of any size get consistent sampling (a shifted mesh gave a
rattled 1-atom Al cell a false −1.4 GPa shear stress, and switching rules moved energies by ~30
meV/atom). Oracles record :data:`KPOINT_RULE` and the density in their settings."""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms

__all__ = ["KPOINT_RULE", "kpoint_mesh"]

KPOINT_RULE = ("Gamma-centred Monkhorst-Pack; n_i = max(1, ceil(2*pi*|b_i|*density)) along periodic "
               "axes (b_i reciprocal vectors without 2*pi, 1/Å), 1 along non-periodic axes")


def kpoint_mesh(atoms: Atoms, density: float) -> tuple[int, int, int]:
    """The Γ-centred mesh of ``atoms`` for a k-point ``density`` (points per Å⁻¹ of reciprocal
    length, as ASE's ``kptdensity``): the spacing of the mesh is at most ``1/density`` Å⁻¹ (2π
    included) along every periodic axis, so cells of any size get the same sampling."""
    lengths = np.linalg.norm(atoms.cell.reciprocal(), axis=1)
    return tuple(max(1, math.ceil(2 * math.pi * float(b) * density - 1e-6)) if periodic else 1
                 for b, periodic in zip(lengths, atoms.pbc))  # type: ignore[return-value]
