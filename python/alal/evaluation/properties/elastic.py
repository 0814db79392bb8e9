"""Elastic constants from the stress of finitely strained cells (GPa).

The conventional cell at the calculator's own equilibrium is strained by ``±elastic_strain`` along
each of the six Voigt components (engineering shears: ε₄ = 2ε_yz...), and the 6×6 stiffness matrix
is the central difference ``C_ij = (σ_i(+ε_j) − σ_i(−ε_j)) / (2ε)`` of ASE's stress (positive in
tension). The atoms of a strained cell are relaxed (BFGS, ``fmax``) when
``elastic_relax_internal`` is true, or when it is ``None`` and a strained cell has a force above
``fmax`` (diamond under shear; never fcc, bcc, sc, whose atoms sit at centres of symmetry).

Reported: cubic crystals C11, C12, C44 (each the mean of its three symmetric entries) and the bulk
modulus (C11 + 2 C12)/3, which should match the equation of state's unless the potential is bumpy
on the scale of the strain; hcp C11, C12, C13, C33, C44 (z along c).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from ase import Atoms

from alal.evaluation.common import (EV_PER_A3_TO_GPA, CalcFactory, Quantity, Result, equilibrium_for,
                                    relax_positions)

__all__ = ["ElasticResult", "compute", "strain_matrix"]


@dataclass
class ElasticResult(Result):
    title: ClassVar[str] = "Elastic constants"

    structure: str
    constants_GPa: dict[str, float]
    """Named constants (C11, C12, C44; hcp also C13, C33), GPa."""
    matrix_GPa: list[list[float]]
    """The full 6×6 stiffness matrix in Voigt order (xx, yy, zz, yz, xz, xy), GPa."""
    strain: float
    relaxed_internal: bool

    def quantities(self) -> list[Quantity]:
        out = [Quantity(name, "GPa", value) for name, value in self.constants_GPa.items()]
        if self.structure != "hcp":  # cubic: compare with the equation of state's B
            c = self.constants_GPa
            out.append(Quantity("bulk modulus (C11 + 2 C12)/3", "GPa", (c["C11"] + 2 * c["C12"]) / 3))
        return out


def strain_matrix(voigt: np.ndarray) -> np.ndarray:
    """The symmetric strain tensor of a Voigt strain vector with engineering shears."""
    e = np.asarray(voigt, dtype=float)
    return np.array([[e[0], e[5] / 2, e[4] / 2],
                     [e[5] / 2, e[1], e[3] / 2],
                     [e[4] / 2, e[3] / 2, e[2]]])


def _strained_stress(atoms: Atoms, calc_factory: CalcFactory, voigt: np.ndarray, relax: bool | None,
                     fmax: float, max_steps: int) -> tuple[np.ndarray, bool]:
    strained = atoms.copy()
    strained.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + strain_matrix(voigt)).T, scale_atoms=True)
    strained.calc = calc_factory()
    relaxed = False
    if relax or (relax is None and np.abs(strained.get_forces()).max() > fmax):
        relax_positions(strained, fmax / 5, max_steps)
        relaxed = True
    return np.asarray(strained.get_stress(voigt=True)), relaxed


def stiffness(atoms: Atoms, calc_factory: CalcFactory, strain: float, *, relax: bool | None = None,
              fmax: float = 0.005, max_steps: int = 1000) -> tuple[np.ndarray, bool]:
    """The 6×6 stiffness matrix (eV/Å³) of ``atoms`` by central differences of the stress, and
    whether any strained cell was relaxed."""
    c = np.zeros((6, 6))
    any_relaxed = False
    for j in range(6):
        e = np.zeros(6)
        e[j] = strain
        plus, r1 = _strained_stress(atoms, calc_factory, e, relax, fmax, max_steps)
        minus, r2 = _strained_stress(atoms, calc_factory, -e, relax, fmax, max_steps)
        c[:, j] = (plus - minus) / (2 * strain)
        any_relaxed |= r1 or r2
    return c, any_relaxed


def named_constants(c: np.ndarray, structure: str) -> dict[str, float]:
    """The independent constants of a cubic or hexagonal stiffness matrix (averaged over the
    entries symmetry makes equal)."""
    if structure == "hcp":
        return {"C11": float((c[0, 0] + c[1, 1]) / 2), "C12": float((c[0, 1] + c[1, 0]) / 2),
                "C13": float(np.mean([c[0, 2], c[1, 2], c[2, 0], c[2, 1]])), "C33": float(c[2, 2]),
                "C44": float((c[3, 3] + c[4, 4]) / 2)}
    off = [c[0, 1], c[0, 2], c[1, 2], c[1, 0], c[2, 0], c[2, 1]]
    return {"C11": float(np.mean(np.diag(c)[:3])), "C12": float(np.mean(off)),
            "C44": float(np.mean(np.diag(c)[3:]))}


def compute(calc_factory: CalcFactory, element: str, settings: Any) -> ElasticResult:
    eq = equilibrium_for(calc_factory, element, settings)
    c, relaxed = stiffness(eq.conventional(), calc_factory, settings.elastic_strain,
                           relax=settings.elastic_relax_internal, fmax=settings.fmax,
                           max_steps=settings.max_steps)
    c_gpa = c * EV_PER_A3_TO_GPA
    return ElasticResult(eq.structure, named_constants(c_gpa, eq.structure), c_gpa.tolist(),
                         settings.elastic_strain, relaxed)
