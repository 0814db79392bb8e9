"""``alal plugins``: installed models, oracles and engines, with their distributions."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list installed plugins")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from importlib.metadata import entry_points

    from alal.plugins.registry import GROUPS

    for kind, group in GROUPS.items():
        print(f"{kind} ({group}):")
        eps = sorted(entry_points(group=group), key=lambda e: e.name)
        if not eps:
            print("  (none)")
        for ep in eps:
            dist = ep.dist
            origin = f"{dist.name} {dist.version}" if dist is not None else "?"
            print(f"  {ep.name:<12} {ep.value:<40} {origin}")
    return 0
