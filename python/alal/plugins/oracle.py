"""The contract of an oracle (``alal.oracles`` entry points): labels a structure with energy (eV),
forces (eV/Å) and, for cells with a volume, stress (eV/Å³).

Failures follow one taxonomy: a structure refused before the calculation
(:class:`~alal.errors.UnphysicalStructureError`), a misconfigured oracle that can label nothing
(:class:`~alal.errors.OracleSetupError`: the run stops) and a calculation that failed on this
structure (:class:`~alal.errors.CalculationError`: recorded, maybe retried, the run goes on).
"""

from __future__ import annotations

import abc
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from alal.errors import CalculationError, InvalidInputError, OracleError, OracleSetupError
from alal.geometry import check_geometry
from alal.plugins.model import Labels

__all__ = ["AseCalculatorOracle", "Label", "Oracle"]


@dataclass(frozen=True)
class Label:
    """An oracle's answer for one structure."""

    labels: Labels
    seconds: float
    """Wall time of the calculation, s."""
    info: dict[str, Any] = field(default_factory=dict)
    """Anything the oracle wants to record (iterations, recipe used, ...), JSON-serialisable."""


class Oracle(abc.ABC):
    """Base class of oracles; subclasses take keyword-only constructor parameters.

    Args:
        min_distance: structures with two atoms closer than this (Å) are refused before the
            calculation.
    """

    name: ClassVar[str]

    def __init__(self, *, min_distance: float = 1.0) -> None:
        if not isinstance(min_distance, (int, float)) or isinstance(min_distance, bool) or min_distance < 0:
            raise InvalidInputError(f"min_distance must be a non-negative distance in Å, got {min_distance!r}")
        self.min_distance = float(min_distance)

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that changes the labels (functional, cutoffs, k-points...), JSON-serialisable:
        hashed into :attr:`settings_hash` and stored with every label."""

    @abc.abstractmethod
    def calculate(self, atoms: Atoms) -> Labels | tuple[Labels, dict[str, Any]]:
        """Label one (already checked) structure: its :class:`Labels`, or ``(labels, info)`` with
        anything JSON-serialisable to keep beside the label (the code's log, the recipe that
        converged...; it becomes :attr:`Label.info`). Raise :class:`CalculationError` when this
        calculation fails, :class:`OracleSetupError` when no calculation can succeed."""

    def check_setup(self) -> None:
        """Called once before a run: raise :class:`OracleSetupError` if the oracle cannot work
        (executable or data missing). The default does nothing."""

    def check_elements(self, symbols: list[str]) -> None:
        """Called once before a run with the run's elements: raise :class:`OracleSetupError` for
        elements the oracle cannot label (no parameters, no pseudopotential or PAW dataset). The
        default accepts every element."""

    def cost(self, atoms: Atoms) -> float:
        """Relative cost of labelling ``atoms`` (default ∝ N³, as for DFT)."""
        return float(len(atoms)) ** 3

    @property
    def settings_hash(self) -> str:
        """A short hash of :meth:`settings` and the oracle name."""
        blob = json.dumps({"oracle": self.name, **self.settings()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self, atoms: Atoms) -> Label:
        """Check the geometry, run the calculation and validate its output."""
        check_geometry(atoms, min_distance=self.min_distance)
        start = time.perf_counter()
        try:
            result = self.calculate(atoms.copy())
        except OracleError:
            raise
        except Exception as err:  # noqa: BLE001 - a calculator may fail in any way
            raise CalculationError(f"{self.name} failed on {atoms.get_chemical_formula()}: "
                                   f"{type(err).__name__}: {err}") from err
        seconds = time.perf_counter() - start
        labels, info = result if isinstance(result, tuple) else (result, {})
        n = len(atoms)
        if labels.forces.shape != (n, 3):
            raise OracleSetupError(f"{self.name} returned forces of shape {labels.forces.shape} for {n} atoms")
        finite = np.isfinite(labels.energy) and np.isfinite(labels.forces).all() and (
            labels.stress is None or np.isfinite(labels.stress).all())
        if not finite:
            raise CalculationError(f"{self.name} returned non-finite labels for {atoms.get_chemical_formula()}")
        return Label(labels, seconds, dict(info))


class AseCalculatorOracle(Oracle):
    """Any ASE calculator as an oracle: ``make_calculator()`` gives a fresh calculator per
    structure; stress is requested for 3-D periodic cells when ``stress`` is true."""

    name = "ase"

    def __init__(self, *, make_calculator: Callable[[], Calculator], stress: bool = True,
                 min_distance: float = 1.0, settings: dict[str, Any] | None = None) -> None:
        super().__init__(min_distance=min_distance)
        if not callable(make_calculator):
            raise InvalidInputError("make_calculator must be a callable returning an ASE calculator")
        self.make_calculator = make_calculator
        self.stress = bool(stress)
        self._settings = dict(settings or {})

    def settings(self) -> dict[str, Any]:
        return {"stress": self.stress, **self._settings}

    def calculate(self, atoms: Atoms) -> Labels:
        atoms.calc = self.make_calculator()
        energy = float(atoms.get_potential_energy())
        forces = np.array(atoms.get_forces(), dtype=np.float64)
        stress = None
        if self.stress and atoms.pbc.all():
            stress = np.array(atoms.get_stress(voigt=True), dtype=np.float64)
        return Labels(energy, forces, stress)
