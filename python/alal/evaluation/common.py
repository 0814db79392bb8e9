"""Shared pieces of the property calculations: the calculator factory, crystals at their own
equilibrium, relaxations and the base of the result dataclasses.

Every property is computed the same way on both sides of a comparison: a ``calc_factory`` (a
callable returning a fresh ASE calculator: the committee's or the oracle's) and the element. Each
side finds its own equilibrium (lattice constant, c/a), so that a model that gets the lattice
constant a little wrong is not also blamed for the strain that error would put on every other
property.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, reference_states
from ase.eos import EquationOfState
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from alal.builders import STRUCTURES, crystal
from alal.errors import InvalidInputError, NumericalError

__all__ = ["CalcFactory", "Equilibrium", "NotApplicableError", "Quantity", "Result", "energy_of",
           "equilibrium", "ground_structure", "isolated_atom", "primitive", "relax_positions"]

CalcFactory = Callable[[], Calculator]
"""A callable that returns a fresh ASE calculator (``EMT``, ``model.calculator``...)."""

EV_PER_A3_TO_GPA = 1.0 / units.GPa
EV_PER_A2_TO_J_PER_M2 = units._e * 1e20


class NotApplicableError(InvalidInputError):
    """A property that is not defined for this crystal structure (an fcc stacking fault in bcc)."""


class Quantity(NamedTuple):
    """One line of the comparison table: a label, its unit and the value of one side."""

    label: str
    unit: str
    value: float | None


class Result:
    """Base of the property results: dataclasses of JSON-friendly fields (numbers, lists, dicts),
    so that a result survives a round trip through ``eval.json``."""

    title: ClassVar[str] = ""

    def quantities(self) -> list[Quantity]:
        """The scalar values compared in the report's table."""
        return []

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


def ground_structure(element: str, structure: str | None) -> str:
    """``structure``, or the element's reference structure in ASE when it is one of
    :data:`alal.builders.STRUCTURES`."""
    if element not in atomic_numbers or element == "X":
        raise InvalidInputError(f"unknown element {element!r}")
    if structure is not None:
        if structure not in STRUCTURES:
            raise InvalidInputError(f"structure must be one of {STRUCTURES}, got {structure!r}")
        return structure
    found = (reference_states[atomic_numbers[element]] or {}).get("symmetry")
    if found not in STRUCTURES:
        raise InvalidInputError(f"{element}'s reference structure in ASE is {found!r}; choose one of "
                                f"{STRUCTURES} with the 'structure' setting")
    return str(found)


def primitive(element: str, structure: str, a: float, covera: float | None = None) -> Atoms:
    """The primitive cell (fcc, bcc, sc: 1 atom; diamond, hcp: 2) with lattice constant ``a`` Å."""
    if structure == "hcp":
        atoms = bulk(element, "hcp", a=a, covera=covera)
    else:
        atoms = bulk(element, structure, a=a)
    atoms.pbc = True
    return atoms


def energy_of(calc_factory: CalcFactory, atoms: Atoms) -> float:
    """Potential energy (eV) of a copy of ``atoms`` with a fresh calculator."""
    atoms = atoms.copy()
    atoms.calc = calc_factory()
    return float(atoms.get_potential_energy())


def relax_positions(atoms: Atoms, fmax: float, max_steps: int) -> bool:
    """Relax the atoms (the cell fixed) with BFGS until every force is below ``fmax`` eV/Å;
    ``atoms`` must carry its calculator. Returns whether it converged."""
    opt = BFGS(atoms, logfile=None, maxstep=0.1)
    return bool(opt.run(fmax=fmax, steps=max_steps))


def relax_cell(atoms: Atoms, fmax: float, max_steps: int, *, hydrostatic: bool) -> bool:
    """Relax atoms and cell (no shear; only its volume with ``hydrostatic``) to zero stress."""
    mask = None if hydrostatic else [1, 1, 1, 0, 0, 0]
    filtered = FrechetCellFilter(atoms, mask=mask, hydrostatic_strain=hydrostatic)
    opt = BFGS(filtered, logfile=None, maxstep=0.05)
    return bool(opt.run(fmax=fmax, steps=max_steps))


@dataclass(frozen=True)
class Equilibrium:
    """A crystal at the minimum of its E(V) curve under one calculator."""

    element: str
    structure: str
    a: float
    """Lattice constant, Å (hcp: the in-plane a)."""
    covera: float | None
    """c/a of hcp (relaxed), else ``None``."""
    volume_per_atom: float
    """Å³ (the fit's V0)."""
    energy_per_atom: float
    """eV, computed at ``a`` (not the fit's E0)."""
    bulk_modulus: float
    """GPa."""
    volumes: tuple[float, ...]
    """Sampled volumes per atom of the fit, Å³."""
    energies: tuple[float, ...]
    """Energies per atom at ``volumes``, eV."""
    fit_rms: float = 0.0
    """RMS residual of the fit, eV/atom: a smooth potential leaves µeV; a bumpy one, meV (its
    bulk modulus and elastic constants then measure different curvatures)."""

    def primitive(self) -> Atoms:
        return primitive(self.element, self.structure, self.a, self.covera)

    def supercell(self, n_atoms: int) -> Atoms:
        """A near-cubic repetition of the conventional cell with at most ``n_atoms`` atoms (see
        :func:`alal.builders.crystal`)."""
        return crystal(self.element, self.structure, a=self.a, covera=self.covera, n_atoms=n_atoms)

    def conventional(self) -> Atoms:
        """The conventional cell (cubic; hcp: orthorhombic, 4 atoms)."""
        return crystal(self.element, self.structure, a=self.a, covera=self.covera)


