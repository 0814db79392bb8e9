"""Settings of ``alal eval``: every size, length and tolerance of the property calculations.

The defaults follow the validation protocol of the project's issue 6 (500-atom NVE cell at 600 K,
a 20 ps run at 2000 K, a liquid at 1200 K, 256-atom defect cells...); :data:`QUICK` shrinks every
costly part for smoke tests. Lengths in Å, energies in eV, times in ps or fs as the names say,
temperatures in K.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from alal.errors import InvalidInputError

__all__ = ["PROPERTY_NAMES", "QUICK", "EvalSettings", "parse_assignment"]

PROPERTY_NAMES = ("eos", "elastic", "vacancy", "interstitial", "surfaces", "stacking_fault", "phases", "phonons",
                  "liquid", "stability", "test_set")
"""The selectable property groups, in report order (see :data:`alal.evaluation.runner.PROPERTIES`)."""


@dataclass(frozen=True)
class EvalSettings:
    """Everything that changes the numbers of an evaluation (both sides use the same settings)."""

    structure: str | None = None
    """Ground-state crystal structure (fcc, bcc, hcp, sc, diamond); ``None``: the element's
    reference structure in ASE (fcc for Al)."""
    seed: int = 0
    """Seeds every random draw (velocities, liquid box, Langevin noise)."""
    fmax: float = 0.005
    """Force tolerance of every relaxation, eV/Å (and stress × volume for cell relaxations)."""
    max_steps: int = 1000
    """Optimiser steps before a relaxation is reported as not converged."""

    # equation of state
    eos: str = "birchmurnaghan"
    """Fit of :class:`ase.eos.EquationOfState`."""
    eos_points: int = 11
    eos_volume_range: float = 0.06
    """Volumes from ``(1 - x) V0`` to ``(1 + x) V0`` around the coarse minimum."""
    isolated_atom_box: float = 20.0
    """Edge of the non-periodic box of the isolated atom, Å."""

    # elastic constants
    elastic_strain: float = 0.005
    """Magnitude of the ± Voigt strains of the central differences."""
    elastic_relax_internal: bool | None = None
    """Relax the atoms in every strained cell: ``None`` does so when a strained cell has a force
    above ``fmax`` (never for fcc/bcc/sc, whose atoms stay at symmetric sites)."""

    # point defects
    defect_atoms: int = 256
    """Size of the perfect supercell (the most atoms not above this in a near-cubic repetition)."""

    # surfaces and stacking fault
    surface_facets: tuple[str, ...] | None = None
    """``None``: (100), (110), (111) for fcc and bcc, (0001) and (10-10) for hcp."""
    slab_layers: int = 9
    slab_size: tuple[int, int] = (2, 2)
    slab_vacuum: float = 8.0
    """Vacuum on each side of a slab, Å."""
    stacking_fault_layers: int = 12
    """(111) layers of the periodic cell that holds one intrinsic stacking fault."""

    # phonons
    phonon_supercell: int = 4
    """Repetitions of the primitive cell along each axis (even: exact at X and L of fcc)."""
    phonon_delta: float = 0.01
    """Finite displacement, Å."""
    phonon_path: str | None = None
    """Band path for the plot; ``None``: ASE's default for the lattice."""
    phonon_npoints: int = 120
    phonon_points: tuple[str, ...] | None = None
    """Special points whose frequencies are tabulated; ``None``: Γ, X, L (fcc, diamond),
    Γ, H, N, P (bcc), Γ, X, M, R (sc), Γ, M, K, A (hcp)."""

    # liquid
    liquid_temperature_K: float = 1200.0
    liquid_atoms: int = 256
    liquid_volume_per_atom: float | None = None
    """Å³; ``None``: 1.15 × the volume per atom of ASE's reference crystal (the same for both
    sides, so that the two liquids are compared at one density)."""
    liquid_equilibration_ps: float = 3.0
    liquid_sampling_ps: float = 5.0
    liquid_timestep_fs: float = 2.0
    liquid_sample_interval: int = 10
    """MD steps between RDF frames."""
    rdf_r_max: float = 8.0
    """Å; lowered to half the smallest cell height when the box is smaller."""
    rdf_bins: int = 160

    # stability
    nve_atoms: int = 500
    nve_temperature_K: float = 600.0
    """Target temperature: velocities are drawn at twice this, half goes into the potential energy."""
    nve_ps: float = 2.0
    nve_timestep_fs: float = 1.0
    nve_interval: int = 10
    """MD steps between energy samples."""
    hot_temperature_K: float = 2000.0
    hot_atoms: int = 108
    hot_ps: float = 20.0
    hot_timestep_fs: float = 2.0
    hot_check_interval: int = 10
    """MD steps between minimum-distance checks."""
    min_distance: float = 1.5
    """Å: a hot run with two atoms closer than this has collapsed (and stops)."""
    friction_per_fs: float = 0.01
    """Langevin friction, fs⁻¹."""

    # test set
    test_set: str | None = None
    """A labelled file (extxyz, ASE db; anything ``ase.io.read`` reads); ``None``: a fresh set
    (``emt_aluminium`` for EMT and Al, else structures drawn by the run's builders, labelled)."""
    test_set_size: int = 50
    test_set_seed: int = 9001
    """Different from every seed the loop uses, so the set is independent of the training data."""
    test_set_sizes: tuple[int, int] = (32, 108)
    """Atom counts of the fresh test structures."""

    def __post_init__(self) -> None:
        positive_int = ("max_steps", "eos_points", "defect_atoms", "slab_layers", "stacking_fault_layers",
                        "phonon_supercell", "phonon_npoints", "liquid_atoms", "liquid_sample_interval",
                        "rdf_bins", "nve_atoms", "nve_interval", "hot_atoms", "hot_check_interval",
                        "test_set_size")
        for name in positive_int:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        positive = ("fmax", "eos_volume_range", "isolated_atom_box", "elastic_strain", "slab_vacuum",
                    "phonon_delta", "liquid_temperature_K", "liquid_timestep_fs", "rdf_r_max",
                    "nve_temperature_K", "nve_timestep_fs", "hot_temperature_K", "hot_timestep_fs",
                    "min_distance", "friction_per_fs")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidInputError(f"{name} must be a positive number, got {value!r}")
        for name in ("liquid_equilibration_ps", "liquid_sampling_ps", "nve_ps", "hot_ps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidInputError(f"{name} must be a non-negative time in ps, got {value!r}")
        if self.eos_points < 5:
            raise InvalidInputError(f"eos_points must be at least 5 for a 4-parameter fit, got {self.eos_points}")
        if self.eos_volume_range > 0.3 or self.elastic_strain > 0.05:
            raise InvalidInputError("eos_volume_range <= 0.3 and elastic_strain <= 0.05 keep the fits harmonic")
        if self.test_set_sizes[0] > self.test_set_sizes[1] or self.test_set_sizes[0] < 1:
            raise InvalidInputError(f"test_set_sizes must be (min, max) with 1 <= min <= max, "
                                    f"got {self.test_set_sizes}")

    def replace(self, **changes: Any) -> EvalSettings:
        """A copy with some fields changed; an unknown name is an error listing the known ones."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise InvalidInputError(f"unknown setting {unknown[0]!r} (settings: {', '.join(field_names())})")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(EvalSettings)]


QUICK = EvalSettings(
    eos_points=7, defect_atoms=32, slab_layers=5, slab_size=(1, 1), stacking_fault_layers=6,
    phonon_supercell=2, phonon_npoints=40, liquid_atoms=32, liquid_equilibration_ps=0.2,
    liquid_sampling_ps=0.2, liquid_sample_interval=5, rdf_bins=60, nve_atoms=32, nve_ps=0.1,
    nve_interval=5, hot_atoms=32, hot_ps=0.4, hot_check_interval=5, test_set_size=7,
    test_set_sizes=(8, 32), fmax=0.01)
"""A smoke-test preset: every costly part shrunk (small cells, sub-picosecond MD); the numbers
are only indicative."""


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"name=value"`` (the value parsed by the setting's type) → ``(name, value)``; tuples are
    comma-separated, ``none`` clears an optional setting."""
    if "=" not in text:
        raise InvalidInputError(f"--set expects name=value, got {text!r}")
    name, raw = (s.strip() for s in text.split("=", 1))
    hints = typing.get_type_hints(EvalSettings)
    if name not in hints:
        raise InvalidInputError(f"unknown setting {name!r} (settings: {', '.join(field_names())})")
    tp = hints[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    optional = type(None) in typing.get_args(tp)
    if optional and raw.lower() in ("none", ""):
        return name, None
    base = args[0] if optional else tp
    try:
        if typing.get_origin(base) is tuple:
            inner = typing.get_args(base)[0]
            return name, tuple(inner(v.strip()) for v in raw.split(",") if v.strip())
        if base is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return name, raw.lower() in ("true", "1", "yes")
        return name, base(raw)
    except ValueError as err:
        raise InvalidInputError(f"--set {name}: cannot read {raw!r} as {getattr(base, '__name__', base)}") from err
