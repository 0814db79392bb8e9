"""Plugin contracts and their registry.

Models, oracles and engines are found through the entry-point groups ``alal.models``,
``alal.oracles`` and ``alal.engines``; third-party packages register their own there.
"""

from __future__ import annotations

import os
from typing import Any

from alal.errors import ModelFileError, PluginError
from alal.plugins.model import Calibration, FitReport, Labels, Model, Prediction, labels_of
from alal.plugins.engine import Engine, Protocol, SamplingResult, TrustLevels
from alal.plugins.oracle import AseCalculatorOracle, Label, Oracle
from alal.plugins.registry import GROUPS, available, load_plugin

__all__ = [
    "GROUPS",
    "AseCalculatorOracle",
    "Engine",
    "Protocol",
    "SamplingResult",
    "TrustLevels",
    "engine_class",
    "Label",
    "Oracle",
    "oracle_class",
    "Calibration",
    "FitReport",
    "Labels",
    "Model",
    "Prediction",
    "available",
    "labels_of",
    "load_model",
    "load_plugin",
    "model_class",
]


def model_class(name: str) -> type[Model]:
    """The model plugin registered as ``name`` (e.g. ``"ani"``)."""
    cls = load_plugin("models", name)
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise PluginError(f"the model plugin {name!r} does not derive from alal.plugins.Model")
    return cls


def engine_class(name: str) -> type[Engine]:
    """The engine plugin registered as ``name`` (e.g. ``"ase"``)."""
    cls = load_plugin("engines", name)
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise PluginError(f"the engine plugin {name!r} does not derive from alal.plugins.Engine")
    return cls


def oracle_class(name: str) -> type[Oracle]:
    """The oracle plugin registered as ``name`` (e.g. ``"emt"``)."""
    cls = load_plugin("oracles", name)
    if not (isinstance(cls, type) and issubclass(cls, Oracle)):
        raise PluginError(f"the oracle plugin {name!r} does not derive from alal.plugins.Oracle")
    return cls


def load_model(path: str | os.PathLike[str], *, n_threads: int | None = None) -> Model:
    """Load a saved model of any installed kind: the file's metadata names its plugin."""
    from alal.models.file_format import read_header

    header: dict[str, Any] = read_header(path)
    try:
        name = header["model"]
    except KeyError:
        raise ModelFileError(f"{os.fspath(path)}: the metadata does not name the model plugin") from None
    return model_class(str(name)).load(path, n_threads=n_threads)
