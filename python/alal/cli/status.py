"""``alal status RUN_DIR``: generation, data, errors, uncertainty, task states."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="summarise a run directory")
    p.add_argument("run_dir")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import json

    from alal.config import ConfigError
    from alal.store import Store

    directory = Path(args.run_dir)
    if not (directory / "config.toml").is_file():
        raise ConfigError(f"{directory}: not a run directory (no config.toml)")
    store = Store.open(directory)
    counts = store.counts()
    print(f"run {directory}")
    print("tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    log = directory / "log.jsonl"
    lines = [json.loads(s) for s in log.read_text().splitlines() if s.strip()] if log.is_file() else []
    print(f"generations completed: {max(len(lines) - 1, 0)}")
    for h in lines:
        fit = h.get("fit", {})
        err = fit.get("valid_errors", {})
        parts = [f"gen {h['generation']:>3}", f"labelled {h.get('n_labelled', '?'):>5}"]
        if err:
            parts.append(f"force RMSE {err.get('force_rmse', float('nan')):.4f} eV/Å")
            parts.append(f"energy RMSE {1e3 * err.get('energy_rmse', float('nan')):.2f} meV/atom")
        if "samplers" in h:
            parts.append(f"samplers {h['samplers']}")
        if "selected" in h:
            parts.append(f"selected {h['selected']}/{h.get('candidates', 0)}")
        if "stop" in h:
            parts.append(f"STOP: {h['stop']}")
        print("  " + ", ".join(parts))
    return 0
