"""The built-in ``ase`` engine: Langevin molecular dynamics in ASE driven by the committee mean,
stopped where the committee disagrees.

The trajectory runs in chunks of ``check_interval`` steps. Before each chunk the thermostat is set
to the protocol's temperature at the chunk's start and, for a density ramp, the cell is rescaled
(atoms with it) to the density at that time; after each chunk (and once on the starting frame)
the frame is checked:

1. unphysical → ``unreliable``: non-finite positions, an atom that moved more than 10× its thermal
   speed at the protocol's hottest temperature would carry it over the chunk, two atoms closer than
   ``min_distance``, a model that fails on the frame or gives non-finite energy or forces;
2. otherwise the calibrated committee spread is compared with the :class:`TrustLevels`:
   ``known`` → go on; ``candidate`` → stop and return the frame; ``unreliable`` → stop, the frame
   is discarded and counted. The starting frame (built, not simulated) is never unreliable by its
   spread alone: above the upper level it is a candidate.

Only the checks ask the calculator for ``forces_std`` (the per-member forces); the MD steps in
between ask for the committee-mean forces alone.

Integrators: ``nvt`` uses :class:`ase.md.langevin.Langevin` (``fixcm=False``: ASE 3.29 deprecates
the centre-of-mass fix; the drift is removed from the initial velocities instead). ``npt`` uses
:class:`ase.md.langevinbaoab.LangevinBAOAB` with an isotropic (``hydrostatic``) barostat: the same
Langevin thermostat on the atoms, a Langevin–Hoover barostat on the volume (robust for liquids and
random boxes, where a fully flexible cell can shear away), seeded from the same generator. Its
thermostat time is 1/``friction_per_fs``, its barostat time 20× that (ASE's default), and the
barostat mass ASE's heuristic, passed explicitly (ASE warns when it chooses it itself).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.md import MolecularDynamics

try:  # ASE >= 3.29 deprecates MaxwellBoltzmannDistribution for thermalize_momenta
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    def thermalize_momenta(atoms: Atoms, temperature_K: float, *, rng: np.random.Generator) -> None:
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)


from alal.errors import InvalidInputError, NumericalError
from alal.geometry import closest_pair
from alal.plugins.engine import Engine, Level, Protocol, SamplingResult, Verdict
from alal.plugins.model import Model

__all__ = ["AseEngine"]

logger = logging.getLogger(__name__)

MAX_SPEED_FACTOR = 10.0
"""An atom whose mean speed over a chunk exceeds this many times its thermal speed
sqrt(3 kB T / m) at the protocol's hottest temperature (at least 300 K) makes the frame unreliable."""
BAROSTAT_TIME_FACTOR = 20.0
"""NPT barostat time / thermostat time."""

# What a blown-up trajectory raises: bad positions refused by the model or the neighbour list,
# a singular cell, overflow. Anything else is a bug and propagates.
_BLOWUPS = (InvalidInputError, NumericalError, ArithmeticError, np.linalg.LinAlgError)


class AseEngine(Engine):
    """Langevin MD in ASE (NVT, or NPT with an isotropic barostat) under a random temperature
    schedule and optional density ramp, with the uncertainty stop rule. Parameters: see
    :class:`~alal.plugins.engine.Engine`; the defaults suit aluminium."""

    name = "ase"

    def sample(self, model: Model, start: Atoms, *, seed: int,
               protocol: Protocol | None = None) -> SamplingResult:
        clock = time.perf_counter()
        _check_arguments(model, start, seed, protocol)
        protocol_seed, md_seed = np.random.SeedSequence(int(seed)).spawn(2)
        if protocol is None:
            protocol = self.draw_protocol(np.random.default_rng(protocol_seed))
        _check_cell(start, protocol)
        run = _Trajectory(self, model, start, protocol, np.random.default_rng(md_seed), int(seed))
        verdict, reason = run.go()
        result = SamplingResult(
            verdict=verdict, candidates=run.candidates, steps=run.steps, checks=run.checks,
            max_force_std_seen=run.max_force_std_seen, unreliable_frames=int(verdict == "unreliable") + run.discarded,
            seconds=time.perf_counter() - clock, protocol=protocol, reason=reason)
        logger.info("%s engine, seed %d: %s after %d steps (%s)", self.name, seed, verdict, result.steps, reason)
        return result


