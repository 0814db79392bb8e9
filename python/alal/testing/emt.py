"""A reproducible, varied set of aluminium configurations labelled by ASE's EMT.

It stands in for an ANI-Al-like training distribution in tests and examples: strained and rattled
fcc, bcc and hcp crystals, fcc with vacancies, (111) and (100) slabs, and liquid-like random boxes,
each heated by a short Langevin run and labelled by EMT (energy in eV, forces in eV/Å, stress in
eV/Å³). EMT is exact and fast, so the labels can always be checked against a fresh calculation.

Example::

    frames = emt_aluminium(50, seed=0)
    frames[0].get_potential_energy(), frames[0].info["kind"], frames[0].info["temperature_K"]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary

try:  # ASE >= 3.29; MaxwellBoltzmannDistribution is deprecated there
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    def thermalize_momenta(atoms: Atoms, temperature_K: float, *, rng: np.random.Generator) -> None:
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)


from alal.builders import crystal, min_distance, random_box, slab, vacancies
from alal.errors import InvalidInputError, NumericalError

__all__ = ["KINDS", "emt_aluminium"]

KINDS = ("fcc", "bcc", "hcp", "vacancy", "slab111", "slab100", "liquid")

TIMESTEP_FS = 2.0
FRICTION_PER_FS = 0.02
MD_STEPS = (20, 40)  # inclusive range of Langevin steps per structure
MAX_STRAIN = 0.03  # components of the random symmetric strain lie in [-MAX_STRAIN, MAX_STRAIN]
MAX_RATTLE = 0.1  # Å, largest Gaussian rattle of the crystals
LIQUID_VOLUME = 17.5  # Å³ per atom
LIQUID_MIN_DISTANCE = 2.0  # Å, for placing the random box
LIQUID_SETTLE_STEPS = 15  # strongly damped steps that relax the random box before the MD
SMALLEST_DISTANCE = 1.5  # Å, frames with a shorter distance are redrawn
MAX_ATTEMPTS = 10


def _random_strain(rng: np.random.Generator) -> np.ndarray:
    e = rng.uniform(-MAX_STRAIN, MAX_STRAIN, size=(3, 3))
    return np.eye(3) + (e + e.T) / 2


def _sized_crystal(structure: str, sizes: tuple[int, int], extra: int, rng: np.random.Generator) -> Atoms:
    """A strained, rattled Al crystal with between ``sizes[0] + extra`` and ``sizes[1]`` atoms."""
    lo, hi = sizes
    target = int(rng.integers(min(lo + extra, hi), hi + 1))
    strain, rattle = _random_strain(rng), float(rng.uniform(0.0, MAX_RATTLE))
    atoms = crystal("Al", structure, n_atoms=target, strain=strain, rattle=rattle, rng=rng)
    if len(atoms) < lo + extra:  # no repetition between lo and the target: take the largest one
        atoms = crystal("Al", structure, n_atoms=hi, strain=strain, rattle=rattle, rng=rng)
    if len(atoms) < lo + extra:
        raise InvalidInputError(f"sizes={sizes}: no near-cubic Al {structure} cell has that many atoms")
    return atoms


def _bulk(structure: str) -> Callable[[tuple[int, int], np.random.Generator], Atoms]:
    return lambda sizes, rng: _sized_crystal(structure, sizes, 0, rng)


def _vacancy(sizes: tuple[int, int], rng: np.random.Generator) -> Atoms:
    n = int(rng.integers(1, 3))
    return vacancies(_sized_crystal("fcc", sizes, n, rng), n, rng=rng)


def _slab(facet: str) -> Callable[[tuple[int, int], np.random.Generator], Atoms]:
    def build(sizes: tuple[int, int], rng: np.random.Generator) -> Atoms:
        lo, hi = sizes
        shapes = [(nx, ny, n) for nx in range(2, 7) for ny in (nx, nx + 1) for n in range(3, 9)]
        counts = np.array([nx * ny * n for nx, ny, n in shapes])
        fits = np.flatnonzero((counts >= lo) & (counts <= hi))
        if fits.size == 0:  # a bit under the range rather than over it
            under = np.flatnonzero(counts <= hi)
            fits = under[counts[under] == counts[under].max()] if under.size else np.array([counts.argmin()])
        nx, ny, layers = shapes[int(rng.choice(fits))]
        atoms = slab("Al", facet, layers=layers, size=(nx, ny))
        atoms.positions = atoms.positions + rng.normal(0.0, rng.uniform(0.0, MAX_RATTLE), atoms.positions.shape)
        return atoms

    return build


def _liquid(sizes: tuple[int, int], rng: np.random.Generator) -> Atoms:
    n = int(rng.integers(sizes[0], sizes[1] + 1))
    return random_box("Al", n, volume_per_atom=LIQUID_VOLUME, min_distance=LIQUID_MIN_DISTANCE, rng=rng)


_BUILDERS: dict[str, Callable[[tuple[int, int], np.random.Generator], Atoms]] = {
    "fcc": _bulk("fcc"),
    "bcc": _bulk("bcc"),
    "hcp": _bulk("hcp"),
    "vacancy": _vacancy,
    "slab111": _slab("111"),
    "slab100": _slab("100"),
    "liquid": _liquid,
}


def _langevin(
    atoms: Atoms, temperature_K: float, steps: int, friction_per_fs: float, rng: np.random.Generator
) -> None:
    """``steps`` Langevin steps of ``atoms`` (with its calculator), from Maxwell–Boltzmann velocities."""
    thermalize_momenta(atoms, temperature_K, rng=rng)
    Stationary(atoms)
    dyn = Langevin(
        atoms,
        timestep=TIMESTEP_FS * units.fs,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )
    dyn.run(steps)


def _labelled(atoms: Atoms, kind: str, temperature_K: float) -> Atoms:
    """A bare copy of ``atoms`` with its EMT energy, forces and stress in a SinglePointCalculator."""
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.calc = EMT()
    energy, forces, stress = out.get_potential_energy(), out.get_forces(), out.get_stress()
    out.calc = SinglePointCalculator(out, energy=energy, forces=forces, stress=stress)
    out.info.update(kind=kind, temperature_K=float(temperature_K))
    return out


def _one(
    kind: str, sizes: tuple[int, int], temperatures: tuple[float, float], rng: np.random.Generator
) -> Atoms:
    for _ in range(MAX_ATTEMPTS):
        atoms = _BUILDERS[kind](sizes, rng)
        atoms.calc = EMT()
        temperature_K = float(rng.uniform(*temperatures))
        if kind == "liquid":  # relax the random box's closest contacts before the MD proper
            _langevin(atoms, temperature_K, LIQUID_SETTLE_STEPS, 5 * FRICTION_PER_FS, rng)
        _langevin(atoms, temperature_K, int(rng.integers(MD_STEPS[0], MD_STEPS[1] + 1)), FRICTION_PER_FS, rng)
        if min_distance(atoms) >= SMALLEST_DISTANCE:
            return _labelled(atoms, kind, temperature_K)
    raise NumericalError(
        f"emt_aluminium: {MAX_ATTEMPTS} {kind} frames in a row had atoms closer than {SMALLEST_DISTANCE} Å"
    )


def _pair(value: Sequence[float], name: str, *, integer: bool) -> tuple[float, float]:
    """``(low, high)`` with ``0 <= low <= high`` (``integer``: whole numbers ``>= 1``)."""
    try:
        lo, hi = value
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{name} must be a pair (low, high), got {value!r}") from err
    allowed = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    numbers = all(isinstance(v, allowed) and not isinstance(v, (bool, np.bool_)) for v in (lo, hi))
    if not numbers or not (np.isfinite([lo, hi]).all() and (1 if integer else 0) <= lo <= hi):
        what = "integers with 1 <= low" if integer else "finite numbers with 0 <= low"
        raise InvalidInputError(f"{name} must be a pair (low, high) of {what} <= high, got {value!r}")
    return lo, hi


def emt_aluminium(
    n_structures: int,
    *,
    seed: int,
    sizes: tuple[int, int] = (32, 108),
    temperatures: tuple[float, float] = (300.0, 2000.0),
) -> list[Atoms]:
    """``n_structures`` EMT-labelled Al configurations, the same for the same arguments.

    Kinds (:data:`KINDS`) come in shuffled rounds, so every kind appears once in each run of seven:
    ``fcc``, ``bcc``, ``hcp`` (random symmetric strain up to ±3 %, Gaussian rattle up to 0.1 Å;
    bcc and hcp at fcc's volume per atom), ``vacancy`` (fcc less 1–2 atoms), ``slab111`` and
    ``slab100`` (periodic cell, 6 Å of vacuum on each side), ``liquid`` (random box at 17.5 Å³/atom,
    first relaxed by 15 damped steps). Each is then run for 20–40 Langevin steps (2 fs, friction
    0.02 fs⁻¹) at a temperature drawn uniformly from ``temperatures`` (K), from Maxwell–Boltzmann
    velocities; frames with two atoms closer than 1.5 Å are redrawn.

    Each frame carries a :class:`~ase.calculators.singlepoint.SinglePointCalculator` with its EMT
    energy (eV), forces (eV/Å) and stress (eV/Å³, Voigt order), and ``info["kind"]`` and
    ``info["temperature_K"]``. Frame ``k`` depends only on ``seed`` and ``k``, so a shorter list is a
    prefix of a longer one.

    Args:
        n_structures: number of frames (>= 0).
        seed: non-negative integer seed.
        sizes: (smallest, largest) number of atoms; slabs may fall a little under the smallest when
            no slab shape fits.
        temperatures: (lowest, highest) MD temperature, K.
    """
    if isinstance(n_structures, bool) or not isinstance(n_structures, (int, np.integer)) or n_structures < 0:
        raise InvalidInputError(f"n_structures must be a non-negative integer, got {n_structures!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}")
    lo, hi = _pair(sizes, "sizes", integer=True)
    size_range = (int(lo), int(hi))
    t_lo, t_hi = _pair(temperatures, "temperatures", integer=False)
    temperature_range = (float(t_lo), float(t_hi))
    order = np.random.default_rng(np.random.SeedSequence(seed))
    kinds: list[str] = []
    while len(kinds) < n_structures:
        kinds.extend(KINDS[int(k)] for k in order.permutation(len(KINDS)))
    streams = np.random.SeedSequence(seed).spawn(int(n_structures))
    return [
        _one(kind, size_range, temperature_range, np.random.default_rng(stream))
        for kind, stream in zip(kinds, streams)
    ]
