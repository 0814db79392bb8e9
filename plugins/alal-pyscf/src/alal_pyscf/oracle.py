"""The ``pyscf`` oracle: Kohn–Sham DFT with PySCF, periodic (Gaussian basis, GTH pseudopotentials,
k-points, FFT density fitting) or molecular (all-electron, for clusters without periodicity).

Each label runs in a child process (see :mod:`alal.plugins.child_process`): the thread counts are set before
PySCF is imported, ``max_seconds`` holds wherever the task runs, and a crash fails one label only.
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

__all__ = ["KPOINT_RULE", "PyscfOracle", "kpoint_mesh"]

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


def _name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty name, got {value!r}")
    return value


class PyscfOracle(Oracle):
    """PySCF Kohn–Sham DFT as an oracle.

    Periodic cells (any axis periodic): ``pyscf.pbc.dft.KRKS`` (``KUKS`` with ``spin``) on a
    Γ-centred k-mesh, GTH basis and pseudopotentials, FFT density fitting (``FFTDF``: analytic
    forces and stress), Fermi–Dirac smearing; the energy label is the free energy E − σS, whose
    derivatives the forces and stress are. Stress for 3-D periodic cells only.
    Molecules (no axis periodic): ``pyscf.dft.RKS`` (``UKS`` with ``spin`` or an odd electron
    count, lowest multiplicity), all-electron ``molecular_basis``, integer occupations (PySCF has no
    forces with smearing for molecules).

    Args:
        xc: exchange–correlation functional (libxc name), e.g. ``"pbe"``, ``"lda,vwn"``.
        basis: Gaussian basis of periodic cells, e.g. ``"gth-szv"`` (fast, rough) or ``"gth-dzvp"``.
        pseudo: GTH pseudopotentials of periodic cells, ``"gth-pbe"`` (for PBE) or ``"gth-pade"`` (LDA).
        cutoff: kinetic-energy cutoff of the FFT mesh of periodic cells, eV (PySCF's ``ke_cutoff``
            is this / 27.211 Hartree).
        kpoint_density: k-points per Å⁻¹ of reciprocal length (ASE's ``kptdensity``); every cell
            gets the Γ-centred mesh of :func:`kpoint_mesh`. PySCF does not reduce the mesh by
            symmetry: the cost grows with every k-point.
        smearing: Fermi–Dirac width of periodic cells, eV (0: integer occupations).
        molecular_basis: all-electron basis of molecules, e.g. ``"def2-svp"``.
        spin: spin-unrestricted (from a spin-broken initial guess) instead of restricted.
        energy_tolerance: SCF convergence on the energy, eV (PySCF's ``conv_tol``; its gradient
            criterion is the square root of that in Hartree).
        max_cycles: SCF cycles of the first recipe (the safer recipes allow 2x).
        retries: safer recipes tried after an SCF failure (0–2): damped mixing, then a start at 4x
            the smearing width (molecules: second-order SCF); then the structure fails with the
            reason.
        threads: threads of the numerical libraries per label (OMP/OpenBLAS/MKL).
        max_seconds: wall-time limit of one label, s (all recipes together); past it the
            calculation is killed and fails with the reason.
        min_distance: structures with atoms closer than this (Å) are refused before PySCF runs.
    """

    name = "pyscf"

    def __init__(self, *, xc: str = "pbe", basis: str = "gth-dzvp", pseudo: str = "gth-pbe",
                 cutoff: float = 600.0, kpoint_density: float = 1.0, smearing: float = 0.1,
                 molecular_basis: str = "def2-svp", spin: bool = False, energy_tolerance: float = 1e-7,
                 max_cycles: int = 100, retries: int = 2, threads: int = 1, max_seconds: float = 3600.0,
                 min_distance: float = 1.0) -> None:
        super().__init__(min_distance=min_distance)
        self.xc = _name("xc", xc)
        self.basis = _name("basis", basis)
        self.pseudo = _name("pseudo", pseudo)
        self.cutoff = _number("cutoff", cutoff, "eV", minimum=50.0, strict=False)
        self.kpoint_density = _number("kpoint_density", kpoint_density, "k-points per 1/Å")
        self.smearing = _number("smearing", smearing, "eV", strict=False)
        self.molecular_basis = _name("molecular_basis", molecular_basis)
        if not isinstance(spin, bool):
            raise InvalidInputError(f"spin must be true or false, got {spin!r}")
        self.spin = spin
        self.energy_tolerance = _number("energy_tolerance", energy_tolerance, "eV")
        self.max_cycles = _integer("max_cycles", max_cycles, 1)
        self.retries = _integer("retries", retries, 0, 2)
        self.threads = _integer("threads", threads, 1)
        self.max_seconds = _number("max_seconds", max_seconds, "s")

    def settings(self) -> dict[str, Any]:
        return {
            "code": "pyscf", "xc": self.xc, "spin": "unrestricted" if self.spin else "restricted",
            "convergence": {"energy_eV": self.energy_tolerance},
            "periodic": {"method": "KUKS" if self.spin else "KRKS", "density_fitting": "FFTDF",
                         "basis": self.basis, "pseudo": self.pseudo, "cutoff_eV": self.cutoff,
                         "kpoints": {"rule": KPOINT_RULE, "density_per_inv_A": self.kpoint_density},
                         "occupations": {"name": "fermi-dirac", "width_eV": self.smearing},
                         "energy": "free energy E - sigma*S (forces and stress are its derivatives)",
                         "stress": "3-D periodic cells only"},
            "molecular": {"method": "UKS" if self.spin else "RKS (UKS for odd electron counts)",
                          "basis": self.molecular_basis, "occupations": "integer", "energy": "total energy"},
        }

    def _params(self) -> dict[str, Any]:
        return {"xc": self.xc, "basis": self.basis, "pseudo": self.pseudo, "cutoff": self.cutoff,
                "smearing": self.smearing, "molecular_basis": self.molecular_basis, "spin": self.spin,
                "energy_tolerance": self.energy_tolerance, "max_cycles": self.max_cycles,
                "retries": self.retries}

    def _run(self, request: dict[str, Any], max_seconds: float) -> dict[str, Any]:
        return run_child("alal_pyscf._worker", request, code="pyscf", threads=self.threads,
                         max_seconds=max_seconds)

    def check_elements(self, symbols: list[str]) -> None:
        """Raise :class:`OracleSetupError` if PySCF cannot run, does not know ``xc``, or lacks the
        basis, pseudopotential or molecular basis for one of ``symbols`` (named in the message)."""
        try:
            self._run({"check": True, "params": self._params(), "elements": sorted(set(symbols))},
                      max(self.max_seconds, 120.0))
        except CalculationError as err:
            raise OracleSetupError(f"PySCF cannot start: {err}") from err

    def check_setup(self) -> None:
        """PySCF imports and knows the functional, the basis sets and the pseudopotentials (probed
        on hydrogen, which every GTH and molecular basis family covers; ``check_elements`` for
        given elements)."""
        self.check_elements(["H"])

    def calculate(self, atoms: Atoms) -> tuple[Labels, dict[str, Any]]:
        """The labels, and PySCF's record for ``Label.info``: ``mode``, ``method``,
        ``kpts`` and ``mesh`` (periodic), ``energy_free`` (the label), ``energy_internal`` and
        ``energy_zero_width`` (smeared cells), ``recipe``, ``attempts``, ``scf_iterations``,
        ``pyscf_version`` and ``log`` (PySCF's text output)."""
        periodic = bool(atoms.pbc.any())
        kpts = kpoint_mesh(atoms, self.kpoint_density) if periodic else (1, 1, 1)
        request = {"params": self._params(), "periodic": periodic, "kpts": list(kpts),
                   "stress": bool(atoms.pbc.all()),
                   "atoms": {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
                             "cell": np.asarray(atoms.cell).tolist()}}
        where = f"pyscf on {atoms.get_chemical_formula()}" + (
            f" (k-points {kpts[0]}x{kpts[1]}x{kpts[2]})" if periodic else " (molecule)")
        try:
            result = self._run(request, self.max_seconds)
        except CalculationError as err:
            raise CalculationError(f"{where}: {err}") from err
        except OracleSetupError as err:
            raise OracleSetupError(f"pyscf: {err}") from err
        labels = Labels(float(result["energy"]), np.array(result["forces"], dtype=np.float64).reshape(len(atoms), 3),
                        None if result["stress"] is None else np.array(result["stress"], dtype=np.float64))
        return labels, result["info"]
