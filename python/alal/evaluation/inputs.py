"""What ``alal eval`` evaluates: the model file, its oracle, the element and the test set.

A run directory gives all of them (the newest ``models/gen-NNNN/model.safetensors``, the oracle
and elements of its ``config.toml``, its builders for a fresh test set); a model file alone needs
the oracle by name, and takes the element from the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator

from alal.config import BuilderConfig, Config, ConfigError, load_config
from alal.errors import CalculationError, InvalidInputError, LabelError, ModelFileError, UnphysicalStructureError
from alal.plugins import AseCalculatorOracle, Oracle, labels_of, oracle_class

__all__ = ["OracleCalculator", "Target", "load_test_set", "make_oracle", "oracle_factory", "resolve_target"]

log = logging.getLogger(__name__)


@dataclass
class Target:
    """The model to evaluate and where its oracle and outputs come from."""

    model_path: Path
    run_dir: Path | None
    config: Config | None
    oracle_name: str
    oracle_params: dict[str, Any] = field(default_factory=dict)
    output_dir: Path = Path("report")


def _run_dir_of(model_path: Path) -> Path | None:
    """The run directory holding ``models/gen-NNNN/model.safetensors``, if that is where it is."""
    parents = model_path.resolve().parents
    if len(parents) >= 3 and parents[1].name == "models" and (parents[2] / "config.toml").is_file():
        return parents[2]
    return None


def resolve_target(target: str | Path, *, oracle: str | None = None, generation: int | None = None,
                   output: str | Path | None = None) -> Target:
    """A run directory (its newest model, or ``generation``) or a model file.

    Raises :class:`ConfigError` for a directory that is not a run, :class:`ModelFileError` for a
    missing model, :class:`InvalidInputError` for a model file alone without ``oracle``."""
    path = Path(target)
    if not path.exists():
        raise ModelFileError(f"{path}: no such run directory or model file")
    if path.is_dir():
        if not (path / "config.toml").is_file():
            raise ConfigError(f"{path}: not a run directory (no config.toml)")
        models = sorted(path.glob("models/gen-*/model.safetensors"))
        if generation is not None:
            models = [m for m in models if m.parent.name == f"gen-{generation:04d}"]
            if not models:
                raise ModelFileError(f"{path}: no trained model for generation {generation}")
        if not models:
            raise ModelFileError(f"{path}: no trained model yet (models/gen-*/model.safetensors)")
        model_path, run_dir = models[-1], path
    else:
        model_path, run_dir = path, _run_dir_of(path)
    config = load_config(run_dir / "config.toml") if run_dir is not None else None
    if oracle is not None:
        name, params = oracle, {}
        if config is not None and config.oracle.name == oracle:
            params = dict(config.oracle.params)
    elif config is not None:
        name, params = config.oracle.name, dict(config.oracle.params)
    else:
        raise InvalidInputError(f"{model_path} is not inside a run directory: name its oracle with --oracle "
                                "(e.g. --oracle emt)")
    out = Path(output) if output is not None else (run_dir / "report" if run_dir else model_path.parent / "report")
    return Target(model_path, run_dir, config, name, params, out)


class OracleCalculator(Calculator):
    """An ASE calculator over any oracle plugin (``oracle.label``, geometry checks included)."""

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, oracle: Oracle, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.oracle = oracle

    def calculate(self, atoms: Atoms | None = None, properties: list[str] | None = None,
                  system_changes: list[str] = all_changes) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        assert self.atoms is not None
        labels = self.oracle.label(self.atoms).labels
        self.results = {"energy": labels.energy, "free_energy": labels.energy, "forces": labels.forces}
        if labels.stress is not None:
            self.results["stress"] = labels.stress


def oracle_factory(oracle: Oracle) -> Any:
    """A calculator factory for ``oracle``: its own ASE calculator when it wraps one (EMT),
    otherwise :class:`OracleCalculator`."""
    if isinstance(oracle, AseCalculatorOracle):
        return oracle.make_calculator
    return lambda: OracleCalculator(oracle)


def make_oracle(name: str, params: dict[str, Any], element: str) -> Oracle:
    oracle = oracle_class(name)(**params)
    check = getattr(oracle, "check_elements", None)
    if callable(check):
        check([element])
    oracle.check_setup()
    return oracle


def _labelled_copy(atoms: Atoms, oracle: Oracle) -> Atoms:
    label = oracle.label(atoms).labels
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.calc = SinglePointCalculator(out, energy=label.energy, forces=label.forces,
                                     **({"stress": label.stress} if label.stress is not None else {}))
    out.info.update(atoms.info)
    return out


def _label_all(frames: Sequence[Atoms], oracle: Oracle) -> list[Atoms]:
    out = []
    for k, atoms in enumerate(frames):
        try:
            out.append(_labelled_copy(atoms, oracle))
        except (CalculationError, UnphysicalStructureError) as err:  # a setup error stops everything
            log.warning("test structure %d not labelled: %s", k, err)
    return out


def load_test_set(settings: Any, element: str, elements: Sequence[str], oracle: Oracle, oracle_name: str,
                  builders: BuilderConfig | None) -> tuple[list[Atoms], str]:
    """The labelled test set and a description of where it came from.

    ``settings.test_set`` (a file; structures without labels are labelled by the oracle), else
    :func:`alal.testing.emt.emt_aluminium` (``test_set_size`` frames, ``test_set_seed``,
    ``test_set_sizes``) for EMT and aluminium, else ``test_set_size`` structures drawn by the run's
    builders (default builders for a model file alone) with ``test_set_seed``, labelled."""
    if settings.test_set:
        from ase.io import read

        path = Path(settings.test_set)
        try:
            frames = read(path, ":")
        except (OSError, ValueError, KeyError, StopIteration) as err:
            raise InvalidInputError(f"{path}: cannot read the test set ({err})") from err
        frames = frames if isinstance(frames, list) else [frames]
        labelled, unlabelled = [], []
        for k, atoms in enumerate(frames):
            try:
                labels_of(atoms, f"{path} frame {k}")
                labelled.append(atoms)
            except LabelError:
                unlabelled.append(atoms)
        if unlabelled:
            labelled += _label_all(unlabelled, oracle)
        return labelled, f"{path} ({len(frames)} structures, {len(unlabelled)} labelled now by {oracle_name})"
    if oracle_name == "emt" and tuple(elements) == ("Al",) and element == "Al":
        from alal.testing.emt import emt_aluminium

        frames = emt_aluminium(settings.test_set_size, seed=settings.test_set_seed,
                               sizes=tuple(settings.test_set_sizes))
        return frames, (f"emt_aluminium({settings.test_set_size}, seed={settings.test_set_seed}, "
                        f"sizes={tuple(settings.test_set_sizes)})")
    from alal.starts import draw_starts

    cfg = builders or BuilderConfig()
    starts = draw_starts(cfg, tuple(elements), settings.test_set_size, settings.test_set_seed)
    frames = _label_all(starts, oracle)
    return frames, (f"{len(frames)} structures drawn by the builders (seed {settings.test_set_seed}), "
                    f"labelled by {oracle_name}")
