"""Phonons by finite displacements (:class:`ase.phonons.Phonons`), frequencies in THz.

The primitive cell at the calculator's own equilibrium is repeated ``phonon_supercell`` times along
each axis, every atom of the reference cell displaced by ±``phonon_delta`` Å, and the force
constants (acoustic sum rule imposed) Fourier-interpolated. Frequencies are exact at wave vectors
commensurate with the supercell (X and L of fcc for an even repetition). Imaginary frequencies
are reported as negative numbers. 1 THz = 4.1357 meV.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ase import units
from ase.phonons import Phonons

from alal.evaluation.common import CalcFactory, Quantity, Result, equilibrium_for

__all__ = ["EV_TO_THZ", "POINTS", "PhononResult", "compute"]

EV_TO_THZ = units._e / units._hplanck / 1e12
"""THz per eV of ħω."""
POINTS = {"fcc": ("G", "X", "L"), "diamond": ("G", "X", "L"), "bcc": ("G", "H", "N", "P"),
          "sc": ("G", "X", "M", "R"), "hcp": ("G", "M", "K", "A")}


@dataclass
class PhononResult(Result):
    title: ClassVar[str] = "Phonons"

    structure: str
    supercell: int
    frequencies_THz: dict[str, list[float]]
    """Sorted frequencies (3 per atom of the primitive cell) at each special point, THz."""
    path: str
    path_x: list[float]
    """Distance along the band path (1/Å)."""
    special_x: list[float]
    special_labels: list[str]
    bands_THz: list[list[float]]
    """``(n_points, n_branches)`` frequencies along the path, THz."""

    def quantities(self) -> list[Quantity]:
        out = []
        for point, freqs in self.frequencies_THz.items():
            name = "Γ" if point == "G" else point
            skip = 3 if point == "G" else 0  # the acoustic branches vanish at Γ
            for k, f in enumerate(freqs[skip:], start=skip + 1):
                out.append(Quantity(f"phonon ν({name}) branch {k}", "THz", f))
        return out


def compute(calc_factory: CalcFactory, element: str, settings: Any) -> PhononResult:
    eq = equilibrium_for(calc_factory, element, settings)
    atoms = eq.primitive()
    n = settings.phonon_supercell
    path = atoms.cell.bandpath(settings.phonon_path, npoints=settings.phonon_npoints)
    special = path.special_points
    wanted = settings.phonon_points or POINTS.get(eq.structure, tuple(special))
    missing = [p for p in wanted if p not in special]
    if missing:
        raise ValueError(f"special points {missing} are not in the {eq.structure} lattice ({sorted(special)})")
    with tempfile.TemporaryDirectory(prefix="alal-phonons-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        ph = Phonons(atoms, calc_factory(), supercell=(n, n, n), delta=settings.phonon_delta,
                     name=str(Path(tmp) / "phonon"))
        ph.run()
        ph.read(acoustic=True)
        at_points = ph.band_structure(np.array([special[p] for p in wanted]), verbose=False) * EV_TO_THZ
        bands = ph.get_band_structure(path, verbose=False)
    x, sx, labels = path.get_linear_kpoint_axis()
    return PhononResult(eq.structure, n, {p: sorted(float(f) for f in row) for p, row in zip(wanted, at_points)},
                        path.path, [float(v) for v in x], [float(v) for v in sx], list(labels),
                        (bands.energies[0] * EV_TO_THZ).tolist())
