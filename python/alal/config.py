"""Run configuration: TOML into frozen dataclasses, validated at load.

Every error names the key path (``loop.batch_size: expected an integer, got 'eight'``). Plugin
sections are ``{name = "...", params = {...}}``; ``params`` must match the keyword-only
constructor of the installed plugin, so a misspelt parameter is an error at load, not an hour into
the run. Nothing in a config imports code: the registry decides what runs.
"""

from __future__ import annotations

import dataclasses
import inspect
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alal.errors import InvalidInputError

__all__ = ["BuilderConfig", "Config", "ConfigError", "LoopConfig", "PluginConfig", "RunConfig",
           "SelectionConfig", "load_config", "to_toml"]


class ConfigError(InvalidInputError):
    """A configuration that cannot be used; the message starts with the key path."""


@dataclass(frozen=True)
class PluginConfig:
    """A plugin: its entry-point name and the keyword arguments of its constructor."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """Where and how the run executes (settings that do not change results)."""

    directory: str = ""
    """Run directory; empty: ``runs/<config file stem>`` next to the config file."""
    elements: tuple[str, ...] = ("Al",)
    seed: int = 0
    executor: str = "local"
    """``"local"`` (a process pool) or ``"dask://host:port"`` (a Dask distributed scheduler)."""
    workers: int = 2
    """Processes of the local pool."""


@dataclass(frozen=True)
class BuilderConfig:
    """Starting cells of the samplers and of the initial data set."""

    sizes: tuple[int, int] = (16, 128)
    """Atom counts (min, max) of the cells, bounded so that the oracle stays affordable."""
    kinds: dict[str, float] = field(default_factory=lambda: {
        "fcc": 1.0, "bcc": 1.0, "hcp": 1.0, "vacancy": 1.0, "slab": 1.0, "random": 2.0})
    """Relative weights of the kinds of starting cell: fcc, bcc, hcp, sc, diamond (strained and
    rattled crystals), vacancy, interstitial (fcc with one extra atom), slab, random (random
    periodic box, melts quickly)."""
    strain: float = 0.04
    """Largest linear strain of crystals."""
    rattle: float = 0.1
    """Gaussian rattle of crystals, Å."""
    cold_fraction: float = 0.0
    """Share of crystal and vacancy cells left unrattled (strained only): 0 K lattices, whose
    energy–strain curvature (bulk modulus, elastic constants, phonons) thermal frames alone do
    not pin down. A sampler judges such a cell as built (no warm-up): when the committee
    disagrees on it, the cold cell itself is the candidate."""
    volume_per_atom: tuple[float, float] = (14.0, 22.0)
    """Range of the volume per atom of random boxes, Å³."""
    min_distance: float = 2.0
    """Minimum distance between atoms of random boxes, Å."""


@dataclass(frozen=True)
class SelectionConfig:
    """How a batch is chosen among a generation's candidates."""

    cost_exponent: float = 3.0
    """Oracle cost ∝ N^cost_exponent (3: DFT)."""
    diversity: float = 1.0
    """Weight of the distance (in mean-descriptor space) to what is already selected, relative to
    the uncertainty; 0 picks by uncertainty per cost only."""


@dataclass(frozen=True)
class LoopConfig:
    """The active-learning loop."""

    max_generations: int = 12
    initial_structures: int = 16
    """Labelled structures the run starts from when its data set is empty."""
    samplers: int = 12
    """Trajectories per generation."""
    batch_size: int = 12
    """Labels per generation (at most)."""
    oracle_budget: int = 400
    """Oracle calls in the whole run (labels and failures; imported seed data does not count)."""
    oracle_budget_hours: float = 0.0
    """Oracle CPU time of the whole run, hours (wall time of each call × the threads a worker
    has); 0: no limit."""
    seed_data: tuple[str, ...] = ()
    """Labelled files (extxyz, ASE db, anything ASE reads) imported when the run starts with an
    empty data set; relative paths are relative to the config file. Without them the run labels
    ``initial_structures`` random starting cells."""
    validation_fraction: float = 0.1
    """Share of the labelled data held out from training (by content hash, stable over the run)."""
    target_force_rmse: float = 0.05
    """Validation force error (eV/Å) below which the run may stop."""
    completion_fraction: float = 0.95
    """Share of samplers that must run to the end without a candidate for the run to stop."""
    fine_tune: bool = True
    """Start each generation's training from the previous committee."""


@dataclass(frozen=True)
class Config:
    """A whole run."""

    run: RunConfig = field(default_factory=RunConfig)
    oracle: PluginConfig = field(default_factory=lambda: PluginConfig("emt"))
    model: PluginConfig = field(default_factory=lambda: PluginConfig("ani"))
    engine: PluginConfig = field(default_factory=lambda: PluginConfig("ase"))
    builders: BuilderConfig = field(default_factory=BuilderConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)


