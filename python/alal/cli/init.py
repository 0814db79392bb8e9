"""``alal init [PATH]``: write a commented example config to edit."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="write a commented example config")
    p.add_argument("path", nargs="?", default="alal.toml")
    p.add_argument("--example", default="aluminium")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from alal.config import ConfigError
    from alal.examples import example_path

    path = Path(args.path)
    if path.exists() and not args.force:
        raise ConfigError(f"{path} exists (use --force to overwrite)")
    shutil.copyfile(example_path(args.example), path)
    print(f"wrote {path}; edit it, then: alal run {path}")
    return 0
