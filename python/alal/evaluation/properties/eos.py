"""Equation of state: lattice constant (Å), cohesive energy per atom (eV), bulk modulus (GPa).

The cohesive energy is ``E(isolated atom) − E(crystal)/N``, the atom alone in a non-periodic box
(``isolated_atom_box`` Å). A committee trained on condensed phases may never have seen an isolated
atom: its value is reported as the committee predicts it, with the committee's spread on it, not
replaced by the oracle's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from alal.evaluation.common import CalcFactory, Quantity, Result, equilibrium_for, isolated_atom

__all__ = ["EosResult", "compute"]


@dataclass
class EosResult(Result):
    title: ClassVar[str] = "Equation of state"

    structure: str
    lattice_constant_A: float
    """Conventional lattice constant a, Å (hcp: the in-plane a)."""
    covera: float | None
    volume_per_atom_A3: float
    energy_per_atom_eV: float
    bulk_modulus_GPa: float
    isolated_atom_energy_eV: float
    isolated_atom_std_eV: float | None
    """The committee's spread of the isolated-atom energy (``None`` for a plain calculator)."""
    cohesive_energy_eV: float
    """E(atom) − E(crystal)/N, eV/atom (positive when bound)."""
    volumes_A3: list[float]
    """E–V curve: volumes per atom, Å³."""
    energies_eV: list[float]
    """E–V curve: energies per atom, eV."""
    fit_rms_meV: float | None = None
    """RMS residual of the E(V) fit, meV/atom (large for a potential that is not smooth)."""

    def quantities(self) -> list[Quantity]:
        out = [Quantity("lattice constant a", "Å", self.lattice_constant_A)]
        if self.covera is not None:
            out.append(Quantity("c/a", "", self.covera))
        return out + [
            Quantity("volume per atom", "Å³", self.volume_per_atom_A3),
            Quantity("cohesive energy", "eV/atom", self.cohesive_energy_eV),
            Quantity("bulk modulus B", "GPa", self.bulk_modulus_GPa),
            Quantity("isolated atom energy", "eV", self.isolated_atom_energy_eV),
            Quantity("E(V) fit RMS residual", "meV/atom", self.fit_rms_meV),
        ]


def compute(calc_factory: CalcFactory, element: str, settings: Any) -> EosResult:
    """E(V) of the ground-state crystal fitted by ``settings.eos``, and the cohesive energy."""
    eq = equilibrium_for(calc_factory, element, settings)
    e_atom, std = isolated_atom(calc_factory, element, settings.isolated_atom_box)
    return EosResult(eq.structure, eq.a, eq.covera, eq.volume_per_atom, eq.energy_per_atom, eq.bulk_modulus,
                     e_atom, std, e_atom - eq.energy_per_atom, list(eq.volumes), list(eq.energies),
                     1e3 * eq.fit_rms)