# -- parsing -------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {value!r}")
        return _build(tp, value, path)
    if tp is Any:
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {value!r}")
        _, vt = typing.get_args(tp)
        return {str(k): _convert(v, vt, f"{path}.{k}") for k, v in value.items()}
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{k}]") for k, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{path}[{k}]") for k, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {tp}")  # pragma: no cover - a bug in this module


def _build(cls: type, data: dict[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"{where}{unknown[0]}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {k: _convert(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    return cls(**kwargs)


def _check_plugin(kind: str, section: str, plugin: PluginConfig) -> None:
    from alal.errors import PluginError
    from alal.plugins.registry import load_plugin

    try:
        cls = load_plugin(kind, plugin.name)  # type: ignore[arg-type]
    except PluginError as err:
        raise ConfigError(f"{section}.name: {err}") from err
    params = inspect.signature(cls.__init__).parameters
    accepted = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    for key in plugin.params:
        if key not in accepted:
            raise ConfigError(f"{section}.params.{key}: not a parameter of the {plugin.name!r} {kind[:-1]} "
                              f"(parameters: {', '.join(sorted(accepted))})")


def _check_values(cfg: Config) -> None:
    def positive(path: str, value: float, allow_zero: bool = False) -> None:
        if value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(f"{path}: must be {'non-negative' if allow_zero else 'positive'}, got {value}")

    r, b, lp, s = cfg.run, cfg.builders, cfg.loop, cfg.selection
    positive("run.workers", r.workers)
    if not (r.executor == "local" or r.executor.startswith("dask://") or r.executor.startswith("tcp://")):
        raise ConfigError(f"run.executor: 'local' or 'dask://host:port', got {r.executor!r}")
    if not r.elements:
        raise ConfigError("run.elements: at least one element")
    from ase.data import atomic_numbers

    for e in r.elements:
        if e not in atomic_numbers:
            raise ConfigError(f"run.elements: unknown element {e!r}")
    if not 1 <= b.sizes[0] <= b.sizes[1]:
        raise ConfigError(f"builders.sizes: need 1 <= min <= max, got {list(b.sizes)}")
    known = {"fcc", "bcc", "hcp", "sc", "diamond", "vacancy", "interstitial", "slab", "random"}
    for k, w in b.kinds.items():
        if k not in known:
            raise ConfigError(f"builders.kinds.{k}: unknown kind (known: {', '.join(sorted(known))})")
        positive(f"builders.kinds.{k}", w, allow_zero=True)
    if not any(b.kinds.values()):
        raise ConfigError("builders.kinds: at least one kind needs a positive weight")
    if not 0 < b.volume_per_atom[0] <= b.volume_per_atom[1]:
        raise ConfigError(f"builders.volume_per_atom: need 0 < min <= max, got {list(b.volume_per_atom)}")
    positive("builders.min_distance", b.min_distance)
    positive("builders.rattle", b.rattle, allow_zero=True)
    if not 0 <= b.cold_fraction <= 1:
        raise ConfigError(f"builders.cold_fraction: must be in [0, 1], got {b.cold_fraction}")
    positive("builders.strain", b.strain, allow_zero=True)
    for name in ("max_generations", "initial_structures", "samplers", "batch_size", "oracle_budget"):
        positive(f"loop.{name}", getattr(lp, name))
    if not 0 <= lp.validation_fraction < 1:
        raise ConfigError(f"loop.validation_fraction: must be in [0, 1), got {lp.validation_fraction}")
    if not 0 < lp.completion_fraction <= 1:
        raise ConfigError(f"loop.completion_fraction: must be in (0, 1], got {lp.completion_fraction}")
    positive("loop.target_force_rmse", lp.target_force_rmse)
    positive("loop.oracle_budget_hours", lp.oracle_budget_hours, allow_zero=True)
    positive("selection.cost_exponent", s.cost_exponent, allow_zero=True)
    positive("selection.diversity", s.diversity, allow_zero=True)


def parse_config(data: dict[str, Any], *, check_plugins: bool = True) -> Config:
    """A validated :class:`Config` from a parsed TOML document."""
    cfg = _build(Config, data, "")
    _check_values(cfg)
    if check_plugins:
        for kind, section in (("oracles", "oracle"), ("models", "model"), ("engines", "engine")):
            _check_plugin(kind, section, getattr(cfg, section))
    return cfg


def load_config(path: str | Path, *, check_plugins: bool = True) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config ({err.strerror})") from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err
    try:
        return parse_config(data, check_plugins=check_plugins)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain data (lists instead of tuples) of a config, with every default filled in."""
    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x
    return plain(dataclasses.asdict(cfg))


def to_toml(cfg: Config) -> str:
    """The config as TOML, every default written out (the frozen copy in the run directory)."""
    import tomli_w

    return tomli_w.dumps(to_dict(cfg))
