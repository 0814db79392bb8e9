"""``alal export RUN_DIR OUT.extxyz``: the labelled data set as extended XYZ."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a run's labelled data to extxyz")
    p.add_argument("run_dir")
    p.add_argument("output")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from alal.store import Store

    store = Store.open(Path(args.run_dir))
    store.export_extxyz(args.output)
    print(f"wrote {len(store.labelled())} labelled structures to {args.output}")
    return 0
