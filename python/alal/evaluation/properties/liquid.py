"""The liquid: radial distribution function g(r) from Langevin MD, compared as a curve.

``liquid_atoms`` atoms are placed at random (at least 0.7 × the reference crystal's
nearest-neighbour distance apart) in a cubic box at ``liquid_volume_per_atom`` Å³ (default 1.15 ×
the volume per atom of ASE's reference crystal, the same density for both sides), relaxed by a
few strongly damped steps, equilibrated at ``liquid_temperature_K`` for ``liquid_equilibration_ps``
and sampled every ``liquid_sample_interval`` steps for ``liquid_sampling_ps`` (Langevin, NVT).

``g(r)`` is the histogram of pair distances (alal's neighbour list, all periodic images, each pair
counted from both atoms) over ``N ρ 4π r² dr`` per frame, averaged over frames, on ``rdf_bins``
bins up to ``rdf_r_max`` Å (at most half the smallest box height).

The two sides are compared by :func:`rdf_l2`, the root-mean-square difference of the curves over
``[0, r_max]``: ``L2 = sqrt( (1/r_max) ∫₀^r_max (g_model(r) − g_oracle(r))² dr )`` (dimensionless,
0 for identical curves; two independent runs of one potential differ by their statistical noise,
~0.02–0.05 for a few ps of 256 atoms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary

from alal.builders import min_distance, random_box
from alal.errors import InvalidInputError
from alal.evaluation.common import CalcFactory, Quantity, Result
from alal.neighbors import neighbor_list

try:  # ASE >= 3.29; MaxwellBoltzmannDistribution is deprecated there
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    def thermalize_momenta(atoms: Atoms, temperature_K: float, *, rng: np.random.Generator) -> None:
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)

__all__ = ["LiquidResult", "compute", "first_peak", "rdf", "rdf_l2", "thermalize_momenta"]


@dataclass
class LiquidResult(Result):
    title: ClassVar[str] = "Liquid"

    temperature_K: float
    """Target temperature of the thermostat, K."""
    mean_temperature_K: float
    """Mean kinetic temperature over the sampled frames, K."""
    n_atoms: int
    volume_per_atom_A3: float
    n_frames: int
    r_A: list[float]
    """Bin centres, Å."""
    g: list[float]
    peak_position_A: float
    peak_height: float

    def quantities(self) -> list[Quantity]:
        return [Quantity("liquid g(r) first peak position", "Å", self.peak_position_A),
                Quantity("liquid g(r) first peak height", "", self.peak_height)]


def rdf(frames: Sequence[Atoms], r_max: float, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres (Å) and g(r) averaged over periodic ``frames`` of one composition."""
    if not frames:
        raise InvalidInputError("rdf needs at least one frame")
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shells = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = np.zeros(n_bins)
    for atoms in frames:
        n = len(atoms)
        density = n / atoms.get_volume()
        d = neighbor_list("d", atoms, r_max)
        hist, _ = np.histogram(d, bins=edges)
        g += hist / (n * density * shells)
    return (edges[1:] + edges[:-1]) / 2, g / len(frames)


def rdf_l2(r: Sequence[float], g_a: Sequence[float], g_b: Sequence[float]) -> float:
    """Root-mean-square difference of two g(r) on the same uniform bins (see the module)."""
    r, diff = np.asarray(r), np.asarray(g_a) - np.asarray(g_b)
    if r.shape != diff.shape or r.size < 2:
        raise InvalidInputError("rdf_l2 needs two curves on the same bins")
    dr = r[1] - r[0]
    return float(np.sqrt(np.sum(diff**2) * dr / (r[-1] + dr / 2)))


def first_peak(r: Sequence[float], g: Sequence[float]) -> tuple[float, float]:
    """Position (Å, refined by a parabola through the highest bin and its neighbours) and height
    of the highest maximum of g(r)."""
    r, g = np.asarray(r), np.asarray(g)
    k = int(np.argmax(g))
    if 0 < k < len(g) - 1:
        c2, c1, c0 = np.polyfit(r[k - 1:k + 2], g[k - 1:k + 2], 2)
        if c2 < 0:
            x = -c1 / (2 * c2)
            return float(x), float(c0 + c1 * x + c2 * x * x)
    return float(r[k]), float(g[k])


def liquid_box(element: str, settings: Any, rng: np.random.Generator) -> Atoms:
    reference = bulk(element)
    volume = settings.liquid_volume_per_atom or 1.15 * reference.get_volume() / len(reference)
    d_min = 0.7 * min_distance(reference)
    return random_box(element, settings.liquid_atoms, volume_per_atom=volume, min_distance=d_min, rng=rng)


def compute(calc_factory: CalcFactory, element: str, settings: Any) -> LiquidResult:
    rng = np.random.default_rng(settings.seed)
    atoms = liquid_box(element, settings, rng)
    atoms.calc = calc_factory()
    t = settings.liquid_temperature_K
    dt = settings.liquid_timestep_fs * units.fs
    thermalize_momenta(atoms, t, rng=rng)
    Stationary(atoms)
    # strongly damped steps first: a random box has close contacts
    Langevin(atoms, dt / 2, temperature_K=t, friction=0.2 / units.fs, fixcm=False, rng=rng).run(20)
    dyn = Langevin(atoms, dt, temperature_K=t, friction=settings.friction_per_fs / units.fs, fixcm=False, rng=rng)
    dyn.run(int(round(settings.liquid_equilibration_ps * 1000 / settings.liquid_timestep_fs)))
    frames: list[Atoms] = []
    temperatures: list[float] = []

    def sample() -> None:
        frames.append(Atoms(atoms.numbers, positions=atoms.get_positions(), cell=atoms.cell, pbc=True))
        temperatures.append(float(atoms.get_temperature()))

    dyn.attach(sample, interval=settings.liquid_sample_interval)
    dyn.run(max(int(round(settings.liquid_sampling_ps * 1000 / settings.liquid_timestep_fs)), 1))
    heights = atoms.cell.volume / np.linalg.norm(np.cross(atoms.cell[[1, 2, 0]], atoms.cell[[2, 0, 1]]), axis=1)
    r_max = min(settings.rdf_r_max, 0.5 * float(heights.min()))
    r, g = rdf(frames, r_max, settings.rdf_bins)
    pos, height = first_peak(r, g)
    return LiquidResult(t, float(np.mean(temperatures)), len(atoms), atoms.get_volume() / len(atoms),
                        len(frames), r.tolist(), g.tolist(), pos, height)
