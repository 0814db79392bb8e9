"""Point defects: the relaxed vacancy and self-interstitial formation energies (eV).

The perfect supercell is the near-cubic repetition of the conventional cell with at most
``defect_atoms`` atoms, at the calculator's own lattice constant; the defective cell keeps that
cell and its atoms are relaxed (BFGS to ``fmax``).

* vacancy: one atom removed, ``E_f = E(N−1) − (N−1)/N · E(N)``;
* self-interstitial, ``E_f = E(N+1) − (N+1)/N · E(N)``, started from the split dumbbell that is
  the stable interstitial of close-packed metals: ⟨100⟩ in fcc (an atom replaced by a pair
  ±a/4 along x about its site), ⟨110⟩ in bcc (±a/4 · (1,1,0)/√2); in other structures an extra
  atom in the largest hole found (:func:`alal.builders.interstitials`, 2000 trials, seed 0).
  The relaxation may carry the dumbbell elsewhere: the reported energy is that of the relaxed
  configuration, whatever it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from ase import Atoms

from alal.builders import interstitials
from alal.evaluation.common import CalcFactory, Quantity, Result, equilibrium_for, relax_positions

__all__ = ["DefectResult", "dumbbell", "interstitial", "vacancy"]


@dataclass
class DefectResult(Result):
    title: ClassVar[str] = "Point defect"

    kind: str
    """``"vacancy"`` or ``"interstitial"``."""
    configuration: str
    n_atoms: int
    """Atoms of the perfect supercell."""
    formation_energy_eV: float
    unrelaxed_formation_energy_eV: float
    converged: bool

    def quantities(self) -> list[Quantity]:
        return [Quantity(f"{self.kind} formation energy", "eV", self.formation_energy_eV)]


def _relaxed_energy(atoms: Atoms, calc_factory: CalcFactory, settings: Any) -> tuple[float, float, bool]:
    atoms.calc = calc_factory()
    unrelaxed = float(atoms.get_potential_energy())
    converged = relax_positions(atoms, settings.fmax, settings.max_steps)
    return unrelaxed, float(atoms.get_potential_energy()), converged


def dumbbell(perfect: Atoms, structure: str, a: float) -> tuple[Atoms, str]:
    """``perfect`` with one self-interstitial: a split dumbbell on atom 0 (see the module)."""
    directions = {"fcc": (np.array([1.0, 0.0, 0.0]), "⟨100⟩ dumbbell"),
                  "bcc": (np.array([1.0, 1.0, 0.0]) / np.sqrt(2), "⟨110⟩ dumbbell")}
    if structure not in directions:
        out = interstitials(perfect, 1, rng=np.random.default_rng(0), max_tries=2000)
        return out, "largest hole"
    direction, name = directions[structure]
    out = perfect.copy()
    site = out.positions[0].copy()
    out.positions[0] = site + a / 4 * direction
    out.append(out[0])
    out.positions[-1] = site - a / 4 * direction
    return out, name


def vacancy(calc_factory: CalcFactory, element: str, settings: Any) -> DefectResult:
    eq = equilibrium_for(calc_factory, element, settings)
    perfect = eq.supercell(settings.defect_atoms)
    n = len(perfect)
    perfect.calc = calc_factory()
    e_perfect = float(perfect.get_potential_energy())
    defective = perfect.copy()
    del defective[0]
    unrelaxed, energy, converged = _relaxed_energy(defective, calc_factory, settings)
    scale = (n - 1) / n
    return DefectResult("vacancy", "one atom removed", n, energy - scale * e_perfect,
                        unrelaxed - scale * e_perfect, converged)


def interstitial(calc_factory: CalcFactory, element: str, settings: Any) -> DefectResult:
    eq = equilibrium_for(calc_factory, element, settings)
    perfect = eq.supercell(settings.defect_atoms)
    n = len(perfect)
    perfect.calc = calc_factory()
    e_perfect = float(perfect.get_potential_energy())
    defective, name = dumbbell(perfect, eq.structure, eq.a)
    unrelaxed, energy, converged = _relaxed_energy(defective, calc_factory, settings)
    scale = (n + 1) / n
    return DefectResult("interstitial", name, n, energy - scale * e_perfect, unrelaxed - scale * e_perfect,
                        converged)
