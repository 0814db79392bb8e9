"""Starting cells for samplers and for the initial data set, drawn from the run's builder config."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from alal import builders
from alal.config import BuilderConfig
from alal.errors import InvalidInputError

__all__ = ["draw_start", "draw_starts"]

_CRYSTALS = ("fcc", "bcc", "hcp", "sc", "diamond")


def _substitute(atoms: Atoms, elements: tuple[str, ...], rng: np.random.Generator) -> Atoms:
    """Random composition over ``elements`` (a single element: unchanged)."""
    if len(elements) > 1:
        atoms.symbols = rng.choice(list(elements), size=len(atoms))
    return atoms


def _slab(symbol: str, lo: int, hi: int, rng: np.random.Generator) -> Atoms:
    facet = str(rng.choice(["100", "111"]))
    options = [(layers, (nx, ny)) for layers in (3, 4, 5) for nx, ny in ((2, 2), (3, 2), (3, 3), (4, 4))
               if lo <= layers * nx * ny <= hi]
    layers, size = options[int(rng.integers(len(options)))] if options else (3, (2, 2))
    return builders.slab(symbol, facet, layers=layers, size=size, vacuum=6.0)


def draw_start(cfg: BuilderConfig, elements: tuple[str, ...], rng: np.random.Generator) -> Atoms:
    """One starting cell: its kind drawn by the configured weights, its size in ``cfg.sizes``;
    ``atoms.info["builder"]`` names the kind, and ``atoms.info["cold"]`` is true for an unrattled
    (strained) crystal or vacancy cell (``cfg.cold_fraction``), which samplers judge as built."""
    kinds = [k for k, w in cfg.kinds.items() if w > 0]
    weights = np.array([cfg.kinds[k] for k in kinds], dtype=float)
    kind = str(rng.choice(kinds, p=weights / weights.sum()))
    lo, hi = cfg.sizes
    target = int(rng.integers(lo, hi + 1))
    symbol = str(rng.choice(list(elements)))
    strain = np.eye(3) + rng.uniform(-cfg.strain, cfg.strain, size=(3, 3)) * np.tri(3).T
    cold = False
    if kind in _CRYSTALS or kind == "vacancy":
        structure = "fcc" if kind == "vacancy" else kind
        # Drawn only when asked for, so that configs without cold cells keep their random stream.
        cold = cfg.cold_fraction > 0 and bool(rng.random() < cfg.cold_fraction)
        rattle = 0.0 if cold else cfg.rattle
        atoms = builders.crystal(symbol, structure, n_atoms=target, strain=strain, rattle=rattle, rng=rng)
        if kind == "vacancy" and len(atoms) > 2:
            atoms = builders.vacancies(atoms, int(rng.integers(1, 3)), rng=rng)
    elif kind == "interstitial":
        atoms = builders.crystal(symbol, "fcc", n_atoms=max(target - 1, 1), strain=strain, rattle=cfg.rattle, rng=rng)
        atoms = builders.interstitials(atoms, 1, rng=rng)
    elif kind == "slab":
        atoms = _slab(symbol, lo, hi, rng)
        atoms.rattle(cfg.rattle, seed=int(rng.integers(2**31)))
    elif kind == "random":
        v = float(rng.uniform(*cfg.volume_per_atom))
        atoms = builders.random_box(symbol, target, volume_per_atom=v, min_distance=cfg.min_distance, rng=rng)
    else:  # pragma: no cover - the config refuses unknown kinds
        raise InvalidInputError(f"unknown builder kind {kind!r}")
    atoms = _substitute(atoms, elements, rng)
    atoms.info["builder"] = kind
    if cold:
        atoms.info["cold"] = True
    return atoms


def draw_starts(cfg: BuilderConfig, elements: tuple[str, ...], n: int, seed: int | list[int]) -> list[Atoms]:
    """``n`` starting cells from one seed (reproducible)."""
    rng = np.random.default_rng(seed)
    return [draw_start(cfg, elements, rng) for _ in range(n)]
