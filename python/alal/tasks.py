"""Tasks that run in workers: label one structure with the oracle, run one sampler. Top-level
functions of plain arguments, so they pickle for process pools and Dask alike."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from ase import Atoms

from alal.errors import CalculationError, OracleSetupError, UnphysicalStructureError

__all__ = ["LabelOutcome", "label_task", "sample_task"]


@dataclass(frozen=True)
class LabelOutcome:
    """What a labelling task sends back: the label, or the failure kind and reason."""

    id: str
    label: Any = None
    failure: str | None = None
    """``"unphysical"``, ``"calculation"`` or ``"setup"``."""
    reason: str = ""


@functools.lru_cache(maxsize=4)
def _oracle(name: str, params_key: tuple[tuple[str, Any], ...]) -> Any:
    from alal.plugins import oracle_class

    return oracle_class(name)(**dict(params_key))


def _freeze(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items()))


def label_task(oracle: str, params: dict[str, Any], id: str, atoms: Atoms) -> LabelOutcome:
    """Label ``atoms`` with the oracle; failures come back as values (a setup error too, so the
    loop can stop the run with its message)."""
    try:
        return LabelOutcome(id, label=_oracle(oracle, _freeze(params)).label(atoms))
    except UnphysicalStructureError as err:
        return LabelOutcome(id, failure="unphysical", reason=str(err))
    except CalculationError as err:
        return LabelOutcome(id, failure="calculation", reason=str(err))
    except OracleSetupError as err:
        return LabelOutcome(id, failure="setup", reason=str(err))


@functools.lru_cache(maxsize=2)
def _model(path: str, mtime: float, threads: int | None) -> Any:
    from alal.plugins import load_model

    return load_model(path, n_threads=threads)


def sample_task(model_path: str, engine: str, params: dict[str, Any], start: Atoms, seed: int) -> Any:
    """Run one sampler from ``start`` with the committee saved at ``model_path``."""
    from alal.executor import worker_threads
    from alal.plugins.registry import load_plugin

    model = _model(model_path, os.path.getmtime(model_path), worker_threads())
    return load_plugin("engines", engine)(**params).sample(model, start, seed=seed)