def _check_arguments(model: Any, start: Any, seed: Any, protocol: Any) -> None:
    if not isinstance(model, Model):
        raise InvalidInputError(f"model must be an alal.plugins.Model, got {type(model).__name__}")
    if not isinstance(start, Atoms) or len(start) == 0:
        raise InvalidInputError(f"start must be an ase.Atoms with atoms, got {start!r}")
    if not (np.isfinite(start.positions).all() and np.isfinite(start.cell[:]).all()):
        raise InvalidInputError("start has non-finite positions or cell")
    unknown = sorted(set(start.get_chemical_symbols()) - set(model.elements))
    if unknown:
        raise InvalidInputError(f"start has elements {unknown} that the model does not know "
                                f"(it knows {list(model.elements)})")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}")
    if protocol is not None and not isinstance(protocol, Protocol):
        raise InvalidInputError(f"protocol must be an alal.plugins.engine.Protocol, got {protocol!r}")


def _check_cell(start: Atoms, protocol: Protocol) -> None:
    has_volume = abs(start.cell.volume) > 1e-9
    if protocol.ensemble == "npt" and not (start.pbc.all() and has_volume):
        raise InvalidInputError("ensemble='npt' needs a start that is periodic in 3-D with a cell volume")
    if (protocol.density_start != 1.0 or protocol.density_end != 1.0) and not has_volume:
        raise InvalidInputError("a density ramp needs a start with a cell volume")


def _dynamics(atoms: Atoms, protocol: Protocol, rng: np.random.Generator) -> MolecularDynamics:
    dt = protocol.timestep_fs * units.fs
    temperature_K = protocol.temperature_K(0.0)
    if protocol.ensemble == "nvt":
        return Langevin(atoms, dt, temperature_K=temperature_K, friction=protocol.friction_per_fs / units.fs,
                        fixcm=False, rng=rng)
    try:
        from ase.md.langevinbaoab import LangevinBAOAB
    except ImportError as err:  # pragma: no cover - older ASE
        raise InvalidInputError("ensemble='npt' needs ase.md.langevinbaoab (ASE >= 3.29)") from err
    t_tau = units.fs / protocol.friction_per_fs
    p_tau = BAROSTAT_TIME_FACTOR * t_tau
    # ASE's heuristic: a volume oscillation period of about p_tau / 4 (see LangevinBAOAB).
    p_mass = ((p_tau / 4.0) / (1.66 * units.fs) * len(atoms) ** (1.0 / 6.0)) ** 2
    return LangevinBAOAB(atoms, dt, temperature_K=temperature_K, externalstress=-protocol.pressure_GPa * units.GPa,
                         hydrostatic=True, T_tau=t_tau, P_tau=p_tau, P_mass=p_mass, rng=rng)


