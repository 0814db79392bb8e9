"""Active learning vs random MD sampling at the same oracle budget (EMT aluminium).

Three learning curves, each evaluated after every generation / data size on an independent EMT
test set (`alal.testing.emt.emt_aluminium`, seed 1, 32-108 atoms, 300-2000 K MD frames of
crystals, vacancies, slabs and liquids):

- **active learning**: the real loop (`alal.loop.Run`) on the run config: samplers stop where the
  committee disagrees, a batch is selected by uncertainty per cost and diversity;
- **random MD sampling** (the ablation, same oracle budget): the same loop, the same starts,
  protocols, committee and training, with the uncertainty taken out: each sampler runs the current
  committee's MD for a uniformly random number of steps and its last frame is the candidate; the
  batch is drawn at random among the candidates. Every oracle call is a label, as in the loop;
- **EMT-driven MD frames** (a reference, not at equal budget): frames drawn at random times from
  Langevin trajectories driven by EMT itself under protocols drawn the same way, the committee
  trained on growing prefixes. The oracle drives every MD step here, so with DFT these frames
  would cost hundreds of uncounted oracle calls each: an upper bound for random sampling.

Reported per point: labels, atoms labelled, oracle cost (Σ (N/32)³, the selection's DFT-like cost
model) and the test force RMSE (eV/Å); and the labels (and cost) each curve needs to reach 0.05 eV/Å.

    python benches/al_efficiency.py            # the example config (tens of minutes on 2 cores)
    python benches/al_efficiency.py --quick    # tiny settings, to check the script
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
from alal.loop import Run, new_model
from alal.plugins import engine_class, labels_of, load_model
from alal.plugins.oracle import Label  # noqa: F401  (documents what the store keeps)
from alal.starts import draw_starts
from alal.testing.emt import emt_aluminium

HERE = Path(__file__).resolve().parent
TARGET = 0.05


def point(sizes: list[int], rmse: float) -> dict:
    """One point of a learning curve: labels, atoms labelled, oracle cost (Σ N³, in units of a
    32-atom cell, the DFT-like cost model of the selection) and the test force RMSE (eV/Å)."""
    return {"labels": len(sizes), "atoms": int(sum(sizes)), "cost_32": float(sum((n / 32) ** 3 for n in sizes)),
            "force_rmse": rmse}


def test_rmse(model, test) -> float:
    preds = model.predict(test, forces_std=False)
    err = np.concatenate([(p.forces - labels_of(a).forces).ravel() for p, a in zip(preds, test)])
    return float(np.sqrt(np.mean(err**2)))


def active_learning(cfg, run_dir: Path, test, run_class=Run) -> list[dict]:
    run_class(cfg, run_dir, progress=False).execute()
    return curve_of_run(run_dir, test)


def random_md_frame(model_path: str, engine_params: dict, start, seed: int):
    """One sampler of the random arm: the committee's MD (the engine's own integrator and
    protocol) for a uniformly random number of steps; its last frame is the candidate unless the
    trajectory blew up or two atoms came closer than the engine's minimum distance."""
    from ase import Atoms

    from alal.engines.ase_md import _BLOWUPS, _dynamics
    from alal.plugins.engine import SamplingResult

    engine = engine_class("ase")(**engine_params)
    rng = np.random.default_rng(seed)
    protocol = engine.draw_protocol(rng)
    steps = int(rng.integers(0, protocol.steps + 1))
    atoms = start.copy()
    atoms.calc = load_model(model_path, n_threads=1).calculator()
    from ase.md.velocitydistribution import Stationary

    try:
        from ase.md.velocitydistribution import thermalize_momenta
        thermalize_momenta(atoms, protocol.temperature_K(0.0), rng=rng)
    except ImportError:  # older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
        MaxwellBoltzmannDistribution(atoms, temperature_K=protocol.temperature_K(0.0), rng=rng)
    Stationary(atoms)
    verdict, candidates = "candidate", []
    try:
        dyn = _dynamics(atoms, protocol, rng)
        done = 0
        while done < steps:
            n = min(protocol.check_interval, steps - done)
            dyn.set_temperature(temperature_K=protocol.temperature_K(done * protocol.timestep_fs / 1000))
            dyn.run(n)
            done += n
        ok = np.isfinite(atoms.positions).all() and closest_pair(atoms, engine.trust.min_distance) is None
    except _BLOWUPS:
        ok = False
    if ok:
        frame = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc, info=dict(start.info))
        frame.wrap()
        frame.info.update(step=steps, protocol=protocol.to_dict())
        candidates.append(frame)
    else:
        verdict = "unreliable"
    return SamplingResult(verdict=verdict, candidates=candidates, steps=steps, checks=0, max_force_std_seen=0.0,
                          unreliable_frames=int(not ok), seconds=0.0, protocol=protocol)


