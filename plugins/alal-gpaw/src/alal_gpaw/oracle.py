"""The ``gpaw`` oracle: plane-wave PAW DFT with GPAW (PBE by default).

Each label runs in a child process (see :mod:`alal.plugins.child_process`): the thread counts are set before
GPAW is imported, ``max_seconds`` holds wherever the task runs, and a crash fails one label only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ase import Atoms

from alal.errors import CalculationError, InvalidInputError, OracleSetupError
from alal.plugins import Labels, Oracle
from alal.plugins.child_process import run_child
from alal.plugins.kpoints import KPOINT_RULE, kpoint_mesh

__all__ = ["KPOINT_RULE", "GpawOracle", "kpoint_mesh"]

XC = ("PBE", "LDA", "RPBE", "revPBE")
"""Functionals with their own PAW datasets in gpaw-data."""

def _number(name: str, value: Any, unit: str, *, minimum: float = 0.0, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
            value <= minimum if strict else value < minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise InvalidInputError(f"{name} must be a number {bound}{' ' + unit if unit else ''}, got {value!r}")
    return float(value)


def _integer(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        span = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise InvalidInputError(f"{name} must be an integer {span}, got {value!r}")
    return value


class GpawOracle(Oracle):
    """GPAW in plane-wave mode as an oracle: energy (the Fermi–Dirac free energy, whose derivatives
    the forces and stress are), forces, and stress for 3-D periodic cells.

    Args:
        cutoff: plane-wave cutoff, eV.
        xc: exchange–correlation functional with its own PAW datasets: PBE, LDA, RPBE or revPBE.
        kpoint_density: k-points per Å⁻¹ of reciprocal length (ASE's ``kptdensity``); every cell
            gets the Γ-centred mesh of :func:`kpoint_mesh` (spacing ≤ 1/density Å⁻¹, 2π included).
        smearing: Fermi–Dirac width, eV.
        spin: spin-polarised (initial moments by Hund's rule) instead of spin-paired.
        force_tolerance: SCF convergence on the change of the forces, eV/Å (GPAW's other criteria
            alone leave forces unconverged).
        energy_tolerance: SCF convergence on the energy, eV per valence electron.
        density_tolerance: SCF convergence on the density change, electrons per valence electron.
        maxiter: SCF iterations of the first recipe (the safer recipes allow 2x and 3x).
        retries: safer recipes tried after an SCF failure (0–2): damped Pulay mixing, then stronger
            damping with 1.5x the bands; then the structure fails with the reason.
        threads: threads of the numerical libraries per label (OMP/OpenBLAS/MKL).
        max_seconds: wall-time limit of one label, s (all recipes together); past it the
            calculation is killed and fails with the reason.
        min_distance: structures with atoms closer than this (Å) are refused before GPAW runs.
    """

    name = "gpaw"

    def __init__(self, *, cutoff: float = 300.0, xc: str = "PBE", kpoint_density: float = 3.5,
                 smearing: float = 0.1, spin: bool = False, force_tolerance: float = 1e-4,
                 energy_tolerance: float = 5e-4, density_tolerance: float = 1e-4, maxiter: int = 200,
                 retries: int = 2, threads: int = 1, max_seconds: float = 3600.0,
                 min_distance: float = 1.0) -> None:
        super().__init__(min_distance=min_distance)
        self.cutoff = _number("cutoff", cutoff, "eV", minimum=50.0, strict=False)
        if xc not in XC:
            raise InvalidInputError(f"xc must be one of {', '.join(XC)} (functionals with PAW datasets), got {xc!r}")
        self.xc = xc
        self.kpoint_density = _number("kpoint_density", kpoint_density, "k-points per 1/Å")
        self.smearing = _number("smearing", smearing, "eV")
        if not isinstance(spin, bool):
            raise InvalidInputError(f"spin must be true or false, got {spin!r}")
        self.spin = spin
        self.force_tolerance = _number("force_tolerance", force_tolerance, "eV/Å")
        self.energy_tolerance = _number("energy_tolerance", energy_tolerance, "eV per electron")
        self.density_tolerance = _number("density_tolerance", density_tolerance, "electrons per electron")
        self.maxiter = _integer("maxiter", maxiter, 1)
        self.retries = _integer("retries", retries, 0, 2)
        self.threads = _integer("threads", threads, 1)
        self.max_seconds = _number("max_seconds", max_seconds, "s")

    def settings(self) -> dict[str, Any]:
        return {
            "code": "gpaw", "mode": "plane waves", "setups": "PAW", "cutoff_eV": self.cutoff, "xc": self.xc,
            "kpoints": {"rule": KPOINT_RULE, "density_per_inv_A": self.kpoint_density},
            "occupations": {"name": "fermi-dirac", "width_eV": self.smearing}, "spin": self.spin,
            "convergence": {"forces_eV_per_A": self.force_tolerance, "energy_eV_per_electron": self.energy_tolerance,
                            "density": self.density_tolerance},
            "energy": "free energy (forces and stress are its derivatives)",
            "stress": "3-D periodic cells only",
        }

    def _params(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff, "xc": self.xc, "smearing": self.smearing, "spin": self.spin,
                "force_tolerance": self.force_tolerance, "energy_tolerance": self.energy_tolerance,
                "density_tolerance": self.density_tolerance, "maxiter": self.maxiter, "retries": self.retries}

    def _run(self, request: dict[str, Any], max_seconds: float) -> dict[str, Any]:
        return run_child("alal_gpaw._worker", request, code="gpaw", threads=self.threads,
                         max_seconds=max_seconds)

    def check_elements(self, symbols: list[str]) -> None:
        """Raise :class:`OracleSetupError` if GPAW cannot run or lacks a PAW dataset for one of
        ``symbols`` (the message names them and where GPAW looked)."""
        try:
            self._run({"check": True, "xc": self.xc, "elements": sorted(set(symbols))}, max(self.max_seconds, 120.0))
        except CalculationError as err:
            raise OracleSetupError(f"GPAW cannot start: {err}") from err

    def check_setup(self) -> None:
        """GPAW imports and finds PAW datasets of the functional (``check_elements`` for given
        elements)."""
        self.check_elements([])

    def calculate(self, atoms: Atoms) -> tuple[Labels, dict[str, Any]]:
        """The labels, and GPAW's record for ``Label.info``: ``energy_free`` (the
        energy label), ``energy_extrapolated`` (to zero width), ``kpts``, ``recipe``, ``attempts``,
        ``scf_iterations``, ``gpaw_version`` and ``log`` (GPAW's text output)."""
        kpts = kpoint_mesh(atoms, self.kpoint_density)
        stress = bool(atoms.pbc.all())
        request = {"params": self._params(), "kpts": list(kpts), "stress": stress,
                   "atoms": {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
                             "cell": np.asarray(atoms.cell).tolist(), "pbc": atoms.pbc.tolist()}}
        formula = atoms.get_chemical_formula()
        try:
            result = self._run(request, self.max_seconds)
        except CalculationError as err:
            raise CalculationError(f"gpaw on {formula} (k-points {kpts[0]}x{kpts[1]}x{kpts[2]}): {err}") from err
        except OracleSetupError as err:
            raise OracleSetupError(f"gpaw: {err}") from err
        labels = Labels(float(result["energy"]), np.array(result["forces"], dtype=np.float64).reshape(len(atoms), 3),
                        None if result["stress"] is None else np.array(result["stress"], dtype=np.float64))
        return labels, result["info"]
