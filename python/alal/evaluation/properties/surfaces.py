"""Surface energies and the intrinsic stacking-fault energy.

Surface energy of a relaxed symmetric slab, ``γ = (E_slab − N · E_bulk) / (2A)`` with ``E_bulk``
the energy per atom of the crystal at the calculator's own lattice constant and ``A`` the area of
the cell's surface; reported in J/m² and eV/Å². Slabs: ``slab_layers`` layers of ``slab_size``
surface cells, ``slab_vacuum`` Å of vacuum on each side, periodic cell, every atom relaxed (BFGS).
Facets: (100), (110), (111) for fcc and bcc (ASE's ``fcc100``... builders), (0001) and (10-10) for
hcp (ABAB stacking ending on the same layer type).

Intrinsic stacking fault (fcc only): a periodic (111) cell of ``stacking_fault_layers`` layers
(ABC...), and the same cell with its third vector tilted by the partial Burgers vector a/6⟨112⟩
(the in-plane shift from one layer to the next), which puts one fault (…ABCAB|CABC…, one layer of
the sequence missing) at the cell boundary. ``γ_ISF = (E_faulted − E_perfect) / A``, in mJ/m²; the faulted
atoms relax along the fault normal only, and so does the cell height (zero normal stress): layers
next to a fault change their spacing, and a cell of fixed height would add the strain that costs
(−5.7 instead of −11 mJ/m² for EMT Al in a 12-layer cell).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.build import bcc100, bcc110, bcc111, fcc100, fcc110, fcc111, hcp0001, hcp10m10
from ase.constraints import FixCartesian
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from alal.evaluation.common import (EV_PER_A2_TO_J_PER_M2, CalcFactory, NotApplicableError, Quantity, Result,
                                    equilibrium_for, relax_positions)

__all__ = ["FACETS", "StackingFaultResult", "SurfaceResult", "make_slab", "stacking_fault", "surfaces"]

FACETS = {"fcc": ("100", "110", "111"), "bcc": ("100", "110", "111"), "hcp": ("0001", "10-10")}
_BUILDERS = {("fcc", "100"): fcc100, ("fcc", "110"): fcc110, ("fcc", "111"): fcc111,
             ("bcc", "100"): bcc100, ("bcc", "110"): bcc110, ("bcc", "111"): bcc111,
             ("hcp", "0001"): hcp0001, ("hcp", "10-10"): hcp10m10}


@dataclass
class SurfaceResult(Result):
    title: ClassVar[str] = "Surface energies"

    structure: str
    energies_J_m2: dict[str, float]
    """Relaxed surface energy per facet, J/m²."""
    energies_eV_A2: dict[str, float]
    """The same in eV/Å²."""
    unrelaxed_J_m2: dict[str, float]
    n_atoms: dict[str, int]
    converged: dict[str, bool] = field(default_factory=dict)

    def quantities(self) -> list[Quantity]:
        return [Quantity(f"surface energy ({facet})", "J/m²", value) for facet, value in self.energies_J_m2.items()]


@dataclass
class StackingFaultResult(Result):
    title: ClassVar[str] = "Stacking fault"

    energy_mJ_m2: float
    """Relaxed intrinsic stacking-fault energy, mJ/m²."""
    unrelaxed_mJ_m2: float
    n_layers: int
    converged: bool

    def quantities(self) -> list[Quantity]:
        return [Quantity("intrinsic stacking fault", "mJ/m²", self.energy_mJ_m2)]


def make_slab(element: str, structure: str, facet: str, a: float, covera: float | None, layers: int,
              size: tuple[int, int], vacuum: float) -> Atoms:
    """A periodic slab (see the module) of ``layers`` atomic layers."""
    builder = _BUILDERS.get((structure, facet))
    if builder is None:
        known = ", ".join(f"{s} ({f})" for s, f in _BUILDERS)
        raise NotApplicableError(f"no ({facet}) slab for {structure}; known: {known}")
    kwargs: dict[str, Any] = {"a": a, "vacuum": vacuum, "periodic": True}
    if structure == "hcp":
        kwargs["c"] = a * float(covera or np.sqrt(8 / 3))
    atoms = builder(element, (size[0], size[1], layers), **kwargs)
    atoms.info.pop("adsorbate_info", None)
    atoms.pbc = True
    return atoms


def surface_area(atoms: Atoms) -> float:
    """Area (Å²) of the cell face spanned by its first two vectors."""
    return float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))


def surfaces(calc_factory: CalcFactory, element: str, settings: Any) -> SurfaceResult:
    eq = equilibrium_for(calc_factory, element, settings)
    facets = settings.surface_facets or FACETS.get(eq.structure)
    if not facets:
        raise NotApplicableError(f"no default surfaces for {eq.structure}; set surface_facets")
    out: dict[str, dict[str, Any]] = {"J": {}, "eV": {}, "unrelaxed": {}, "n": {}, "conv": {}}
    for facet in facets:
        slab = make_slab(element, eq.structure, facet, eq.a, eq.covera, settings.slab_layers,
                         tuple(settings.slab_size), settings.slab_vacuum)
        slab.calc = calc_factory()
        area2 = 2 * surface_area(slab)
        n_bulk = len(slab) * eq.energy_per_atom
        unrelaxed = (float(slab.get_potential_energy()) - n_bulk) / area2
        converged = relax_positions(slab, settings.fmax, settings.max_steps)
        gamma = (float(slab.get_potential_energy()) - n_bulk) / area2
        out["eV"][facet] = gamma
        out["J"][facet] = gamma * EV_PER_A2_TO_J_PER_M2
        out["unrelaxed"][facet] = unrelaxed * EV_PER_A2_TO_J_PER_M2
        out["n"][facet] = len(slab)
        out["conv"][facet] = converged
    return SurfaceResult(eq.structure, out["J"], out["eV"], out["unrelaxed"], out["n"], out["conv"])


def faulted_cells(element: str, a: float, layers: int) -> tuple[Atoms, Atoms]:
    """A perfect periodic fcc (111) cell of ``layers`` layers and the same with one intrinsic
    stacking fault (its third cell vector tilted by the layer-to-layer shift)."""
    if layers < 3 or layers % 3:
        raise NotApplicableError(f"stacking_fault_layers must be a multiple of 3 (ABC), got {layers}")
    perfect = fcc111(element, (1, 1, layers), a=a, periodic=True)
    perfect.info.pop("adsorbate_info", None)
    perfect.pbc = True
    order = np.argsort(perfect.positions[:, 2], kind="stable")
    shift = perfect.positions[order[1]] - perfect.positions[order[0]]
    shift[2] = 0.0
    faulted = perfect.copy()
    cell = np.array(perfect.cell)
    cell[2] += shift
    faulted.set_cell(cell, scale_atoms=False)
    return perfect, faulted


def stacking_fault(calc_factory: CalcFactory, element: str, settings: Any) -> StackingFaultResult:
    eq = equilibrium_for(calc_factory, element, settings)
    if eq.structure != "fcc":
        raise NotApplicableError(f"the intrinsic stacking fault is computed for fcc, not {eq.structure}")
    perfect, faulted = faulted_cells(element, eq.a, settings.stacking_fault_layers)
    perfect.calc = calc_factory()
    e_perfect = float(perfect.get_potential_energy())
    faulted.calc = calc_factory()
    area = surface_area(faulted)
    unrelaxed = (float(faulted.get_potential_energy()) - e_perfect) / area
    faulted.set_constraint(FixCartesian(range(len(faulted)), mask=(True, True, False)))
    filtered = FrechetCellFilter(faulted, mask=[0, 0, 1, 0, 0, 0])  # the cell height relaxes too
    converged = bool(BFGS(filtered, logfile=None, maxstep=0.05).run(fmax=settings.fmax, steps=settings.max_steps))
    gamma = (float(faulted.get_potential_energy()) - e_perfect) / area
    to_mj = EV_PER_A2_TO_J_PER_M2 * 1e3
    return StackingFaultResult(gamma * to_mj, unrelaxed * to_mj, settings.stacking_fault_layers, converged)