class _Trajectory:
    """The state of one run: the atoms, the integrator and what the checks found."""

    def __init__(self, engine: AseEngine, model: Model, start: Atoms, protocol: Protocol,
                 rng: np.random.Generator, seed: int) -> None:
        self.engine, self.start, self.protocol, self.seed = engine, start, protocol, seed
        self.atoms = start.copy()
        self.cell0 = np.array(start.cell[:])
        self.ramp = protocol.density_start != 1.0 or protocol.density_end != 1.0
        if self.ramp:
            self._set_density(0.0)
        self.atoms.calc = model.calculator()
        thermalize_momenta(self.atoms, protocol.temperature_K(0.0), rng=rng)
        masses = self.atoms.get_masses()[:, None]
        momenta = self.atoms.get_momenta()
        self.atoms.set_momenta(momenta - masses * momenta.sum(axis=0) / masses.sum())
        self.rng = rng
        self.dyn: MolecularDynamics | None = None  # built after the starting frame's check
        hottest = max(protocol.max_temperature_K, 300.0)
        self.speed_limit = MAX_SPEED_FACTOR * np.sqrt(3 * units.kB * hottest / masses[:, 0])
        self.checks = 0
        self.discarded = 0
        self.max_force_std_seen = 0.0
        self.candidates: list[Atoms] = []

    @property
    def steps(self) -> int:
        """MD steps run so far."""
        return 0 if self.dyn is None else int(self.dyn.nsteps)

    def _set_density(self, t_ps: float) -> None:
        factor = self.protocol.density(t_ps) ** (-1.0 / 3.0)
        self.atoms.set_cell(self.cell0 * factor, scale_atoms=True)

    def go(self) -> tuple[Verdict, str]:
        p = self.protocol
        dt_ps = p.timestep_fs / 1000.0
        temperature_K = p.temperature_K(0.0)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            level, reason = self._check(None, 0, temperature_K)
            # A starting cell that is already a candidate: warm up, then judge the frame reached;
            # the start is kept as the candidate should that frame be unreliable. A cold start
            # (an unrattled crystal: the 0 K lattice under strain) is itself what is asked about,
            # so it stays the candidate.
            fallback: tuple[Atoms, str] | None = None
            if level == "candidate" and p.warmup_steps > 0 and not self.start.info.get("cold"):
                fallback, level = (self.candidates.pop(), reason), "known"
            while level == "known" and self.steps < p.steps:
                step = self.steps
                n = min(p.warmup_steps if fallback is not None else p.check_interval, p.steps - step)
                temperature_K = p.temperature_K(step * dt_ps)
                if self.ramp and step > 0:  # the starting frame is already at density(0)
                    self._set_density(step * dt_ps)
                before = self.atoms.positions.copy()
                try:
                    if self.dyn is None:
                        self.dyn = _dynamics(self.atoms, p, self.rng)
                    self.dyn.set_temperature(temperature_K=temperature_K)  # type: ignore[attr-defined]
                    self.dyn.run(n)
                except _BLOWUPS as err:
                    level, reason = "unreliable", f"the dynamics failed at step {self.steps}: {err}"
                    break
                limit = self.speed_limit * n * p.timestep_fs * units.fs
                level, reason = self._check((before, limit), self.steps, temperature_K)
                if level != "unreliable":
                    fallback = None
            if fallback is not None and level == "unreliable":
                self.discarded += 1
                self.candidates.append(fallback[0])
                level, reason = "candidate", f"{fallback[1]}; warm-up frame unreliable ({reason})"
        if level == "known":
            return "completed", f"{p.steps} steps below the lower trust levels"
        return ("candidate" if level == "candidate" else "unreliable"), reason

    def _check(self, moved: tuple[np.ndarray, np.ndarray] | None, step: int,
               temperature_K: float) -> tuple[Level, str]:
        """Judge the current frame; keep it as a candidate when it is one."""
        self.checks += 1
        atoms, trust = self.atoms, self.engine.trust
        where = f"step {step}"
        if not np.isfinite(atoms.positions).all():
            return "unreliable", f"{where}: non-finite positions"
        if moved is not None:
            before, limit = moved
            excess = np.linalg.norm(atoms.positions - before, axis=1) / limit
            if excess.max() > 1.0:
                i = int(excess.argmax())
                return "unreliable", f"{where}: atom {i} moved faster than {MAX_SPEED_FACTOR:g}× its thermal speed"
        try:
            pair = closest_pair(atoms, trust.min_distance) if trust.min_distance > 0 else None
            if pair is not None:
                i, j, d = pair
                return "unreliable", f"{where}: atoms {i} and {j} are {d:.3f} Å apart (< {trust.min_distance} Å)"
            calc = atoms.calc
            forces_std = np.asarray(calc.get_property("forces_std", atoms), dtype=np.float64)
            per_atom = calc.results.get("energy_std_per_atom")
            if per_atom is None:
                per_atom = calc.get_property("energy_std", atoms) / len(atoms)
            energy = float(calc.get_property("energy", atoms))
            forces = np.asarray(calc.get_property("forces", atoms))
        except _BLOWUPS as err:
            return "unreliable", f"{where}: the model failed: {err}"
        if not (math.isfinite(energy) and np.isfinite(forces).all()):
            return "unreliable", f"{where}: non-finite energy or forces"
        measures = {"energy_std_per_atom": float(per_atom),
                    "force_std_mean": float(forces_std.mean()), "force_std_max": float(forces_std.max())}
        if math.isfinite(measures["force_std_max"]):
            self.max_force_std_seen = max(self.max_force_std_seen, measures["force_std_max"])
        level = trust.classify(measures["energy_std_per_atom"], forces_std)
        if step == 0 and level == "unreliable":
            # The starting cell comes from a builder: its geometry is trusted, and a spread above
            # the upper level only says the committee knows nothing about it yet. Label it.
            level = "candidate"
        spread = ", ".join(f"{k} {v:.4g}" for k, v in measures.items())
        logger.debug("%s: %s (%s)", where, level, spread)
        if level == "candidate":
            self.candidates.append(self._frame(step, temperature_K, measures))
        return level, f"{where}: {level} ({spread})"

    def _frame(self, step: int, temperature_K: float, measures: dict[str, float]) -> Atoms:
        """A plain copy of the current frame (no calculator, momenta or constraints)."""
        a = self.atoms
        frame = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc, info=copy.deepcopy(self.start.info))
        frame.wrap()
        frame.info.update(measures, step=step, time_ps=step * self.protocol.timestep_fs / 1000.0,
                          temperature_K=temperature_K, protocol=self.protocol.to_dict(),
                          engine=self.engine.name, seed=self.seed)
        return frame
