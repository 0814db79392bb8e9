"""Stability of MD with the potential: NVE energy drift and a long hot run.

* NVE drift: the crystal at the calculator's own equilibrium, ``nve_atoms`` atoms (500 for fcc:
  5×5×5 conventional cells), velocities drawn at 2 × ``nve_temperature_K`` (equipartition brings
  it to about ``nve_temperature_K``), velocity Verlet with ``nve_timestep_fs`` for ``nve_ps``. The
  drift is the slope of a least-squares line through the total energy per atom against time,
  in meV/atom/ps (the sign kept); the RMS of the residuals around that line is reported too.
* Hot run: ``hot_atoms`` atoms of the crystal at its equilibrium volume under a Langevin
  thermostat at ``hot_temperature_K`` for ``hot_ps`` (it melts). Every ``hot_check_interval``
  steps the shortest interatomic distance is measured; a distance below ``min_distance`` Å (or a
  non-finite energy, or a calculator error) ends the run as a collapse. Reported: the shortest
  distance seen (Å) and the simulated time (ps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary
from ase.md.verlet import VelocityVerlet

from alal.builders import min_distance
from alal.evaluation.common import CalcFactory, Quantity, Result, equilibrium_for
from alal.evaluation.properties.liquid import thermalize_momenta

__all__ = ["StabilityResult", "compute", "drift", "hot_run", "nve_run"]


@dataclass
class StabilityResult(Result):
    title: ClassVar[str] = "MD stability"

    nve_atoms: int
    nve_drift_meV_atom_ps: float
    nve_noise_meV_atom: float
    """RMS of the energy around the fitted line, meV/atom."""
    nve_mean_temperature_K: float
    nve_time_ps: list[float]
    nve_energy_eV_atom: list[float]
    """Total energy per atom at ``nve_time_ps``, eV."""
    hot_atoms: int
    hot_temperature_K: float
    hot_min_distance_A: float
    """Shortest distance seen during the hot run, Å."""
    hot_completed_ps: float
    hot_requested_ps: float
    stable: bool
    """The hot run ran its full length without a collapse."""
    failure: str | None
    hot_time_ps: list[float]
    hot_min_distances_A: list[float]

    def quantities(self) -> list[Quantity]:
        return [Quantity("NVE energy drift", "meV/atom/ps", self.nve_drift_meV_atom_ps),
                Quantity("NVE energy noise (RMS)", "meV/atom", self.nve_noise_meV_atom),
                Quantity(f"shortest distance at {self.hot_temperature_K:g} K", "Å", self.hot_min_distance_A),
                Quantity(f"time simulated at {self.hot_temperature_K:g} K", "ps", self.hot_completed_ps)]


def drift(time_ps: np.ndarray, energy: np.ndarray) -> tuple[float, float]:
    """Slope (per ps) of a least-squares line through ``energy`` and the RMS of its residuals."""
    slope, intercept = np.polyfit(time_ps, energy, 1)
    return float(slope), float(np.sqrt(np.mean((energy - (slope * time_ps + intercept)) ** 2)))


def nve_run(calc_factory: CalcFactory, element: str, settings: Any, rng: np.random.Generator
            ) -> tuple[int, np.ndarray, np.ndarray, float]:
    eq = equilibrium_for(calc_factory, element, settings)
    atoms = eq.supercell(settings.nve_atoms)
    atoms.calc = calc_factory()
    thermalize_momenta(atoms, 2 * settings.nve_temperature_K, rng=rng)
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, settings.nve_timestep_fs * units.fs)
    times, energies, temps = [], [], []

    def record() -> None:
        times.append(dyn.get_time() / (1000 * units.fs))
        energies.append(atoms.get_total_energy() / len(atoms))
        temps.append(atoms.get_temperature())

    dyn.attach(record, interval=settings.nve_interval)
    dyn.run(max(int(round(settings.nve_ps * 1000 / settings.nve_timestep_fs)), 2 * settings.nve_interval))
    return len(atoms), np.array(times), np.array(energies), float(np.mean(temps))


def hot_run(calc_factory: CalcFactory, element: str, settings: Any, rng: np.random.Generator
            ) -> tuple[int, list[float], list[float], float, str | None]:
    """``(n_atoms, times (ps), shortest distances (Å), time completed (ps), failure or None)``."""
    eq = equilibrium_for(calc_factory, element, settings)
    atoms = eq.supercell(settings.hot_atoms)
    atoms.calc = calc_factory()
    t = settings.hot_temperature_K
    thermalize_momenta(atoms, t, rng=rng)
    Stationary(atoms)
    dt_ps = settings.hot_timestep_fs / 1000
    dyn = Langevin(atoms, settings.hot_timestep_fs * units.fs, temperature_K=t,
                   friction=settings.friction_per_fs / units.fs, fixcm=False, rng=rng)
    n_steps = int(round(settings.hot_ps / dt_ps))
    interval = settings.hot_check_interval
    times, distances = [0.0], [min_distance(atoms)]
    done, failure = 0, None
    while done < n_steps:
        steps = min(interval, n_steps - done)
        try:
            dyn.run(steps)
        except Exception as err:  # noqa: BLE001 - a broken potential may fail in any way
            failure = f"the calculator failed after {done * dt_ps:.3f} ps: {type(err).__name__}: {err}"
            break
        done += steps
        d = min_distance(atoms)
        times.append(done * dt_ps)
        distances.append(d)
        if not np.isfinite(atoms.get_potential_energy()):
            failure = f"non-finite energy at {done * dt_ps:.3f} ps"
            break
        if d < settings.min_distance:
            failure = f"atoms {d:.3f} Å apart (below {settings.min_distance} Å) at {done * dt_ps:.3f} ps"
            break
    return len(atoms), times, distances, done * dt_ps, failure


def compute(calc_factory: CalcFactory, element: str, settings: Any) -> StabilityResult:
    rng = np.random.default_rng(settings.seed)
    n_nve, times, energies, temperature = nve_run(calc_factory, element, settings, rng)
    slope, noise = drift(times, energies)
    n_hot, hot_t, hot_d, completed, failure = hot_run(calc_factory, element, settings, rng)
    return StabilityResult(n_nve, 1e3 * slope, 1e3 * noise, temperature, times.tolist(), energies.tolist(),
                           n_hot, settings.hot_temperature_K, float(min(hot_d)), completed, settings.hot_ps,
                           failure is None, failure, hot_t, hot_d)
