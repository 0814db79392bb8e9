"""The ``alal`` command: ``run``, ``status``, ``export``, ``init``, ``plugins`` (one module each)."""

from __future__ import annotations

import argparse
import logging
import sys

from alal.errors import AlalError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from alal.cli import eval as eval_, export, init, plugins, run, status

    parser = argparse.ArgumentParser(prog="alal", description="Active learning of interatomic potentials.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (run, status, export, init, plugins, eval_):
        module.register(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except AlalError as err:
        print(f"alal {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"alal {args.command}: interrupted; `alal run` on the run directory resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
