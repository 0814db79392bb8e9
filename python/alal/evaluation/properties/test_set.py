"""Errors on an independent labelled test set, and the calibration of the committee's spread.

Errors of the calculator against the labels: energy per atom (RMSE and MAE, meV/atom), force
components (RMSE and MAE, eV/Å), stress components (RMSE, GPa; structures whose label has a
stress). With a committee (a calculator reporting ``forces_std``) also the calibration curve: the
fraction of force components whose error lies within ``k σ`` (σ the atom's calibrated spread)
for ``k`` from 0 to 4, next to the Gaussian expectation ``erf(k/√2)`` (68.3 % at 1σ, 95.4 % at
2σ), and the RMS of the error over σ (1 for a perfectly calibrated Gaussian spread).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from ase import Atoms

from alal.errors import InvalidInputError
from alal.evaluation.common import EV_PER_A3_TO_GPA, CalcFactory, Quantity, Result
from alal.plugins.model import labels_of

__all__ = ["K_GRID", "TestSetResult", "calibration_curve", "compute"]

K_GRID = np.round(np.linspace(0.0, 4.0, 81), 6)


@dataclass
class TestSetResult(Result):
    title: ClassVar[str] = "Test-set errors"

    source: str
    n_structures: int
    n_atoms: int
    energy_rmse_meV_atom: float
    energy_mae_meV_atom: float
    force_rmse_eV_A: float
    force_mae_eV_A: float
    stress_rmse_GPa: float | None
    energy_ref_eV_atom: list[float]
    energy_pred_eV_atom: list[float]
    force_ref_eV_A: list[float]
    """Force components, flattened, eV/Å."""
    force_pred_eV_A: list[float]
    stress_ref_GPa: list[float]
    stress_pred_GPa: list[float]
    calibration_k: list[float] | None = None
    calibration_fraction: list[float] | None = None
    """Fraction of force components with ``|error| <= k σ`` at each ``calibration_k``."""
    coverage_1sigma: float | None = None
    coverage_2sigma: float | None = None
    z_rms: float | None = None
    """RMS of force error / σ over components."""

    def quantities(self) -> list[Quantity]:
        out = [Quantity("energy RMSE", "meV/atom", self.energy_rmse_meV_atom),
               Quantity("energy MAE", "meV/atom", self.energy_mae_meV_atom),
               Quantity("force RMSE", "eV/Å", self.force_rmse_eV_A),
               Quantity("force MAE", "eV/Å", self.force_mae_eV_A)]
        if self.stress_rmse_GPa is not None:
            out.append(Quantity("stress RMSE", "GPa", self.stress_rmse_GPa))
        if self.coverage_1sigma is not None:
            out += [Quantity("force errors within 1σ (Gaussian 68.3 %)", "%", 100 * self.coverage_1sigma),
                    Quantity("force errors within 2σ (Gaussian 95.4 %)", "%", 100 * float(self.coverage_2sigma or 0)),
                    Quantity("RMS of force error / σ (ideal 1)", "", self.z_rms)]
        return out


def gaussian_fraction(k: Sequence[float]) -> np.ndarray:
    """Probability that a Gaussian variable lies within ``k`` standard deviations."""
    return np.array([math.erf(float(x) / math.sqrt(2)) for x in k])


def calibration_curve(errors: np.ndarray, sigma: np.ndarray, k: np.ndarray = K_GRID) -> np.ndarray:
    """Fraction of ``|errors| <= k · sigma`` for each ``k`` (errors and sigma of one shape)."""
    z = np.abs(errors) / np.maximum(sigma, 1e-12)
    return np.array([float(np.mean(z <= x)) for x in k])


def compute(calc_factory: CalcFactory, element: str, settings: Any, frames: Sequence[Atoms],
            source: str = "") -> TestSetResult:
    """Errors of ``calc_factory``'s calculator on labelled ``frames`` (``element`` unused: the
    frames say what they hold)."""
    if not frames:
        raise InvalidInputError("the test set is empty")
    e_ref, e_pred, f_ref, f_pred, s_ref, s_pred, f_err, f_std = [], [], [], [], [], [], [], []
    with_std = True
    for k, frame in enumerate(frames):
        labels = labels_of(frame, f"test structure {k}")
        atoms = Atoms(frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
        calc = calc_factory()
        atoms.calc = calc
        wants_std = "forces_std" in getattr(calc, "implemented_properties", ())
        if wants_std:
            std = np.asarray(calc.get_property("forces_std", atoms))
        n = len(atoms)
        energy = float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces())
        e_ref.append(labels.energy / n)
        e_pred.append(energy / n)
        f_ref.append(labels.forces.ravel())
        f_pred.append(forces.ravel())
        if labels.stress is not None and atoms.pbc.all():
            s_ref.append(labels.stress * EV_PER_A3_TO_GPA)
            s_pred.append(np.asarray(atoms.get_stress(voigt=True)) * EV_PER_A3_TO_GPA)
        if wants_std:
            f_err.append((forces - labels.forces).ravel())
            f_std.append(np.repeat(std, 3))
        else:
            with_std = False
    de = 1e3 * (np.array(e_pred) - np.array(e_ref))
    fr, fp = np.concatenate(f_ref), np.concatenate(f_pred)
    sr = np.concatenate(s_ref) if s_ref else np.zeros(0)
    sp = np.concatenate(s_pred) if s_pred else np.zeros(0)
    result = TestSetResult(
        source, len(frames), int(sum(len(f) for f in frames)), float(np.sqrt(np.mean(de**2))),
        float(np.mean(np.abs(de))), float(np.sqrt(np.mean((fp - fr) ** 2))), float(np.mean(np.abs(fp - fr))),
        float(np.sqrt(np.mean((sp - sr) ** 2))) if sr.size else None, list(map(float, e_ref)),
        list(map(float, e_pred)), fr.tolist(), fp.tolist(), sr.tolist(), sp.tolist())
    if with_std and f_err:
        err, sigma = np.concatenate(f_err), np.concatenate(f_std)
        curve = calibration_curve(err, sigma)
        result.calibration_k = K_GRID.tolist()
        result.calibration_fraction = curve.tolist()
        result.coverage_1sigma = float(calibration_curve(err, sigma, np.array([1.0]))[0])
        result.coverage_2sigma = float(calibration_curve(err, sigma, np.array([2.0]))[0])
        result.z_rms = float(np.sqrt(np.mean((err / np.maximum(sigma, 1e-12)) ** 2)))
    return result
