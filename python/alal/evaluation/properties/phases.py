"""Energy differences between crystal structures, each at its own equilibrium (eV/atom).

Every structure of :data:`alal.builders.STRUCTURES` other than the ground state (fcc → bcc, hcp,
sc, diamond for Al) is brought to the minimum of its E(V) fit (hcp also relaxes c/a) and
``ΔE = E(structure)/N − E(ground state)/N`` is reported, with each equilibrium volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from alal.builders import STRUCTURES
from alal.evaluation.common import CalcFactory, Quantity, Result, equilibrium_for

__all__ = ["PhaseResult", "compute"]


@dataclass
class PhaseResult(Result):
    title: ClassVar[str] = "Phase energies"

    ground: str
    """The reference structure of the differences."""
    delta_eV: dict[str, float]
    """E(structure) − E(ground), eV/atom."""
    volume_per_atom_A3: dict[str, float]
    """Equilibrium volume of every structure, ground included, Å³/atom."""
    lattice_constant_A: dict[str, float]
    covera: float | None
    """Relaxed c/a of hcp."""

    def quantities(self) -> list[Quantity]:
        return [Quantity(f"ΔE {self.ground} → {s}", "eV/atom", d) for s, d in self.delta_eV.items()]


def compute(calc_factory: CalcFactory, element: str, settings: Any) -> PhaseResult:
    ground = equilibrium_for(calc_factory, element, settings)
    delta, volumes, lattice = {}, {ground.structure: ground.volume_per_atom}, {ground.structure: ground.a}
    covera = ground.covera
    for structure in STRUCTURES:
        if structure == ground.structure:
            continue
        eq = equilibrium_for(calc_factory, element, settings, structure)
        delta[structure] = eq.energy_per_atom - ground.energy_per_atom
        volumes[structure] = eq.volume_per_atom
        lattice[structure] = eq.a
        if structure == "hcp":
            covera = eq.covera
    return PhaseResult(ground.structure, delta, volumes, lattice, covera)
