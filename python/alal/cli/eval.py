"""``alal eval RUN_DIR`` or ``alal eval MODEL_FILE --oracle emt``: judge a potential on physical
properties against its oracle; writes ``report/eval.md``, ``eval.html``, ``eval.json`` and PNGs."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register"]

_OPTIONS = (  # (flag, setting, type, help)
    ("--defect-atoms", "defect_atoms", int, "atoms of the vacancy/interstitial supercell (default 256)"),
    ("--slab-layers", "slab_layers", int, "layers of the surface slabs (default 9)"),
    ("--phonon-supercell", "phonon_supercell", int, "repetitions of the primitive cell for phonons (default 4)"),
    ("--liquid-atoms", "liquid_atoms", int, "atoms of the liquid (default 256)"),
    ("--liquid-ps", "liquid_sampling_ps", float, "sampled liquid MD, ps (default 5, after 3 ps of equilibration)"),
    ("--nve-atoms", "nve_atoms", int, "atoms of the NVE drift run (default 500)"),
    ("--nve-ps", "nve_ps", float, "length of the NVE run, ps (default 2)"),
    ("--hot-atoms", "hot_atoms", int, "atoms of the 2000 K run (default 108)"),
    ("--hot-ps", "hot_ps", float, "length of the 2000 K run, ps (default 20)"),
    ("--test-set-size", "test_set_size", int, "structures of a fresh test set (default 50)"),
)


def register(sub: argparse._SubParsersAction) -> None:
    from alal.evaluation.settings import PROPERTY_NAMES

    p = sub.add_parser("eval", help="evaluate a potential on physical properties against its oracle",
                       description=__doc__)
    p.add_argument("target", help="a run directory (its newest model) or a model file")
    p.add_argument("--oracle", help="oracle plugin name (needed for a model file outside a run directory)")
    p.add_argument("--element", help="element of the crystals (default: the model's first element)")
    p.add_argument("--structure", help="ground-state structure (default: the element's reference in ASE)")
    p.add_argument("--generation", type=int, help="evaluate this generation of a run (default: the newest)")
    p.add_argument("--only", help=f"comma-separated properties to compute ({', '.join(PROPERTY_NAMES)})")
    p.add_argument("--skip", help="comma-separated properties to leave out")
    p.add_argument("--quick", action="store_true", help="small cells and short MD: a smoke test, not a verdict")
    p.add_argument("--test-set", help="labelled test structures (extxyz, ASE db...); unlabelled ones are labelled")
    p.add_argument("--oracle-results", metavar="EVAL_JSON",
                   help="reuse the oracle side of a previous eval.json made with the same settings")
    for flag, _, tp, text in _OPTIONS:
        p.add_argument(flag, type=tp, help=text)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any other setting of alal.evaluation.EvalSettings (repeatable)")
    p.add_argument("--output", help="report directory (default: RUN_DIR/report, or report/ beside the model)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (eval.json is always written)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def _settings(args: argparse.Namespace) -> object:
    from alal.evaluation.settings import QUICK, EvalSettings, parse_assignment

    settings = QUICK if args.quick else EvalSettings()
    changes = {name: getattr(args, flag.lstrip("-").replace("-", "_")) for flag, name, _, _ in _OPTIONS}
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.structure:
        changes["structure"] = args.structure
    if args.test_set:
        changes["test_set"] = args.test_set
    for text in args.set:
        name, value = parse_assignment(text)
        changes[name] = value
    return settings.replace(**changes)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alal.errors import InvalidInputError
    from alal.evaluation.inputs import load_test_set, make_oracle, oracle_factory, resolve_target
    from alal.evaluation.report import format_table, write_report
    from alal.evaluation.runner import evaluate, select_properties
    from alal.plugins import load_model

    names = select_properties(args.only, args.skip)
    settings = _settings(args)
    target = resolve_target(args.target, oracle=args.oracle, generation=args.generation, output=args.output)
    model = load_model(target.model_path)
    element = args.element or model.elements[0]
    if element not in model.elements:
        raise InvalidInputError(f"the model knows {', '.join(model.elements)}, not {element}")
    oracle = make_oracle(target.oracle_name, target.oracle_params, element)
    previous = None
    if args.oracle_results:
        try:
            previous = json.loads(Path(args.oracle_results).read_text())
        except (OSError, ValueError) as err:
            raise InvalidInputError(f"{args.oracle_results}: cannot read a previous eval.json ({err})") from err
    elements = target.config.run.elements if target.config else model.elements
    builders = target.config.builders if target.config else None
    print(f"alal eval: {target.model_path} against {target.oracle_name}, {element}; "
          f"{', '.join(names)}", file=sys.stderr)
    ev = evaluate(model.calculator, oracle_factory(oracle), element, settings, properties=names,
                  test_frames=lambda: load_test_set(settings, element, elements, oracle, target.oracle_name, builders),
                  previous=previous, model_label=str(target.model_path), oracle_label=target.oracle_name,
                  progress=not args.no_progress)
    paths = write_report(ev, target.output_dir)
    if args.json:
        print(paths["json"].read_text())
    else:
        header, cells = format_table(ev.rows())
        widths = [max(len(h), *(len(c[k]) for c in cells)) if cells else len(h) for k, h in enumerate(header)]
        for row in [header, *cells]:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        for name, out in ev.outcomes.items():
            if name == "test_set" and out.model is not None:
                print(f"test set ({out.model.source}): " + "; ".join(
                    f"{q.label} {q.value:.4g} {q.unit}".rstrip() for q in out.model.quantities()))
            for side, message in out.errors.items():
                print(f"{name} ({side}) failed: {message}")
            if out.not_applicable:
                print(f"{name}: not applicable ({out.not_applicable})")
    print(f"report: {paths['md']}, {paths['html']}, {paths['json']} ({ev.seconds:.0f} s)", file=sys.stderr)
    return 0
