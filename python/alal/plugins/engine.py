"""The contract of an engine (``alal.engines`` entry points): a sampler that runs molecular dynamics
with a committee model and stops where the committee disagrees.

One call to :meth:`Engine.sample` runs one trajectory under a :class:`Protocol` (conditions drawn
at random from the engine's ranges) and returns a :class:`SamplingResult`: the verdict
(``completed`` / ``candidate`` / ``unreliable``) and the candidate frames. The stop rule compares
the committee spread with two :class:`TrustLevels` (DESIGN.md §1): below *lower* the model knows
the region, between the levels the frame is a candidate for labelling, above *upper* (or with atoms
closer than ``min_distance``) the trajectory is unreliable and is cut.

Units: time in fs (steps) and ps (schedules), temperature in K, pressure in GPa, energies in eV,
forces in eV/Å, distances in Å. Bad arguments raise :class:`~alal.errors.InvalidInputError`
naming the parameter; a trajectory that blows up is a verdict, never an exception.
"""

from __future__ import annotations

import abc
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

from alal.errors import InvalidInputError

if TYPE_CHECKING:
    from alal.plugins.model import Model

__all__ = ["ENSEMBLES", "Engine", "Level", "Protocol", "SamplingResult", "TrustLevels", "Verdict"]

Level = Literal["known", "candidate", "unreliable"]
"""How a frame compares with the trust levels."""
Verdict = Literal["completed", "candidate", "unreliable"]
"""How a trajectory ended: ran its full length below the lower levels, stopped at a candidate, or
was cut as unreliable."""
ENSEMBLES = ("nvt", "npt")