def _scaled(atoms: Atoms, factor: float) -> Atoms:
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell) * factor, scale_atoms=True)
    return out


def _coarse_minimum(calc_factory: CalcFactory, atoms: Atoms) -> float:
    """Scale factor of the lattice (≈ 1 near the guess) at the lowest energy of a coarse scan,
    refined by a parabola through the three lowest points; the scan moves when the lowest point
    is at an end."""
    lo, hi = 0.85, 1.15
    for _ in range(4):
        factors = np.linspace(lo, hi, 13)
        energies = np.array([energy_of(calc_factory, _scaled(atoms, f)) for f in factors])
        if not np.isfinite(energies).all():
            raise NumericalError("non-finite energy while scanning the lattice constant")
        k = int(np.argmin(energies))
        if 0 < k < len(factors) - 1:
            c2, c1, _ = np.polyfit(factors[k - 1:k + 2], energies[k - 1:k + 2], 2)
            return float(-c1 / (2 * c2)) if c2 > 0 else float(factors[k])
        shift = 0.25 if k else -0.25
        lo, hi = lo + shift, hi + shift
        if lo < 0.5:
            break
    raise NumericalError("no minimum of the energy in a scan of the lattice constant from 0.6 to 1.9 × "
                         "the reference value: the potential has no stable crystal there")


def equilibrium(calc_factory: CalcFactory, element: str, structure: str, *, points: int = 11,
                volume_range: float = 0.06, eos: str = "birchmurnaghan", fmax: float = 0.005,
                max_steps: int = 1000) -> Equilibrium:
    """``element`` in ``structure`` at the minimum of an equation-of-state fit.

    A coarse scan of the lattice constant (from ASE's reference value, or the one that keeps the
    reference volume per atom) finds the minimum; hcp then relaxes c/a (FrechetCellFilter, BFGS);
    ``points`` energies from ``(1 - volume_range) V`` to ``(1 + volume_range) V`` (the shape
    fixed) are fitted by ``eos`` (:class:`ase.eos.EquationOfState`).
    """
    guess = crystal(element, structure)
    a_c = float(guess.cell.lengths()[0])
    covera = float(guess.cell.lengths()[2] / a_c) if structure == "hcp" else None
    cell = primitive(element, structure, a_c, covera)
    n = len(cell)
    a_c *= _coarse_minimum(calc_factory, cell)
    cell = primitive(element, structure, a_c, covera)
    if structure == "hcp":
        cell.calc = calc_factory()
        relax_cell(cell, fmax, max_steps, hydrostatic=False)
        lengths = cell.cell.lengths()
        a_c, covera = float(lengths[0]), float(lengths[2] / lengths[0])
        cell = primitive(element, structure, a_c, covera)
    v_mid = cell.get_volume() / n
    volumes = v_mid * np.linspace(1 - volume_range, 1 + volume_range, points)
    energies = np.array([energy_of(calc_factory, _scaled(cell, (v / v_mid) ** (1 / 3))) / n for v in volumes])
    if not np.isfinite(energies).all():
        raise NumericalError(f"non-finite energy on the E(V) curve of {structure} {element}")
    fit = EquationOfState(volumes, energies, eos=eos)
    try:
        v0, _, b = fit.fit(warn=False)
    except (RuntimeError, ValueError) as err:
        raise NumericalError(f"the {eos} fit of {structure} {element} failed: {err}") from err
    if hasattr(fit, "eos_parameters"):
        fitted = fit.func(volumes, *fit.eos_parameters)
    else:  # 'sj': a cubic in V^(-1/3)
        fitted = fit.fit0(volumes ** (-1 / 3))
    rms = float(np.sqrt(np.mean((energies - fitted) ** 2)))
    if not volumes[0] <= v0 <= volumes[-1] or not b > 0:
        raise NumericalError(f"the {eos} fit of {structure} {element} puts V0 = {v0:.3f} Å³/atom outside "
                             f"the sampled {volumes[0]:.3f}–{volumes[-1]:.3f} (B = {b / units.GPa:.1f} GPa)")
    a0 = a_c * float(v0 / v_mid) ** (1 / 3)
    eq_cell = primitive(element, structure, a0, covera)
    return Equilibrium(element, structure, a0, covera, float(v0), energy_of(calc_factory, eq_cell) / n,
                       float(b * EV_PER_A3_TO_GPA), tuple(float(v) for v in volumes),
                       tuple(float(e) for e in energies), rms)


def equilibrium_for(calc_factory: CalcFactory, element: str, settings: Any, structure: str | None = None
                    ) -> Equilibrium:
    """:func:`equilibrium` with the EOS settings of an :class:`~alal.evaluation.EvalSettings`."""
    return equilibrium(calc_factory, element, structure or ground_structure(element, settings.structure),
                       points=settings.eos_points, volume_range=settings.eos_volume_range,
                       eos=settings.eos, fmax=settings.fmax, max_steps=settings.max_steps)


def isolated_atom(calc_factory: CalcFactory, element: str, box: float) -> tuple[float, float | None]:
    """Energy (eV) of one atom alone in a non-periodic ``box`` Å cube, and the committee's spread
    of it (eV) when the calculator reports ``energy_std``."""
    atoms = Atoms(element, positions=[[box / 2] * 3], cell=[box] * 3, pbc=False)
    atoms.calc = calc_factory()
    energy = float(atoms.get_potential_energy())
    std = atoms.calc.results.get("energy_std")
    return energy, None if std is None else float(std)


def committee_std(atoms: Atoms) -> float | None:
    """The committee's energy spread (eV) of the last calculation on ``atoms``, if any."""
    results = getattr(atoms.calc, "results", None) or {}
    value = results.get("energy_std")
    return None if value is None else float(value)