class RandomMDRun(Run):
    """The loop with the uncertainty taken out (see the module docstring)."""

    def _sample(self, pool, generation):
        cfg = self.config
        path = str(self.model_path(generation))
        starts = draw_starts(cfg.builders, tuple(cfg.run.elements), cfg.loop.samplers, self._seed(generation, 1))
        futures = [pool.submit(random_md_frame, path, dict(cfg.engine.params), start, self._seed(generation, 2, k))
                   for k, start in enumerate(starts)]
        return [f.result() for f in futures]

    def _select(self, model, candidates, n):
        rng = np.random.default_rng(self._seed(len(self.store.labelled()), 3))
        picked = rng.permutation(len(candidates))[:max(n, 0)]
        return [candidates[i] for i in picked]


def curve_of_run(run_dir: Path, test) -> list[dict]:
    """Test force RMSE of each generation's committee of the run in ``run_dir``."""
    from alal.store import Store

    history = {h["generation"]: h for h in (json.loads(s) for s in (run_dir / "log.jsonl").read_text().splitlines())}
    labelled = Store.open(run_dir).labelled()
    curve = []
    for path in sorted(run_dir.glob("models/gen-*/model.safetensors")):
        g = int(path.parent.name.split("-")[1])
        # The committee of generation g was trained on the labels of generations < g.
        sizes = [len(a) for a in labelled if int(a.info["generation"]) < g]
        assert len(sizes) == int(history[g]["n_labelled"]), (g, len(sizes), history[g]["n_labelled"])
        curve.append(point(sizes, test_rmse(load_model(path), test)))
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


def random_sampling(cfg, sizes: list[int], test, seed: int) -> list[dict]:
    frames = random_frames(cfg, max(sizes), seed)
    curve, previous = [], None
    for n in sizes:
        data = frames[:n]
        k = max(1, int(round(cfg.loop.validation_fraction * n)))
        model = new_model(cfg)
        model.fit(data[k:], data[:k], warm_start=previous if cfg.loop.fine_tune else None)
        previous = model
        curve.append(point([len(a) for a in data], test_rmse(model, test)))
    return curve


def first_reaching(curve: list[dict], target: float, key: str) -> float | None:
    """``key`` (labels, atoms or cost) at the first point of ``curve`` at or below ``target``."""
    return next((p[key] for p in curve if p["force_rmse"] <= target), None)


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    """Test force RMSE against labels and against oracle cost, one line per curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, xlabel in zip(axes, ("labels", "cost_32"), ("oracle labels", "oracle cost, Σ (N/32)³")):
        for name, style, label in (("active_learning", "o-", "active learning"),
                                   ("random_md", "s--", "random MD sampling (same loop, no uncertainty)"),
                                   ("emt_driven_md", "^:", "EMT-driven MD frames (MD steps not counted)")):
            ax.plot([p[key] for p in curves[name]], [p["force_rmse"] for p in curves[name]], style, label=label)
        ax.axhline(TARGET, c="gray", ls=":", label=f"{TARGET} eV/Å")
        ax.set(xlabel=xlabel, yscale="log")
    axes[0].set(ylabel="test force RMSE (eV/Å)")
    fig.suptitle("EMT aluminium: data vs accuracy on an independent test set")
    axes[1].legend(fontsize=8, loc="upper right")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--config", type=Path, default=None, help="a run config (default: the aluminium example)")
    ap.add_argument("--reuse", action="store_true",
                    help="resume the run directories found in --work-dir instead of starting afresh (a finished "
                         "run is reused as it is; `alal run`'s own check refuses one made with another config)")
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("--work-dir", type=Path, default=HERE / ".cache" / "al_efficiency")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = load_config(args.config or example_path("aluminium"))
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
    rnd_dir = run_dir.with_name(run_dir.name + "-random-md")
    for directory in (run_dir, rnd_dir):
        if directory.exists() and not args.reuse:
            import shutil

            shutil.rmtree(directory)
    al = active_learning(cfg, run_dir, test)
    rnd = active_learning(cfg, rnd_dir, test, run_class=RandomMDRun)
    emt = random_sampling(cfg, [p["labels"] for p in al], test, seed=cfg.run.seed + 1000)
    curves = {"active_learning": al, "random_md": rnd, "emt_driven_md": emt}
    reach = {key: {name: first_reaching(c, TARGET, key) for name, c in curves.items()}
             for key in ("labels", "atoms", "cost_32")}
    result = {"quick": args.quick, "config": to_dict(cfg), **curves,
              "to_reach_target": reach, "target_force_rmse": TARGET, "test_structures": n_test,
              "seconds": time.perf_counter() - t0}
    suffix = "_quick" if args.quick else ""
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"results_al_efficiency{suffix}.json").write_text(json.dumps(result, indent=1))
    (args.out_dir / "figures").mkdir(exist_ok=True)
    plot(curves, args.out_dir / "figures" / f"al_efficiency{suffix}.png")
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