def _number(value: Any, name: str, unit: str, *, minimum: float | None = 0.0, strict: bool = False) -> float:
    """A finite real number ``>= minimum`` (``> minimum`` when ``strict``; no bound when ``None``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"{name} must be a number ({unit}), got {value!r}")
    x = float(value)
    low_ok = minimum is None or (x > minimum if strict else x >= minimum)
    if not math.isfinite(x) or not low_ok:
        bound = "" if minimum is None else f" and {'>' if strict else '>='} {minimum:g}"
        raise InvalidInputError(f"{name} must be finite{bound} ({unit}), got {value!r}")
    return x


def _integer(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _range(value: Any, name: str, unit: str, *, strict: bool = False) -> tuple[float, float]:
    """``(low, high)`` with ``0 <= low <= high`` (``0 < low`` when ``strict``)."""
    try:
        lo, hi = value
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{name} must be a pair (low, high) ({unit}), got {value!r}") from err
    lo = _number(lo, f"{name}[0]", unit, strict=strict)
    hi = _number(hi, f"{name}[1]", unit, strict=strict)
    if lo > hi:
        raise InvalidInputError(f"{name} must be a pair with low <= high ({unit}), got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class Protocol:
    """The conditions of one trajectory: a Langevin thermostat following the temperature schedule
    T(t) = T0 + (T1 − T0)·t/tmax + Tamp·sin²(π t / Tper), with tmax = ``steps · timestep_fs``, and,
    at constant volume, a linear density ramp."""

    steps: int
    """MD steps to run."""
    timestep_fs: float
    temperature_start_K: float
    """T0."""
    temperature_end_K: float
    """T1."""
    temperature_amplitude_K: float = 0.0
    """Tamp, the height of the sin² oscillation."""
    temperature_period_ps: float = 10.0
    """Tper: the sin² term repeats every Tper."""
    density_start: float = 1.0
    """Density at t = 0 relative to the starting cell's (the volume is divided by it); 1 = unchanged."""
    density_end: float = 1.0
    """Relative density at tmax, reached linearly."""
    friction_per_fs: float = 0.01
    """Langevin friction, fs⁻¹."""
    ensemble: str = "nvt"
    """``"nvt"`` (fixed cell, or the density ramp) or ``"npt"`` (isotropic barostat)."""
    pressure_GPa: float = 0.0
    """Target pressure of ``"npt"``."""
    check_interval: int = 50
    """MD steps between two uncertainty checks."""
    warmup_steps: int = 0
    """When the starting cell is already a candidate: MD steps run before checking again, and the
    frame then reached is labelled instead (the start only if that frame is unreliable). 0: the
    starting cell itself is labelled."""

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {
            "steps": _integer(self.steps, "steps", 1),
            "check_interval": _integer(self.check_interval, "check_interval", 1),
            "warmup_steps": _integer(self.warmup_steps, "warmup_steps", 0),
            "timestep_fs": _number(self.timestep_fs, "timestep_fs", "fs", strict=True),
            "temperature_start_K": _number(self.temperature_start_K, "temperature_start_K", "K"),
            "temperature_end_K": _number(self.temperature_end_K, "temperature_end_K", "K"),
            "temperature_amplitude_K": _number(self.temperature_amplitude_K, "temperature_amplitude_K", "K"),
            "temperature_period_ps": _number(self.temperature_period_ps, "temperature_period_ps", "ps", strict=True),
            "density_start": _number(self.density_start, "density_start", "relative density", strict=True),
            "density_end": _number(self.density_end, "density_end", "relative density", strict=True),
            "friction_per_fs": _number(self.friction_per_fs, "friction_per_fs", "fs⁻¹", strict=True),
            "pressure_GPa": _number(self.pressure_GPa, "pressure_GPa", "GPa", minimum=None),
        }
        for key, value in checked.items():  # plain int/float: to_dict() is JSON-serialisable
            object.__setattr__(self, key, value)
        if self.ensemble not in ENSEMBLES:
            raise InvalidInputError(f"ensemble must be one of {ENSEMBLES}, got {self.ensemble!r}")
        if self.ensemble == "npt" and (self.density_start != 1.0 or self.density_end != 1.0):
            raise InvalidInputError("density_start/density_end: a density ramp needs ensemble='nvt' "
                                    "(under 'npt' the barostat sets the volume)")

    @property
    def duration_ps(self) -> float:
        """tmax, ps."""
        return self.steps * self.timestep_fs / 1000.0

    def temperature_K(self, t_ps: float) -> float:
        """Thermostat temperature at time ``t_ps``, K."""
        ramp = (self.temperature_end_K - self.temperature_start_K) * t_ps / self.duration_ps
        wave = self.temperature_amplitude_K * math.sin(math.pi * t_ps / self.temperature_period_ps) ** 2
        return self.temperature_start_K + ramp + wave

    def density(self, t_ps: float) -> float:
        """Density at time ``t_ps`` relative to the starting cell's."""
        return self.density_start + (self.density_end - self.density_start) * t_ps / self.duration_ps

    @property
    def max_temperature_K(self) -> float:
        """An upper bound of T(t) over the run, K."""
        return max(self.temperature_start_K, self.temperature_end_K) + self.temperature_amplitude_K

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrustLevels:
    """Lower and upper levels of the (calibrated) committee spread.

    Three measures are compared: the energy spread per atom (eV/atom), the mean over atoms of the
    per-atom force spread (eV/Å) and its maximum (eV/Å). The max-force levels default to 3× the
    mean-force levels. ``min_distance`` (Å): a frame with two atoms closer is unreliable."""

    energy_lower: float = 0.005
    energy_upper: float = 0.05
    force_lower: float = 0.10
    force_upper: float = 1.0
    max_force_lower: float | None = None
    """``None``: 3 × ``force_lower`` (always a float after construction)."""
    max_force_upper: float | None = None
    """``None``: 3 × ``force_upper``."""
    min_distance: float = 1.5

    def __post_init__(self) -> None:
        for key, unit in (("energy", "eV/atom"), ("force", "eV/Å"), ("max_force", "eV/Å")):
            for side in ("lower", "upper"):
                name = f"{key}_{side}"
                value = getattr(self, name)
                if value is None and key == "max_force":
                    value = 3 * getattr(self, f"force_{side}")
                object.__setattr__(self, name, _number(value, name, unit, strict=True))
            if getattr(self, f"{key}_lower") > getattr(self, f"{key}_upper"):
                raise InvalidInputError(f"{key}_lower must be <= {key}_upper, got "
                                        f"{getattr(self, f'{key}_lower')} > {getattr(self, f'{key}_upper')}")
        object.__setattr__(self, "min_distance", _number(self.min_distance, "min_distance", "Å"))

    def classify(self, energy_std_per_atom: float, forces_std: ArrayLike) -> Level:
        """``"unreliable"`` if any measure is above its upper level (or not finite), else
        ``"candidate"`` if any is above its lower level, else ``"known"``. ``forces_std``: the
        per-atom force spread ``(n_atoms,)``, eV/Å."""
        f = np.asarray(forces_std, dtype=np.float64).ravel()
        values = (float(energy_std_per_atom), float(f.mean()) if f.size else 0.0,
                  float(f.max()) if f.size else 0.0)
        lower = (self.energy_lower, self.force_lower, self.max_force_lower)
        upper = (self.energy_upper, self.force_upper, self.max_force_upper)
        if not all(math.isfinite(v) for v in values) or any(v > u for v, u in zip(values, upper)):  # type: ignore[operator]
            return "unreliable"
        if any(v > low for v, low in zip(values, lower)):  # type: ignore[operator]
            return "candidate"
        return "known"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SamplingResult:
    """What one trajectory gave."""

    verdict: Verdict
    candidates: list[Atoms]
    """Frames to label, without a calculator; ``atoms.info`` holds ``energy_std_per_atom``
    (eV/atom), ``force_std_mean`` and ``force_std_max`` (eV/Å), ``step``, ``time_ps``,
    ``temperature_K`` (thermostat target), ``protocol`` (a dict), ``engine`` and ``seed``."""
    steps: int
    """MD steps run."""
    checks: int
    """Uncertainty checks made (the starting frame included)."""
    max_force_std_seen: float
    """Largest per-atom force spread over the checks, eV/Å (0 when none was measured)."""
    unreliable_frames: int
    """Frames found above the upper levels or unphysical (discarded)."""
    seconds: float
    """Wall time, s."""
    protocol: Protocol
    reason: str = ""
    """Why the trajectory stopped, for people."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (candidates counted, not included)."""
        return {"verdict": self.verdict, "candidates": len(self.candidates), "steps": self.steps,
                "checks": self.checks, "max_force_std_seen": self.max_force_std_seen,
                "unreliable_frames": self.unreliable_frames, "seconds": self.seconds,
                "protocol": self.protocol.to_dict(), "reason": self.reason}


