"""Example run configurations shipped with alal (``alal run --example NAME``)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["example_names", "example_path"]


def example_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in files(__name__).iterdir() if p.name.endswith(".toml"))


def example_path(name: str) -> Path:
    path = Path(str(files(__name__) / f"{name}.toml"))
    if not path.is_file():
        from alal.config import ConfigError

        raise ConfigError(f"no example named {name!r} (examples: {', '.join(example_names())})")
    return path
