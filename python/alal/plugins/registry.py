"""Discovery of plugins through entry points, one group per kind.

Lazy and cached: nothing is imported until a plugin is asked for by name. A duplicate name or a
plugin that fails to import warns (listing) or raises a clear error (when asked for by name); an
unknown name raises an error that lists what is installed.
"""

from __future__ import annotations

import functools
import warnings
from importlib.metadata import EntryPoint, entry_points
from typing import Literal

from alal.errors import PluginError

__all__ = ["GROUPS", "Kind", "available", "load_plugin"]

Kind = Literal["models", "oracles", "engines"]

GROUPS: dict[str, str] = {"models": "alal.models", "oracles": "alal.oracles", "engines": "alal.engines"}


def _group(kind: str) -> str:
    try:
        return GROUPS[kind]
    except KeyError:
        raise PluginError(f"unknown plugin kind {kind!r}; kinds are {sorted(GROUPS)}") from None


@functools.cache
def _entry_points(kind: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=_group(kind)):
        if ep.name in found and found[ep.name].value != ep.value:
            warnings.warn(
                f"two {kind} plugins are named {ep.name!r} ({found[ep.name].value} and {ep.value}); "
                f"using the first",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        found.setdefault(ep.name, ep)
    return found


def available(kind: Kind) -> list[str]:
    """Names of the installed plugins of one kind (``"models"``, ``"oracles"``, ``"engines"``)."""
    return sorted(_entry_points(kind))


@functools.cache
def load_plugin(kind: Kind, name: str) -> type:
    """The plugin class registered as ``name`` in the entry-point group of ``kind``."""
    eps = _entry_points(kind)
    if name not in eps:
        installed = ", ".join(sorted(eps)) or "none"
        raise PluginError(f"no {kind[:-1]} plugin named {name!r} is installed (installed: {installed})")
    try:
        return eps[name].load()
    except Exception as err:  # noqa: BLE001 - a third-party plugin can fail in any way
        raise PluginError(f"the {kind[:-1]} plugin {name!r} ({eps[name].value}) failed to load: {err}") from err
