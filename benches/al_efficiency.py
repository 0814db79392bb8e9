"""Active learning vs random MD sampling at the same oracle budget (EMT aluminium).

Both start from the same random initial set and the same run config (builders, protocol ranges,
committee settings). The active-learning curve is the real loop (`alal.loop.Run`): after each
generation, that generation's committee is evaluated on an independent EMT test set. The random
curve labels, for the same numbers of labels, frames drawn at random from EMT-driven Langevin
trajectories under protocols drawn the same way (the true potential drives them: a best case for
random sampling), and trains the same committee on them (fine-tuned from one size to the next, like
the loop). Reported: force RMSE (eV/Å) on the test set against labels used, and the number of labels
each needs to reach 0.05 eV/Å.

    python benches/al_efficiency.py            # the example config's loop (tens of minutes on 2 cores)
    python benches/al_efficiency.py --quick    # tiny settings, a few minutes, to check the script
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.units import fs

from alal.config import load_config, parse_config, to_dict
from alal.examples import example_path
from alal.geometry import closest_pair
from alal.loop import Run
from alal.plugins import engine_class, labels_of, load_model, model_class
from alal.plugins.oracle import Label  # noqa: F401  (documents what the store keeps)
from alal.starts import draw_starts
from alal.testing.emt import emt_aluminium

HERE = Path(__file__).resolve().parent
TARGET = 0.05


def test_rmse(model, test) -> float:
    preds = model.predict(test, forces_std=False)
    err = np.concatenate([(p.forces - labels_of(a).forces).ravel() for p, a in zip(preds, test)])
    return float(np.sqrt(np.mean(err**2)))


def active_learning(cfg, run_dir: Path, test) -> list[tuple[int, float]]:
    Run(cfg, run_dir, progress=False).execute()
    history = {h["generation"]: h for h in (json.loads(s) for s in (run_dir / "log.jsonl").read_text().splitlines())}
    curve = []
    for path in sorted(run_dir.glob("models/gen-*/model.safetensors")):
        g = int(path.parent.name.split("-")[1])
        curve.append((int(history[g]["n_labelled"]), test_rmse(load_model(path), test)))
    return curve


def random_frames(cfg, n: int, seed: int) -> list:
    """``n`` EMT-labelled frames, one per EMT Langevin trajectory from the config's starting cells."""
    engine = engine_class(cfg.engine.name)(**cfg.engine.params)
    rng = np.random.default_rng(seed)
    starts = draw_starts(cfg.builders, tuple(cfg.run.elements), 3 * n, [seed, 1])
    frames = []
    for start in starts:
        if len(frames) == n:
            break
        protocol = engine.draw_protocol(rng)
        atoms = start.copy()
        atoms.calc = EMT()
        steps = int(rng.integers(0, protocol.steps + 1))
        t_ps = steps * protocol.timestep_fs / 1000
        dyn = Langevin(atoms, timestep=protocol.timestep_fs * fs, temperature_K=protocol.temperature_K(t_ps),
                       friction=protocol.friction_per_fs / fs, fixcm=False, rng=rng)
        if steps:
            dyn.run(steps)
        from ase.calculators.singlepoint import SinglePointCalculator

        if closest_pair(atoms, engine.trust.min_distance) is not None:
            continue  # what the oracle would refuse (and the loop's samplers discard)
        frame = atoms.copy()
        frame.calc = SinglePointCalculator(frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces(),
                                           stress=atoms.get_stress())
        frames.append(frame)
    return frames


def random_sampling(cfg, sizes: list[int], test, seed: int) -> list[tuple[int, float]]:
    frames = random_frames(cfg, max(sizes), seed)
    cls = model_class(cfg.model.name)
    curve, previous = [], None
    for n in sizes:
        data = frames[:n]
        k = max(1, int(round(cfg.loop.validation_fraction * n)))
        model = cls(**{"elements": tuple(cfg.run.elements), "seed": cfg.run.seed, "progress": False,
                       **cfg.model.params})
        model.fit(data[k:], data[:k], warm_start=previous if cfg.loop.fine_tune else None)
        previous = model
        curve.append((n, test_rmse(model, test)))
    return curve


def labels_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((n for n, rmse in curve if rmse <= target), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("--work-dir", type=Path, default=HERE / ".cache" / "al_efficiency")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = load_config(example_path("aluminium"))
    n_test = 50
    if args.quick:
        data = to_dict(cfg)
        data["model"]["params"].update(n_members=3, hidden=[16, 16], max_epochs=5, patience=3)
        data["engine"]["params"].update(steps=40, check_interval=10)
        data["loop"].update(max_generations=2, initial_structures=6, samplers=3, batch_size=3)
        data["builders"]["sizes"] = [8, 24]
        cfg = parse_config(data)
        n_test = 8
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, directory=""))
    test = emt_aluminium(n_test, seed=1, sizes=(32, 108))
    run_dir = args.work_dir / ("quick" if args.quick else "full")
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    al = active_learning(cfg, run_dir, test)
    rnd = random_sampling(cfg, [n for n, _ in al], test, seed=cfg.run.seed + 1000)
    result = {"quick": args.quick, "config": to_dict(cfg), "active_learning": al, "random": rnd,
              "labels_to_reach_target": {"active_learning": labels_to_reach(al, TARGET),
                                         "random": labels_to_reach(rnd, TARGET)},
              "target_force_rmse": TARGET, "test_structures": n_test, "seconds": time.perf_counter() - t0}
    suffix = "_quick" if args.quick else ""
    (args.out_dir / f"results_al_efficiency{suffix}.json").write_text(json.dumps(result, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(*zip(*al), "o-", label="active learning")
    ax.plot(*zip(*rnd), "s--", label="random MD frames (EMT-driven)")
    ax.axhline(TARGET, c="gray", ls=":", label=f"{TARGET} eV/Å")
    ax.set(xlabel="oracle labels", ylabel="test force RMSE (eV/Å)", yscale="log",
           title="EMT aluminium: labels vs accuracy")
    ax.legend()
    (args.out_dir / "figures").mkdir(exist_ok=True)
    fig.savefig(args.out_dir / "figures" / f"al_efficiency{suffix}.png", dpi=110, bbox_inches="tight")
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
