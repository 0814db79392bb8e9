"""``alal run CONFIG | RUN_DIR`` and ``alal run --example NAME``."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run (or resume) an active-learning run")
    p.add_argument("target", nargs="?", help="a config file (TOML) or an existing run directory")
    p.add_argument("--example", help="run a shipped example config (e.g. aluminium)")
    p.add_argument("--directory", help="run directory (default: from the config, or runs/<name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import dataclasses

    from alal.config import ConfigError, load_config
    from alal.loop import Run, resolve_run

    config_path = None
    if args.example:
        from alal.examples import example_path

        config_path = example_path(args.example)
        cfg = load_config(config_path)
        directory = Path(args.directory or Path("runs") / args.example)
    elif args.target:
        cfg, directory = resolve_run(args.target)
        config_path = Path(args.target) if Path(args.target).is_file() else None
        if args.directory:
            directory = Path(args.directory)
    else:
        raise ConfigError("give a config file, a run directory or --example NAME")
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, directory=str(directory)))
    print(f"alal run: {directory} (oracle {cfg.oracle.name}, model {cfg.model.name}, engine {cfg.engine.name})")
    summary = Run(cfg, directory, progress=not args.no_progress, config_path=config_path).execute()
    rmse = "n/a" if summary.valid_force_rmse is None else f"{summary.valid_force_rmse:.4f} eV/Å"
    print(f"stopped: {summary.stop_reason} after {summary.generations} generation(s); "
          f"{summary.labelled} labelled, {summary.failed} failed; validation force RMSE {rmse}")
    print(f"potential: {summary.model_path}")
    print(f"data:      {directory / 'data.db'}  (alal export {directory} data.extxyz)")
    print(f"plots:     {directory / 'report'}")
    return 0