@dataclass(frozen=True)
class _Ranges:
    temperature_K: tuple[float, float]
    amplitude_K: tuple[float, float]
    period_ps: tuple[float, float]
    density_scale: tuple[float, float]


class Engine(abc.ABC):
    """Base class of engines; subclasses take keyword-only constructor parameters (a config's
    ``params`` map onto them, a misspelt key is an error).

    Args:
        temperature_K: range of T0 and T1 (each drawn uniformly), K.
        amplitude_K: range of Tamp, K.
        period_ps: range of Tper, ps.
        density_scale: range of the final relative density (the ramp starts at 1); ``(1, 1)``: no
            ramp. Only with ``ensemble="nvt"``.
        steps: MD steps per trajectory.
        timestep_fs: MD time step, fs.
        friction_per_fs: Langevin friction, fs⁻¹.
        ensemble: ``"nvt"`` or ``"npt"``.
        pressure_GPa: target pressure under ``"npt"``, GPa.
        check_interval: MD steps between two uncertainty checks.
        warmup_steps: when the starting cell is already a candidate, MD steps to run before
            checking again; the frame reached is the candidate (the start if that frame is
            unreliable). Built cells are cold and idealised, and the MD leaves them within tens of
            fs: a warmed-up frame is closer to what the dynamics visits. 0: label the start.
            A start marked ``atoms.info["cold"]`` (an unrattled crystal, see
            ``builders.cold_fraction``) is labelled as built: the 0 K lattice is what it asks about.
        energy_lower, energy_upper: levels of the energy spread per atom, eV/atom.
        force_lower, force_upper: levels of the mean per-atom force spread, eV/Å.
        max_force_lower, max_force_upper: levels of the largest per-atom force spread, eV/Å
            (default 3× the mean-force levels).
        min_distance: frames with atoms closer than this are unreliable, Å.
    """

    name: ClassVar[str]
    """Entry-point name of the plugin (e.g. ``"ase"``)."""

    def __init__(
        self, *, temperature_K: tuple[float, float] = (100.0, 5000.0),
        amplitude_K: tuple[float, float] = (0.0, 2000.0), period_ps: tuple[float, float] = (2.0, 50.0),
        density_scale: tuple[float, float] = (1.0, 1.0), steps: int = 2000, timestep_fs: float = 2.0,
        friction_per_fs: float = 0.01, ensemble: str = "nvt", pressure_GPa: float = 0.0,
        check_interval: int = 50, warmup_steps: int = 0, energy_lower: float = 0.005, energy_upper: float = 0.05,
        force_lower: float = 0.10, force_upper: float = 1.0, max_force_lower: float | None = None,
        max_force_upper: float | None = None, min_distance: float = 1.5,
    ) -> None:
        self.ranges = _Ranges(
            temperature_K=_range(temperature_K, "temperature_K", "K"),
            amplitude_K=_range(amplitude_K, "amplitude_K", "K"),
            period_ps=_range(period_ps, "period_ps", "ps", strict=True),
            density_scale=_range(density_scale, "density_scale", "relative density", strict=True),
        )
        if ensemble == "npt" and self.ranges.density_scale != (1.0, 1.0):
            raise InvalidInputError("density_scale: a density ramp needs ensemble='nvt' "
                                    "(under 'npt' the barostat sets the volume)")
        # The scalar settings are validated by the Protocol they go into.
        probe = Protocol(temperature_start_K=0.0, temperature_end_K=0.0, steps=steps, timestep_fs=timestep_fs,
                         friction_per_fs=friction_per_fs, ensemble=ensemble, pressure_GPa=pressure_GPa,
                         check_interval=check_interval, warmup_steps=warmup_steps)
        self._fixed: dict[str, Any] = {key: getattr(probe, key) for key in (
            "steps", "timestep_fs", "friction_per_fs", "ensemble", "pressure_GPa", "check_interval",
            "warmup_steps")}
        self.trust = TrustLevels(
            energy_lower=energy_lower, energy_upper=energy_upper, force_lower=force_lower,
            force_upper=force_upper, max_force_lower=max_force_lower, max_force_upper=max_force_upper,
            min_distance=min_distance)

    def settings(self) -> dict[str, Any]:
        """The constructor parameters, resolved (JSON-serialisable)."""
        return {**{k: list(v) for k, v in asdict(self.ranges).items()}, **self._fixed, **self.trust.to_dict()}

    def draw_protocol(self, rng: np.random.Generator) -> Protocol:
        """Random conditions from the configured ranges: T0, T1, Tamp, Tper and the final density
        uniformly, in that order (the density ramp starts at 1)."""
        if not isinstance(rng, np.random.Generator):
            raise InvalidInputError(f"rng must be a numpy.random.Generator, got {rng!r}")
        r = self.ranges
        t0, t1 = (float(rng.uniform(*r.temperature_K)) for _ in range(2))
        return Protocol(
            temperature_start_K=t0, temperature_end_K=t1,
            temperature_amplitude_K=float(rng.uniform(*r.amplitude_K)),
            temperature_period_ps=float(rng.uniform(*r.period_ps)),
            density_start=1.0, density_end=float(rng.uniform(*r.density_scale)), **self._fixed)

    @abc.abstractmethod
    def sample(self, model: Model, start: Atoms, *, seed: int,
               protocol: Protocol | None = None) -> SamplingResult:
        """Run one trajectory of ``model``'s committee-mean dynamics from ``start`` (not modified)
        and judge it with :attr:`trust`. ``seed`` fixes the protocol drawn (unless ``protocol`` is
        given) and the dynamics' random numbers. Raises :class:`InvalidInputError` for bad
        arguments; a trajectory that blows up ends with the ``"unreliable"`` verdict."""

