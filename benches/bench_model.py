#!/usr/bin/env python
"""Benchmark of alal's built-in committee model, ``alal.models.ani.AniModel``.

Part 1, accuracy: trains an 8-member committee on EMT-labelled aluminium
(``alal.testing.emt_aluminium``: fcc/bcc/hcp crystals, vacancies, (111)/(100) slabs, liquid; 32-108
atoms; 300-2000 K) and measures energy (meV/atom) and force (eV/Å) errors on an independent test set
drawn the same way with another seed, overall and per kind; the calibration of the committee spread
(share of errors within 1σ and 2σ of the calibrated ``energy_std`` / per-atom ``forces_std``); the
training time, epochs and the FitReport. Saves a parity plot and a learning curve to
``figures/``. ``--sweep`` trains the settings of :data:`SWEEP` as well, to compare hyperparameters.

Part 2, speed: committee inference (energy + forces + spread, K = 8) on rattled fcc Al (108, 500
and 4000 atoms), 1 and 2 threads, interleaved round-robin (best of N), of

- ASE's EMT calculator (energy + forces; serial), for scale;
- alal: ``AniModel(n_members=8).predict([atoms])``, the same through ``model.calculator()`` (ASE
  overhead), and the pieces of ``predict`` (descriptor, networks, vector-Jacobian products);
- an equivalent torchani committee: ``torchani.aev.AEVComputer`` with the ANI-Al constants (float32,
  cell list) and the 8 member networks (96-96-96-64-1, CELU α = 0.1; alal's weights copied in, so
  both give the same energies), per-member energies and forces (force spread), plus a variant with
  mean forces and the energy spread only.

Before timing it checks alal's committee-mean forces against finite differences of its energy, and
torchani's per-member energies and forces against alal's.

Writes ``results_model.json`` (all samples), the ``bench_model`` section of ``RESULTS.md`` (between
``<!-- bench_model:begin -->`` and ``<!-- bench_model:end -->``) and ``figures/*.png``. Run::

    python benches/bench_model.py              # everything (~30 min on 2 cores)
    python benches/bench_model.py --quick      # small data, few epochs, 108/500 atoms (< 3 min)
    python benches/bench_model.py --no-speed   # accuracy only
    python benches/bench_model.py --sweep      # + the hyperparameter sweep (hours)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import hashlib
import importlib.metadata
import json
import os
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

warnings.filterwarnings("ignore", message=r"The extensions: .* are not installed")
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_core as core  # noqa: E402  (timing harness, machine info, torchani AEV builder)

A_AL = 4.05
SPEED_SIZES = (108, 500, 4000)
RATTLE = 0.05  # Å
N_MEMBERS = 8
BEGIN, END = "<!-- bench_model:begin -->", "<!-- bench_model:end -->"

DATA = {"sizes": (32, 108), "temperatures": (300.0, 2000.0)}
TRAIN = {"n": 200, "seed": 0}
TEST = {"n": 50, "seed": 1}

# Training settings. BEST is what the bench trains by default (the best of the sweep below; the
# numbers behind the choice are in benches/README.md). Anything not named keeps AniModel's default.
BEST: dict[str, Any] = {"batch_size": 1, "max_epochs": 150}
# Each entry overrides AniModel's defaults (not BEST); run with --sweep [NAME,...] (K = --sweep-members).
# A cached run is reused only for the same settings, K, data and alal commit.
SWEEP: dict[str, dict[str, Any]] = {
    "bs8": {"max_epochs": 150, "batch_size": 8},  # AniModel's default until alal c228a16
    "fw0.2": {"max_epochs": 150, "batch_size": 8, "force_weight": 0.2},
    "fw1": {"max_epochs": 150, "batch_size": 8, "force_weight": 1.0},
    "bs4": {"max_epochs": 150, "batch_size": 4},
    "bs2": {"max_epochs": 150, "batch_size": 2},
    "bs1": {"max_epochs": 150, "batch_size": 1},
    "bs4@200": {"max_epochs": 200, "batch_size": 4},
}
QUICK = {"max_epochs": 8, "patience": 8}


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = core.versions()
    for dist in ("ase", "torch", "torchani", "matplotlib"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    for dist in ("vesin", "matscipy", "neighborlist-rs", "dscribe"):
        out.pop(dist, None)
    return out


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def model_defaults() -> dict[str, Any]:
    import inspect

    from alal.models.ani import AniModel

    sig = inspect.signature(AniModel.__init__)
    skip = {"self", "n_threads", "progress", "elements", "descriptor"}
    return {k: (list(p.default) if isinstance(p.default, tuple) else p.default)
            for k, p in sig.parameters.items() if k not in skip}


def set_threads(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def dataset(n: int, seed: int, cache: Path, log) -> list:
    """``emt_aluminium(n, seed=seed, **DATA)``, cached as extxyz under ``cache`` keyed by the
    arguments. A cached file with more frames serves a shorter prefix (frame k depends on seed, k)."""
    from ase.io import read, write

    from alal.testing.emt import emt_aluminium

    (lo, hi), (t0, t1) = DATA["sizes"], DATA["temperatures"]
    stem = f"emt_al_seed{seed}_sizes{lo}-{hi}_T{t0:g}-{t1:g}"
    have = sorted(((int(m.group(1)), p) for p in cache.glob(f"{stem}_n*.extxyz")
                   if (m := re.fullmatch(re.escape(stem) + r"_n(\d+)\.extxyz", p.name))), reverse=True)
    for count, path in have:
        if count >= n:
            frames = read(path, index=f":{n}")
            log(f"[data] {n} frames of seed {seed} from {path.name}")
            return frames
    t = time.perf_counter()
    frames = emt_aluminium(n, seed=seed, sizes=DATA["sizes"], temperatures=DATA["temperatures"])
    atomic_write(cache / f"{stem}_n{n}.extxyz", lambda p: write(p, frames, format="extxyz"))
    log(f"[data] generated {n} EMT frames (seed {seed}) in {time.perf_counter() - t:.0f} s, cached")
    # read back, so that a fresh run and a cached run see the same (extxyz-rounded) numbers
    return read(cache / f"{stem}_n{n}.extxyz", index=":")


def describe(frames: Sequence) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for a in frames:
        kinds[a.info["kind"]] = kinds.get(a.info["kind"], 0) + 1
    sizes = [len(a) for a in frames]
    return {"n_structures": len(frames), "n_atoms": int(sum(sizes)), "min_atoms": min(sizes),
            "max_atoms": max(sizes), "kinds": dict(sorted(kinds.items()))}


# ----------------------------------------------------------------------------------------------
# accuracy
# ----------------------------------------------------------------------------------------------


def evaluate(model, test: Sequence) -> dict[str, Any]:
    """Committee-mean errors on labelled ``test``, overall and per ``info['kind']``, and the
    calibration of the spread."""
    from alal.plugins import labels_of

    preds = model.predict(list(test))
    rows = []
    for atoms, p in zip(test, preds):
        lab = labels_of(atoms)
        n = len(atoms)
        rows.append({
            "kind": atoms.info.get("kind", "?"), "n": n,
            "e_ref": lab.energy / n, "e_pred": p.energy / n, "e_err": (p.energy - lab.energy) / n,
            "e_std": p.energy_std / n, "e_member_err": (np.asarray(p.member_energies) - lab.energy) / n,
            "f_ref": lab.forces, "f_err": p.forces - lab.forces, "f_std": np.asarray(p.forces_std),
        })

    def stats(sel: list[dict[str, Any]]) -> dict[str, Any]:
        e = np.array([r["e_err"] for r in sel])
        es = np.array([r["e_std"] for r in sel])
        f = np.concatenate([r["f_err"].ravel() for r in sel])
        fs = np.concatenate([np.repeat(r["f_std"], 3) for r in sel])
        fr = np.concatenate([r["f_ref"].ravel() for r in sel])
        members = np.array([r["e_member_err"] for r in sel])  # (S, K)
        with np.errstate(divide="ignore", invalid="ignore"):
            return {
                "n_structures": len(sel), "n_atoms": int(sum(r["n"] for r in sel)),
                "energy_rmse_meV": 1e3 * float(np.sqrt(np.mean(e**2))),
                "energy_mae_meV": 1e3 * float(np.mean(np.abs(e))),
                "energy_max_meV": 1e3 * float(np.max(np.abs(e))),
                "member_energy_rmse_meV": 1e3 * float(np.mean(np.sqrt(np.mean(members**2, axis=0)))),
                "force_rmse": float(np.sqrt(np.mean(f**2))),
                "force_mae": float(np.mean(np.abs(f))),
                "force_max": float(np.max(np.abs(f))),
                "force_ref_rms": float(np.sqrt(np.mean(fr**2))),
                "energy_within_1sigma": float(np.mean(np.abs(e) <= es)),
                "energy_within_2sigma": float(np.mean(np.abs(e) <= 2 * es)),
                "force_within_1sigma": float(np.mean(np.abs(f) <= fs)),
                "force_within_2sigma": float(np.mean(np.abs(f) <= 2 * fs)),
                # the scale that would calibrate this set itself (1 = the stored calibration is right)
                "energy_scale_here": float(np.sqrt(np.mean((e / np.maximum(es, 1e-15)) ** 2))),
                "force_scale_here": float(np.sqrt(np.mean((f / np.maximum(fs, 1e-15)) ** 2))),
                "mean_force_std": float(np.mean(fs)),
                "mean_energy_std_meV": 1e3 * float(np.mean(es)),
            }

    out = {"overall": stats(rows), "per_kind": {}}
    for kind in sorted({r["kind"] for r in rows}):
        out["per_kind"][kind] = stats([r for r in rows if r["kind"] == kind])
    # spread vs error: rank correlation of per-atom |ΔF| with forces_std, and of per-structure
    # force RMSE with the mean forces_std
    from scipy.stats import spearmanr

    fa = np.concatenate([np.linalg.norm(r["f_err"], axis=1) for r in rows])
    sa = np.concatenate([r["f_std"] for r in rows])
    fs_rmse = [float(np.sqrt(np.mean(r["f_err"] ** 2))) for r in rows]
    fs_std = [float(np.mean(r["f_std"])) for r in rows]
    out["spearman_atom_force_error_vs_std"] = float(spearmanr(fa, sa).statistic)
    out["spearman_structure_force_rmse_vs_std"] = float(spearmanr(fs_rmse, fs_std).statistic)
    out["_rows"] = rows  # for the plots; dropped before JSON
    return out


def train_one(name: str, settings: dict[str, Any], train: Sequence, test: Sequence, args, log,
              *, n_members: int = N_MEMBERS) -> tuple[Any, dict[str, Any]]:
    from alal.models.ani import AniModel

    import inspect

    set_threads(args.torch_threads)
    extra = {"torch_threads": args.torch_threads} if "torch_threads" in inspect.signature(AniModel.__init__).parameters \
        and "torch_threads" not in settings else {}
    model = AniModel(**settings, **extra, n_members=n_members, n_threads=args.train_threads, progress=args.progress)
    log(f"[fit] {name}: K={n_members}, {settings}")
    t = time.perf_counter()
    c = time.process_time()
    report = model.fit(list(train))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    ev = evaluate(model, test)
    eval_s = time.perf_counter() - t
    o = ev["overall"]
    log(f"[fit] {name}: {report.epochs} epochs in {wall / 60:.1f} min ({cpu / wall:.2f} CPU/wall); "
        f"test energy RMSE {o['energy_rmse_meV']:.2f} meV/atom, force RMSE {o['force_rmse']:.4f} eV/Å; "
        f"valid {report.valid_errors}")
    cal = report.calibration
    rec = {
        "name": name, "settings": settings, "n_members": n_members, "epochs": report.epochs,
        "seconds": report.seconds, "wall_s": wall, "cpu_s": cpu, "n_train": report.n_train,
        "n_valid": report.n_valid, "valid_errors": report.valid_errors,
        "calibration": None if cal is None else cal.to_dict(),
        "best_epochs": [m["best_epoch"] for m in report.members], "members": report.members,
        "history": report.history, "test": {k: v for k, v in ev.items() if k != "_rows"}, "eval_s": eval_s,
        "train_threads": args.train_threads, "torch_threads": args.torch_threads,
        "s_per_epoch": report.seconds / max(report.epochs, 1),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    return (model, ev), rec


def sweep_key(name: str, settings: dict[str, Any], n_members: int, data_key: str, commit: str) -> str:
    blob = json.dumps({"settings": settings, "K": n_members, "data": data_key, "alal": commit}, sort_keys=True)
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


def run_accuracy(args, log, out_dir: Path) -> dict[str, Any]:
    cache = args.cache_dir
    n_train, n_test = (args.n_train, args.n_test)
    train = dataset(n_train, TRAIN["seed"], cache, log)
    test = dataset(n_test, TEST["seed"], cache, log)
    data_key = f"train{n_train}s{TRAIN['seed']}-test{n_test}s{TEST['seed']}-{DATA}"
    res: dict[str, Any] = {"data": {"generator": "alal.testing.emt.emt_aluminium", **{k: list(v) for k, v in DATA.items()},
                                    "train": {"seed": TRAIN["seed"], **describe(train)},
                                    "test": {"seed": TEST["seed"], **describe(test)}},
                           "defaults": model_defaults()}

    # the hyperparameter sweep (each run cached as JSON, so that runs accumulate across invocations)
    if args.sweep is not None:
        names = list(SWEEP) if args.sweep == "all" else [s for s in args.sweep.split(",") if s]
        sdir = cache / "sweep"
        alal_git = versions().get("alal_git", "?")
        commit = alal_git.split()[0]
        for name in names:
            if name not in SWEEP:
                raise SystemExit(f"unknown sweep setting {name!r}; known: {', '.join(SWEEP)}")
            path = sdir / f"{sweep_key(name, SWEEP[name], args.sweep_members, data_key, commit)}.json"
            if path.exists() and not args.rerun_sweep:
                log(f"[sweep] {name}: cached ({path.name})")
                continue
            _, rec = train_one(name, SWEEP[name], train, test, args, log, n_members=args.sweep_members)
            rec["data_key"] = data_key
            rec["alal_git"] = alal_git
            atomic_write(path, lambda p, rec=rec: p.write_text(json.dumps(rec, default=float)))
            gc.collect()
    sdir = cache / "sweep"
    sweep = []
    for path in sorted(sdir.glob("*.json")) if sdir.exists() else []:
        rec = json.loads(path.read_text())
        if rec.get("data_key") == data_key:
            rec.pop("history", None)
            sweep.append(rec)
    res["sweep"] = sorted(sweep, key=lambda r: (r.get("date", ""), r["n_members"], r["name"]))

    if args.sweep_only:
        return res
    settings = dict(QUICK if args.quick else BEST)
    settings.update(args.set)
    (model, ev), rec = train_one("bench", settings, train, test, args, log, n_members=args.members)
    res["bench"] = rec
    if args.save_model:
        model.save(args.save_model)
        log(f"[fit] saved the model to {args.save_model}")
    try:
        res["figures"] = plots(ev, rec, out_dir / "figures", quick=args.quick)
    except Exception:  # noqa: BLE001
        res["figures_error"] = traceback.format_exc()
        log("[plots] ERROR\n" + res["figures_error"])
    return res


def plots(ev: dict[str, Any], rec: dict[str, Any], fig_dir: Path, *, quick: bool) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suffix = "_quick" if quick else ""
    rows = ev["_rows"]
    kinds = sorted({r["kind"] for r in rows})
    colours = dict(zip(kinds, plt.get_cmap("tab10").colors))
    o = ev["overall"]
    fig, ax = plt.subplots(1, 3, figsize=(13.5, 4.3))
    for kind in kinds:
        sel = [r for r in rows if r["kind"] == kind]
        ax[0].scatter([r["e_ref"] for r in sel], [r["e_pred"] for r in sel], s=14, color=colours[kind], label=kind)
    lim = [min(min(r["e_ref"], r["e_pred"]) for r in rows), max(max(r["e_ref"], r["e_pred"]) for r in rows)]
    ax[0].plot(lim, lim, "k-", lw=0.6)
    ax[0].set(xlabel="EMT energy (eV/atom)", ylabel="committee energy (eV/atom)",
              title=f"energy: RMSE {o['energy_rmse_meV']:.2f} meV/atom")
    ax[0].legend(fontsize=7, markerscale=0.8)
    fr = np.concatenate([r["f_ref"].ravel() for r in rows])
    fp = fr + np.concatenate([r["f_err"].ravel() for r in rows])
    kind_of = np.concatenate([np.full(3 * r["n"], kinds.index(r["kind"])) for r in rows])
    for k, kind in enumerate(kinds):
        m = kind_of == k
        ax[1].scatter(fr[m], fp[m], s=2, alpha=0.4, color=colours[kind], rasterized=True, lw=0)
    lim = [min(fr.min(), fp.min()), max(fr.max(), fp.max())]
    ax[1].plot(lim, lim, "k-", lw=0.6)
    ax[1].set(xlabel="EMT force component (eV/Å)", ylabel="committee force component (eV/Å)",
              title=f"forces: RMSE {o['force_rmse']:.3f} eV/Å")
    fe = np.abs(np.concatenate([r["f_err"].ravel() for r in rows]))
    fs = np.concatenate([np.repeat(r["f_std"], 3) for r in rows])
    ax[2].scatter(fs, fe, s=2, alpha=0.3, color="0.3", rasterized=True, lw=0)
    x = np.array([max(fs.min(), 1e-4), fs.max()])
    for z, style in ((1, "--"), (2, ":")):
        ax[2].plot(x, z * x, "r" + style, lw=0.9, label=f"{z}σ")
    ax[2].set(xscale="log", yscale="log", xlabel="calibrated σ of the atom's force (eV/Å)",
              ylabel="|force component error| (eV/Å)",
              title=f"within 1σ {100 * o['force_within_1sigma']:.0f}%, 2σ {100 * o['force_within_2sigma']:.0f}%")
    ax[2].set_ylim(bottom=max(fe[fe > 0].min(), 1e-5) if (fe > 0).any() else 1e-5)
    ax[2].legend(fontsize=8)
    fig.suptitle(f"alal AniModel (K={rec['n_members']}) on EMT Al: test set of {o['n_structures']} structures, "
                 f"{o['n_atoms']} atoms", fontsize=10)
    fig.tight_layout()
    out = []
    fig_dir.mkdir(parents=True, exist_ok=True)
    path = fig_dir / f"model_parity{suffix}.png"
    atomic_write(path, lambda p: fig.savefig(p, dpi=90, format="png"))
    plt.close(fig)
    out.append(str(path))

    h = rec["history"]
    ep = [r["epoch"] for r in h]
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    ax.plot(ep, [r["train_loss"] for r in h], label="train loss (member mean)")
    ax.plot(ep, [r["valid_loss"] for r in h], label="early-stopping loss (member mean)")
    ax.set(yscale="log", xlabel="epoch", ylabel="loss (eV²/atom² + w·(eV/Å)²)")
    ax2 = ax.twinx()
    ax2.plot(ep, [r["learning_rate"] for r in h], "k:", lw=0.9, label="learning rate")
    ax2.set(yscale="log", ylabel="learning rate")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8)
    ax.set_title(f"learning curve: {rec['epochs']} epochs, {rec['seconds'] / 60:.1f} min", fontsize=10)
    fig.tight_layout()
    path = fig_dir / f"model_learning_curve{suffix}.png"
    atomic_write(path, lambda p: fig.savefig(p, dpi=90, format="png"))
    plt.close(fig)
    out.append(str(path))
    return out


# ----------------------------------------------------------------------------------------------
# speed
# ----------------------------------------------------------------------------------------------


def fcc_rattled(n_atoms: int, seed: int = 0):
    from ase.build import bulk

    k = round((n_atoms / 4) ** (1 / 3))
    if 4 * k**3 != n_atoms:
        raise SystemExit(f"size {n_atoms} is not 4 k^3 (cubic fcc supercell)")
    atoms = bulk("Al", "fcc", a=A_AL, cubic=True).repeat(k)
    atoms.rattle(stdev=RATTLE, seed=seed)
    atoms.wrap()
    return atoms


class TorchCommittee:
    """K member networks (n_in → hidden… → 1, CELU) as batched matrix products, weights copied
    from an alal ``CommitteeNetworks`` (element 0), float32."""

    def __init__(self, alal_networks, dtype) -> None:
        import torch

        self.alpha = alal_networks.celu_alpha
        self.layers = []
        for layer in range(alal_networks.n_layers):
            w, b = alal_networks.layer(0, layer)
            self.layers.append((w.detach().to(dtype).clone(), b.detach().to(dtype).clone()))
        self.k = alal_networks.n_members
        self.torch = torch

    def __call__(self, aev):
        """Per-member energies ``(K,)`` of the features ``(N, F)`` (or ``(K, N, F)``)."""
        torch = self.torch
        h = aev if aev.ndim == 3 else aev.unsqueeze(0).expand(self.k, -1, -1)
        for i, (w, b) in enumerate(self.layers):
            h = torch.baddbmm(b, h, w)
            if i < len(self.layers) - 1:
                h = torch.nn.functional.celu(h, alpha=self.alpha)
        return h.squeeze(2).sum(1)


class TorchSequentialCommittee:
    """The same K members as K ``torch.nn.Sequential`` (Linear + CELU), called one after another."""

    def __init__(self, alal_networks, dtype) -> None:
        import torch

        self.members = []
        n_layers = alal_networks.n_layers
        for k in range(alal_networks.n_members):
            mods = []
            for layer in range(n_layers):
                w, b = alal_networks.layer(0, layer)
                lin = torch.nn.Linear(w.shape[1], w.shape[2], dtype=dtype)
                with torch.no_grad():
                    lin.weight.copy_(w[k].T)
                    lin.bias.copy_(b[k, 0])
                mods.append(lin)
                if layer < n_layers - 1:
                    mods.append(torch.nn.CELU(alpha=alal_networks.celu_alpha))
            self.members.append(torch.nn.Sequential(*mods).requires_grad_(False))
        self.torch = torch

    def __call__(self, aev):
        return self.torch.stack([m(aev).sum() for m in self.members])


def torchani_inputs(atoms, dtype):
    import torch

    x = torch.tensor(atoms.positions, dtype=dtype)[None].requires_grad_(True)
    species = torch.zeros((1, len(atoms)), dtype=torch.long)
    cell = torch.tensor(atoms.cell.array, dtype=dtype)
    pbc = torch.tensor([bool(b) for b in atoms.pbc])
    return species, x, cell, pbc


def torchani_committee(comp, nets, atoms, dtype, nt: int, mode: str):
    """(member energies (K,), forces) with ``mode``:
    ``loop``: per-member forces (K, N, 3) by K backward passes through the whole graph (retain_graph);
    ``batched``: per-member forces by one ``autograd.grad(..., is_grads_batched=True)``;
    ``two-stage``: ∂E_k/∂AEV of all members in one backward through the networks (features expanded
    per member), then K backward passes of the AEV graph only;
    ``mean``: mean forces (N, 3) by one backward pass (energy spread only)."""
    import torch

    set_threads(nt)
    species, x, cell, pbc = torchani_inputs(atoms, dtype)
    aev = comp(species, x, cell, pbc)[0]  # (N, F)
    k = nets.k if hasattr(nets, "k") else len(nets.members)
    if mode == "mean":
        e = nets(aev)
        (g,) = torch.autograd.grad(e.mean(), x)
        return e.detach(), -g[0]
    if mode == "loop":
        e = nets(aev)
        forces = torch.empty((k, len(atoms), 3), dtype=dtype)
        for m in range(k):
            (g,) = torch.autograd.grad(e[m], x, retain_graph=m < k - 1)
            forces[m] = -g[0]
        return e.detach(), forces
    if mode == "batched":
        e = nets(aev)
        (g,) = torch.autograd.grad(e, x, grad_outputs=torch.eye(k, dtype=dtype), is_grads_batched=True)
        return e.detach(), -g[:, 0]
    if mode == "two-stage":
        feats = aev.detach().unsqueeze(0).expand(k, -1, -1).requires_grad_(True)
        e = nets(feats)
        (cot,) = torch.autograd.grad(e.sum(), feats)
        forces = torch.empty((k, len(atoms), 3), dtype=dtype)
        for m in range(k):
            (g,) = torch.autograd.grad(aev, x, grad_outputs=cot[m], retain_graph=m < k - 1)
            forces[m] = -g[0]
        return e.detach(), forces
    raise ValueError(mode)


def alal_pieces(model, atoms, nt: int):
    """Callables timing the pieces of ``model.predict([atoms])``."""
    import torch

    from alal.models.ani.committee import TorchBatch

    desc, committee = model.descriptor, model.committee
    packed = desc.pack([atoms])
    batch = TorchBatch.build(desc, packed)
    k = model.n_members
    rng = np.random.default_rng(0)
    cot = rng.normal(size=(k, len(atoms), desc.n_features))

    def networks():
        set_threads(nt)
        with torch.enable_grad():
            feats = batch.features.expand(k, -1, -1).requires_grad_(True)
            energies = committee.member_energies(batch, feats)
            (g,) = torch.autograd.grad(energies.sum(), feats)
        return energies, g

    def descriptor():
        return TorchBatch.build(desc, desc.pack([atoms]))

    def prepare():
        return desc.prepare(desc.pack([atoms]))

    def vjp():
        return desc.vjp_many_prepared(batch.prepared, cot)

    def energies_and_gradients():
        set_threads(nt)
        with torch.no_grad():
            return committee.energies_and_gradients(batch, desc, create_graph=False)

    return {"descriptor": descriptor, "pack+prepare": prepare, "networks": networks,
            "vjp_many": vjp, "energies_and_gradients": energies_and_gradients}


def fd_check(model, log) -> dict[str, Any]:
    """Committee-mean forces of ``model`` (and of a float64 copy of its weights) against central
    finite differences of its mean energy, on a rattled 32-atom fcc cell."""
    import torch

    from alal.models.ani import AniModel

    atoms = fcc_rattled(32, seed=7)
    atoms.rattle(0.1, seed=8)
    out = {}
    m64 = AniModel(n_members=model.n_members, dtype="float64", seed=model.config["seed"], n_threads=1, progress=False)
    with torch.no_grad():
        for (_, a), (_, b) in zip(m64.committee.named_parameters(), model.committee.named_parameters()):
            a.copy_(b.to(a.dtype))
    rng = np.random.default_rng(3)
    picks = [(int(i), int(c)) for i, c in zip(rng.choice(len(atoms), 6, replace=False), rng.integers(0, 3, 6))]
    for name, m, h in (("float32 (the timed model)", model, 1e-3), ("float64 copy", m64, 1e-4)):
        f = m.predict([atoms])[0].forces
        num = []
        for i, c in picks:
            e = []
            for sgn in (1, -1):
                a = atoms.copy()
                a.positions[i, c] += sgn * h
                e.append(m.predict([a])[0].energy)
            num.append(-(e[0] - e[1]) / (2 * h))
        ana = np.array([f[i, c] for i, c in picks])
        num = np.array(num)
        err = float(np.abs(ana - num).max())
        scale = float(np.abs(ana).max())
        out[name] = {"h": h, "max_abs_err": err, "max_abs_force": scale, "rel": err / max(scale, 1e-12),
                     "components": [list(p) for p in picks], "analytic": ana.tolist(), "numeric": num.tolist()}
        log(f"[fd] {name}: max |F - (-dE/dr)| = {err:.2e} eV/Å (max |F| {scale:.3f}, h {h} Å)")
    tol = {"float32 (the timed model)": 2e-2, "float64 copy": 1e-6}
    out["status"] = "ok" if all(out[k]["rel"] <= tol[k] for k in tol) else "MISMATCH"
    return out


def run_speed(args, log) -> dict[str, Any]:
    import inspect

    import torch
    from ase.calculators.calculator import all_changes
    from ase.calculators.emt import EMT

    from alal.descriptors import ani_al
    from alal.models.ani import AniModel

    dtype = torch.float32
    # newer alal sets torch's threads itself while it computes (torch_threads, default 1)
    has_tt = "torch_threads" in inspect.signature(AniModel.__init__).parameters

    def make(nt: int, tt: int):
        return AniModel(n_members=N_MEMBERS, n_threads=nt, progress=False, **({"torch_threads": tt} if has_tt else {}))

    models = {nt: make(nt, nt) for nt in (1, 2)}
    model_2_1 = make(2, 1)
    res: dict[str, Any] = {"fd_check": fd_check(models[1], log), "rows": []}
    comp = core.torchani_computer(ani_al(), dtype)
    nets = TorchCommittee(models[1].committee.networks, dtype)
    seq = TorchSequentialCommittee(models[1].committee.networks, dtype)
    modes = [m for m in args.torchani_modes.split(",") if m]
    # newer alal: predict(forces_std=False) skips the per-member forces, and the calculator computes
    # forces_std only on request (always_forces_std=True: with every calculation)
    has_forces_std = "forces_std" in inspect.signature(models[1].predict).parameters
    calc_kwargs = {"always_forces_std": True} if "always_forces_std" in inspect.signature(
        type(models[1].calculator())).parameters else {}
    res["calculator_kwargs"] = calc_kwargs

    for n in args.speed_sizes:
        atoms = fcc_rattled(n)
        runners: dict[str, Callable[[], Any]] = {}
        emt_atoms = atoms.copy()
        emt_atoms.calc = EMT()

        def emt():
            # the calculator keeps its neighbour list (as in MD, where it is rebuilt only past the
            # skin); energy + forces
            emt_atoms.calc.calculate(emt_atoms, ["energy", "forces"], all_changes)
            return emt_atoms.calc.results["forces"]

        runners["EMT"] = emt
        calc_atoms = {}
        for nt in (1, 2):
            m = models[nt]
            runners[f"alal predict {nt}t"] = (lambda m=m, nt=nt: (set_threads(nt), m.predict([atoms]))[1])
            if nt == 2:  # 2 descriptor threads, 1 torch thread (small matrices: torch's 2nd thread rarely pays)
                runners["alal predict 2t torch1"] = (lambda: (set_threads(1), model_2_1.predict([atoms]))[1])
            a = atoms.copy()
            # the spread is computed with the energy and forces (one predict per call)
            a.calc = m.calculator(**calc_kwargs)
            calc_atoms[nt] = a

            def via_calc(a=a, nt=nt):
                set_threads(nt)
                a.calc.reset()
                return a.get_potential_energy(), a.get_forces(), a.calc.results["forces_std"]

            runners[f"alal calculator {nt}t"] = via_calc
            if has_forces_std:
                runners[f"alal mean-forces {nt}t"] = (
                    lambda m=m, nt=nt: (set_threads(nt), m.predict([atoms], forces_std=False))[1])
            for piece, fn in alal_pieces(m, atoms, nt).items():
                runners[f"alal {piece} {nt}t"] = fn
            for mode in modes:
                if mode == "batched" and n > args.batched_max:
                    continue  # vmap over the backward: several GiB at 4000 atoms, and never the fastest
                runners[f"torchani {mode} {nt}t"] = (
                    lambda mode=mode, nt=nt: torchani_committee(comp, nets, atoms, dtype, nt, mode))
            if args.sequential and n <= 500:
                runners[f"torchani loop sequential {nt}t"] = (
                    lambda nt=nt: torchani_committee(comp, seq, atoms, dtype, nt, "loop"))

        # warm-up / check calls
        first, outs = {}, {}
        for name, fn in runners.items():
            try:
                wall, cpu, out = core.timed(fn)
            except Exception as err:  # noqa: BLE001
                log(f"[speed] N={n} {name}: ERROR {type(err).__name__}: {err}")
                outs[name] = err
                continue
            first[name] = (wall, cpu, core._LAST_SYS[0])
            if name.startswith(("alal predict", "alal mean-forces", "torchani", "alal calculator")) or name == "EMT":
                outs[name] = out
            del out
        checks = speed_checks(outs, n, log)
        del outs
        gc.collect()
        names = [nm for nm in runners if nm in first]
        reps = {nm: core.n_reps(first[nm][0], args.target_s, args.min_reps, args.max_reps, slow_s=args.slow_s)
                for nm in names}
        log(f"[speed] N={n}: timing {len(names)} runners, reps {reps}")
        samples = core.interleave({nm: runners[nm] for nm in names}, reps)
        timings = {}
        for nm in names:
            s = samples[nm] if samples[nm] else [first[nm]]
            timings[nm] = core.summarise(s)
            timings[nm]["single_call"] = not samples[nm]
        res["rows"].append({"n": n, "timings": timings, "checks": checks,
                            "errors": {nm: "error" for nm in runners if nm not in first}})
        us = {nm: t["best_s"] / n * 1e6 for nm, t in timings.items()}
        log(f"[speed] N={n}: µs/atom " + ", ".join(f"{k} {v:.1f}" for k, v in us.items()))
        del runners, calc_atoms
        gc.collect()
    return res


def speed_checks(outs: dict[str, Any], n: int, log) -> dict[str, Any]:
    """alal's outputs are finite; 1 and 2 threads agree; the calculator agrees with predict;
    torchani's committee (alal's weights copied) gives the same member energies and forces."""
    out: dict[str, Any] = {}
    p1 = outs.get("alal predict 1t")
    if p1 is None or isinstance(p1, Exception):
        return {"status": "no alal output"}
    p1 = p1[0]
    finite = all(np.all(np.isfinite(x)) for x in (p1.energy, p1.forces, p1.energy_std, p1.forces_std,
                                                     p1.member_energies))
    out["alal_finite"] = bool(finite)
    p2 = outs.get("alal predict 2t")
    if p2 is not None and not isinstance(p2, Exception):
        p2 = p2[0]
        out["alal_1t_vs_2t_max_abs_dF"] = float(np.abs(p1.forces - p2.forces).max())
    c = outs.get("alal calculator 1t")
    if c is not None and not isinstance(c, Exception):
        out["calculator_vs_predict_max_abs_dF"] = float(np.abs(c[1] - p1.forces).max())
        out["calculator_vs_predict_max_abs_dforces_std"] = float(np.abs(c[2] - p1.forces_std).max())
    mf = outs.get("alal mean-forces 1t")
    if mf is not None and not isinstance(mf, Exception):
        out["mean_forces_vs_predict_max_abs_dF"] = float(np.abs(mf[0].forces - p1.forces).max())
    # per-member forces of alal (uncalibrated spread: calibration is 1 for an untrained model)
    for name, val in outs.items():
        if not name.startswith("torchani") or isinstance(val, Exception):
            continue
        e, f = (v.numpy() for v in val)
        rec = {"max_abs_dE_member_per_atom": float(np.abs(e - p1.member_energies).max() / n)}
        if f.ndim == 3:
            rec["max_abs_dF_mean"] = float(np.abs(f.mean(0) - p1.forces).max())
            std = np.sqrt(f.var(0).mean(1))
            rec["max_abs_dforces_std"] = float(np.abs(std - p1.forces_std).max())
        else:
            rec["max_abs_dF_mean"] = float(np.abs(f - p1.forces).max())
        rec["max_abs_F"] = float(np.abs(p1.forces).max())
        rec["status"] = "ok" if rec["max_abs_dF_mean"] <= 1e-3 * max(1.0, rec["max_abs_F"]) and \
            rec["max_abs_dE_member_per_atom"] <= 1e-4 else "MISMATCH"
        out[name] = rec
    emt = outs.get("EMT")
    if emt is not None and not isinstance(emt, Exception):
        out["emt_finite"] = bool(np.isfinite(emt).all())
    bad = [k for k, v in out.items() if isinstance(v, dict) and v.get("status") == "MISMATCH"]
    if not finite or bad:
        log(f"[check] N={n}: alal finite {finite}; mismatches {bad}: {[out[k] for k in bad]}")
    else:
        log(f"[check] N={n}: alal outputs finite; torchani committees match alal "
            f"(max |ΔF| {max([v['max_abs_dF_mean'] for k, v in out.items() if isinstance(v, dict)] or [0]):.1e} eV/Å)")
    out["status"] = "ok" if finite and not bad else "MISMATCH"
    return out


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "—" if x is None or not np.isfinite(x) else format(x, spec)


def settings_str(s: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in s.items()) or "defaults"


def accuracy_md(acc: dict[str, Any]) -> list[str]:
    L = []
    b = acc["bench"]
    o = b["test"]["overall"]
    d = acc["data"]
    L.append("### Accuracy on EMT aluminium\n")
    L.append(f"`emt_aluminium` data (sizes {d['sizes'][0]}–{d['sizes'][1]} atoms, {d['temperatures'][0]:g}–"
             f"{d['temperatures'][1]:g} K): training set seed {d['train']['seed']}, {d['train']['n_structures']} "
             f"structures / {d['train']['n_atoms']} atoms ({b['n_train']} trained on, {b['n_valid']} held out for "
             f"the calibration); independent test set seed {d['test']['seed']}, {d['test']['n_structures']} "
             f"structures / {d['test']['n_atoms']} atoms. Committee of K = {b['n_members']}, settings: "
             f"{settings_str(b['settings'])} (the rest AniModel's defaults); descriptor {b['train_threads']} "
             f"threads, torch {b['torch_threads']}. Trained {b['epochs']} epochs in {b['seconds'] / 60:.1f} min "
             f"({b['s_per_epoch']:.1f} s/epoch; members' best epochs {min(b['best_epochs'])}–{max(b['best_epochs'])}).\n")
    ok_f, ok_e = o["force_rmse"] <= 0.05, o["energy_rmse_meV"] <= 3.0
    L.append(f"- **Target force RMSE ≤ 0.05 eV/Å: {'MET' if ok_f else 'NOT MET'}** ({o['force_rmse']:.4f} eV/Å); "
             f"**energy RMSE ≤ 3 meV/atom: {'MET' if ok_e else 'NOT MET'}** ({o['energy_rmse_meV']:.2f} meV/atom).")
    ve = b["valid_errors"]
    cal = b["calibration"] or {}
    L.append(f"- FitReport `valid_errors` (its {b['n_valid']} held-out structures): energy "
             f"{1e3 * ve.get('energy_rmse', float('nan')):.2f} meV/atom, forces {ve.get('force_rmse', float('nan')):.4f} eV/Å; "
             f"calibration scales energy {cal.get('energy_scale', float('nan')):.2f}, forces "
             f"{cal.get('force_scale', float('nan')):.2f}.")
    L.append(f"- Calibration on the test set: {100 * o['force_within_1sigma']:.0f}% of force components within 1σ, "
             f"{100 * o['force_within_2sigma']:.0f}% within 2σ; energies {100 * o['energy_within_1sigma']:.0f}% / "
             f"{100 * o['energy_within_2sigma']:.0f}% (Gaussian: 68% / 95%). The scale that would calibrate the test "
             f"set itself: forces {o['force_scale_here']:.2f}, energies {o['energy_scale_here']:.2f} (1 = the "
             f"stored calibration transfers). Rank correlation of per-atom |ΔF| with σ: "
             f"{b['test']['spearman_atom_force_error_vs_std']:.2f}; of per-structure force RMSE with mean σ: "
             f"{b['test']['spearman_structure_force_rmse_vs_std']:.2f}.\n")
    L.append("| test subset | structures | atoms | E RMSE meV/atom | E MAE | E max | member E RMSE | F RMSE eV/Å | "
             "F MAE | F max | ⟨\\|F_ref\\|⟩ rms | F within 1σ / 2σ | E within 1σ / 2σ |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in [("**all**", o)] + list(b["test"]["per_kind"].items()):
        L.append(f"| {name} | {s['n_structures']} | {s['n_atoms']} | {s['energy_rmse_meV']:.2f} | "
                 f"{s['energy_mae_meV']:.2f} | {s['energy_max_meV']:.2f} | {s['member_energy_rmse_meV']:.2f} | "
                 f"{s['force_rmse']:.4f} | {s['force_mae']:.4f} | {s['force_max']:.3f} | {s['force_ref_rms']:.3f} | "
                 f"{100 * s['force_within_1sigma']:.0f}% / {100 * s['force_within_2sigma']:.0f}% | "
                 f"{100 * s['energy_within_1sigma']:.0f}% / {100 * s['energy_within_2sigma']:.0f}% |")
    L.append("\n`member E RMSE`: mean over the members of each member's own energy RMSE (the committee mean "
             "is usually better). `F ref rms`: RMS of the EMT force components (scale of the signal).\n")
    if acc.get("figures"):
        L.append(" ".join(f"![{Path(p).stem}](figures/{Path(p).name})" for p in acc["figures"]) + "\n")
    return L


def sweep_md(acc: dict[str, Any]) -> list[str]:
    L = []
    if acc.get("sweep"):
        L.append("#### Hyperparameter sweep\n")
        L.append("Same data; each row one training run (`--sweep`), settings over AniModel's defaults. "
                 "`members' early-stopping E / F`: RMSE of each member on its own early-stopping structures at its "
                 "best epoch, averaged over the members (meV/atom / eV/Å); `calibration-set`: FitReport "
                 "`valid_errors` of the committee mean on the 20 structures held out from every member; test: "
                 "committee mean on the test set. Runs with K < 8 compare settings at lower cost (their "
                 "committee mean is noisier than K = 8's).\n")
        L.append("| setting | alal | K | overrides | epochs | best epochs | min | s/epoch | members' early-stopping "
                 "E / F | calibration-set E / F | test E RMSE meV/atom | test F RMSE eV/Å | F within 1σ / 2σ |")
        L.append("|---|---|---:|---|---:|---|---:|---:|---|---|---:|---:|---:|")
        for r in acc["sweep"]:
            t, ve = r["test"]["overall"], r["valid_errors"]
            me = np.mean([m.get("energy_rmse", np.nan) for m in r["members"]])
            mf = np.mean([m.get("force_rmse", np.nan) for m in r["members"]])
            L.append(f"| {r['name']} | {r.get('alal_git', '?')} | {r['n_members']} | {settings_str(r['settings'])} | "
                     f"{r['epochs']} | "
                     f"{min(r['best_epochs'])}–{max(r['best_epochs'])} | {r['seconds'] / 60:.1f} | "
                     f"{r['s_per_epoch']:.1f} | {1e3 * me:.2f} / {mf:.4f} | "
                     f"{1e3 * ve.get('energy_rmse', float('nan')):.2f} / "
                     f"{ve.get('force_rmse', float('nan')):.4f} | {t['energy_rmse_meV']:.2f} | "
                     f"{t['force_rmse']:.4f} | {100 * t['force_within_1sigma']:.0f}% / "
                     f"{100 * t['force_within_2sigma']:.0f}% |")
        L.append("")
    return L


def speed_md(sp: dict[str, Any], modes: list[str]) -> list[str]:
    L = ["### Committee inference speed\n"]
    fd = sp["fd_check"]
    ck = sp.get("calculator_kwargs") or {}
    L.append("Rattled (0.05 Å) periodic fcc Al. Energy + forces + spread of a K = 8 committee "
             "(96-96-96-64-1, CELU α 0.1, untrained weights, float32 networks). `alal predict` = "
             "`AniModel(n_members=8, n_threads=t, torch_threads=t).predict([atoms])` (t descriptor and torch "
             "threads; member energies and per-member forces → `energy_std`, `forces_std`); `predict, torch 1 "
             "thread` = `AniModel(n_threads=2, torch_threads=1)` (torch_threads=1 is AniModel's default); "
             "`calculator` = the same through "
             f"`model.calculator({', '.join(f'{k}={v}' for k, v in ck.items())})` (`calc.reset()`, "
             "`atoms.get_potential_energy()`, `get_forces()`, `results['forces_std']`); `mean-forces` = "
             "`predict([atoms], forces_std=False)` (mean forces + energy spread, one vector–Jacobian product). "
             "torchani = `AEVComputer.from_constants` (ANI-Al constants, float32, `cell_list`) called directly + "
             "the same 8 networks (alal's weights copied; one batched `baddbmm` per layer), per-member energies "
             "and forces: `loop` = K backward passes through the whole graph with `retain_graph`; `two-stage` = "
             "∂E_k/∂AEV of all members in one backward through the networks, then K backward passes through the "
             "AEV graph only; `batched` = one `autograd.grad(E, positions, eye(K), is_grads_batched=True)` "
             "(vmap; run up to 500 atoms: it needs ~1.4 GiB more than `loop` at 500 atoms); `mean` = mean forces "
             "+ energy spread only (one backward). `torchani committee` = its fastest per-member variant in that "
             "row. EMT: ASE's `EMT` (energy + forces; serial; its neighbour list kept between calls, as in MD). "
             "µs per atom, best of N (¹ = one call: slower than 10 s).\n")
    L.append(f"Checks: alal's committee-mean forces vs central finite differences of its mean energy (32 atoms, "
             f"6 components): float32 {fd['float32 (the timed model)']['max_abs_err']:.1e} eV/Å "
             f"(h {fd['float32 (the timed model)']['h']} Å), float64 copy {fd['float64 copy']['max_abs_err']:.1e} eV/Å "
             f"(max |F| {fd['float64 copy']['max_abs_force']:.2f}) → **{fd['status']}**. "
             + "; ".join(f"N={r['n']}: alal finite {r['checks'].get('alal_finite')}, torchani vs alal "
                         + ", ".join(f"{k.split(' ')[1]} {k.split(' ')[-1]} max|ΔF| {v['max_abs_dF_mean']:.1e}"
                                     for k, v in r['checks'].items() if isinstance(v, dict) and 'max_abs_dF_mean' in v
                                     and k.endswith('1t'))
                         + f" → {r['checks']['status']}" for r in sp["rows"]) + ".\n")
    per_member = [m for m in modes if m != "mean"]
    for nt in (1, 2):
        cols = ["EMT", f"alal predict {nt}t"] + (["alal predict 2t torch1"] if nt == 2 else []) + \
            [f"alal calculator {nt}t", f"alal mean-forces {nt}t"] + [f"torchani {m} {nt}t" for m in modes]
        L.append(f"**{nt} thread{'s' if nt > 1 else ''}** (EMT is serial in both tables)\n")
        L.append("| N | " + " | ".join(c.replace(" 2t torch1", ", torch 1 thread").replace(f" {nt}t", "")
                                        for c in cols)
                 + " | alal atom-steps/s | **torchani committee / alal** | torchani mean / alal mean-forces | "
                   "EMT / alal |" + (" alal CPU/wall |" if nt == 2 else ""))
        L.append("|---:|" + "---:|" * (len(cols) + 4 + (nt == 2)))
        for r in sp["rows"]:
            t, n = r["timings"], r["n"]

            def us(name, t=t, n=n):
                if name not in t:
                    return "—"
                return f"{t[name]['best_s'] / n * 1e6:.1f}" + ("¹" if t[name].get("single_call") else "")
            a = core.best(t, f"alal predict {nt}t")
            tc = min((core.best(t, f"torchani {m} {nt}t") for m in per_member if f"torchani {m} {nt}t" in t),
                     default=None)
            L.append(f"| {n} | " + " | ".join(us(c) for c in cols)
                     + f" | {fmt(n / a if a else None, ',.0f')} | {core.fmt_ratio(core.ratio(tc, a))} | "
                       f"{core.fmt_ratio(core.ratio(core.best(t, f'torchani mean {nt}t'), core.best(t, f'alal mean-forces {nt}t')))} | "
                       f"{core.fmt_ratio(core.ratio(core.best(t, 'EMT'), a))} |"
                     + (f" {t[f'alal predict {nt}t']['cpu_per_wall']:.2f} |" if nt == 2 and a else ""))
        L.append("")
        if nt == 2:
            L.append("`alal CPU/wall`: CPU seconds per wall second of the 2-thread `predict` (median over its "
                     "calls): near 1 means the second core was busy with other work during this run, and the "
                     "2-thread columns (torchani's above all: its OpenMP threads wait for a busy core) then "
                     "measure the machine's load more than the code.\n")
    L.append("Breakdown of `alal predict` (µs/atom): `descriptor` = `TorchBatch.build(desc, desc.pack([atoms]))` "
             "(pack + neighbourhoods + features), of which `pack+prepare`; `networks` = the 8 members' energies "
             "and ∂E_k/∂G (forward + backward); `vjp_many` = `descriptor.vjp_many_prepared` of the 8 cotangents; "
             "`energies_and_gradients` = networks + vjp as `predict` calls them; `other` = predict − descriptor − "
             "energies_and_gradients (stress, spreads, Prediction objects).\n")
    L.append("| N | threads | predict | descriptor | pack+prepare | networks | vjp_many | energies_and_gradients | other |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sp["rows"]:
        t, n = r["timings"], r["n"]
        for nt in (1, 2):
            g = {k: core.best(t, f"alal {k} {nt}t") for k in ("predict", "descriptor", "pack+prepare", "networks",
                                                             "vjp_many", "energies_and_gradients")}
            other = None if None in (g["predict"], g["descriptor"], g["energies_and_gradients"]) else \
                g["predict"] - g["descriptor"] - g["energies_and_gradients"]
            L.append(f"| {n} | {nt} | " + " | ".join(fmt(None if v is None else v / n * 1e6, ".1f")
                                                    for v in (*g.values(), other)) + " |")
    L.append("")
    return L


def speed_summary(sp: dict[str, Any], modes: list[str]) -> list[str]:
    per_member = [m for m in modes if m != "mean"]
    parts, xs, fastest = [], [], {}
    for r in sp["rows"]:
        t, n = r["timings"], r["n"]
        for nt in (1, 2):
            a = core.best(t, f"alal predict {nt}t")
            cand = {m: core.best(t, f"torchani {m} {nt}t") for m in per_member if f"torchani {m} {nt}t" in t}
            if not cand or a is None:
                continue
            m = min(cand, key=cand.get)
            fastest[(n, nt)] = m
            xs.append(cand[m] / a)
            parts.append(f"{n}/{nt}t {cand[m] / a:.1f}×")
    if not xs:
        return []
    modes_used = sorted(set(fastest.values()))
    mean_x = [core.best(r["timings"], f"torchani mean {nt}t") / core.best(r["timings"], f"alal predict {nt}t")
              for r in sp["rows"] for nt in (1, 2)
              if f"torchani mean {nt}t" in r["timings"] and f"alal predict {nt}t" in r["timings"]]
    mean_mf = [core.best(r["timings"], f"torchani mean {nt}t") / core.best(r["timings"], f"alal mean-forces {nt}t")
               for r in sp["rows"] for nt in (1, 2)
               if f"torchani mean {nt}t" in r["timings"] and f"alal mean-forces {nt}t" in r["timings"]]
    x1 = [x for x, p in zip(xs, parts) if "/1t" in p]
    x2 = [x for x, p in zip(xs, parts) if "/2t" in p]
    line = (f"- **Committee inference ≥ 5× torchani at every size and thread count: "
            f"{'MET' if min(xs) >= 5 else 'NOT MET'}** (1 thread {min(x1):.1f}× – {max(x1):.1f}×"
            + (f", 2 threads {min(x2):.1f}× – {max(x2):.1f}×" if x2 else "") + "; N/threads: "
            + ", ".join(parts) + f"), against torchani's fastest per-member-force variant ({', '.join(modes_used)})")
    if mean_x:
        line += (f". torchani computing only the mean forces and the energy spread, against alal's full "
                 f"`predict` (which also gives the force spread): {min(mean_x):.1f}× – {max(mean_x):.1f}×")
    if mean_mf:
        line += (f"; like for like against alal's `predict(forces_std=False)`: {min(mean_mf):.1f}× – "
                 f"{max(mean_mf):.1f}×")
    emt = [core.best(r["timings"], f"alal predict {nt}t") / core.best(r["timings"], "EMT")
           for r in sp["rows"] for nt in (1, 2) if "EMT" in r["timings"] and f"alal predict {nt}t" in r["timings"]]
    if emt:
        line += f". alal's committee step costs {min(emt):.1f}× – {max(emt):.1f}× an EMT step"
    return [line + "."]


def render(res: dict[str, Any]) -> str:
    L = [BEGIN, "", "## 4. Committee model (`benches/bench_model.py`)", ""]
    L.append(f"Generated by `benches/bench_model.py {' '.join(res['argv'])}` on {res['date']} in "
             f"{res['elapsed_s'] / 60:.1f} min; {res['machine']['cpu_model']}, {res['machine']['usable_cpus']} "
             f"usable CPUs, load average {res['machine']['loadavg_at_start'][0]:.1f} at the start, "
             f"{res['loadavg_at_end'][0]:.1f} at the end (shared machine); "
             + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".\n")
    if res.get("error"):
        L.append("**The run failed:**\n\n```\n" + res["error"][-2000:] + "\n```\n")
    acc, sp = res.get("accuracy"), res.get("speed")
    for name, part in (("accuracy", acc), ("speed", sp)):
        fr = (part or {}).get("from_run")
        if fr and fr.get("date") != res["date"]:
            load = ""
            if part.get("machine"):
                load = f", load average {part['machine']['loadavg_at_start'][0]:.1f} at its start"
            L.append(f"The {name} part is kept from the run of {fr['date']} (`benches/bench_model.py "
                     f"{' '.join(fr.get('argv') or [])}`{load}).\n")
    summary = []
    if acc and "bench" in acc:
        o = acc["bench"]["test"]["overall"]
        summary.append(f"- **Accuracy (test set): force RMSE {o['force_rmse']:.4f} eV/Å (target ≤ 0.05: "
                       f"{'MET' if o['force_rmse'] <= 0.05 else 'NOT MET'}), energy RMSE {o['energy_rmse_meV']:.2f} "
                       f"meV/atom (target ≤ 3: {'MET' if o['energy_rmse_meV'] <= 3 else 'NOT MET'})**; force "
                       f"components within 1σ / 2σ of the calibrated spread: {100 * o['force_within_1sigma']:.0f}% / "
                       f"{100 * o['force_within_2sigma']:.0f}%.")
    if sp:
        summary += speed_summary(sp, res["torchani_modes"])
    if summary:
        L += ["### Summary", ""] + summary + [""]
    if acc and "bench" in acc:
        L += accuracy_md(acc)
    if acc:
        L += sweep_md(acc)
    if sp:
        L += speed_md(sp, res["torchani_modes"])
    others = [o for o in res.get("speed_other_runs") or [] if o.get("rows")]
    if others:
        L.append("Other speed runs of the same code (kept in results_model.json under `speed_other_runs`):\n")
        for o in others:
            fr = o.get("from_run", {})
            line = speed_summary(o, res["torchani_modes"])
            cpw = [r["timings"]["alal predict 2t"]["cpu_per_wall"] for r in o["rows"]
                   if "alal predict 2t" in r["timings"]]
            la = o.get("loadavg_at_start"), o.get("loadavg_at_end")
            head = (f"- {fr.get('date')} (`{' '.join(fr.get('argv') or [])}`"
                    + (f", load average {la[0][0]:.1f} → {la[1][0]:.1f}" if la[0] and la[1] else "")
                    + (f", alal 2t CPU/wall {min(cpw):.2f}–{max(cpw):.2f}" if cpw else "") + "): ")
            if line:
                L.append(head + line[0].split("MET** (", 1)[-1].split("), against")[0] + ".")
        L.append("")
    L.append("Raw numbers: `benches/results_model.json`.")
    L += ["", END]
    return "\n".join(L) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace what lies between the markers in ``path`` (or append the block)."""
    text = path.read_text() if path.exists() else ""
    i, j = text.find(BEGIN), text.find(END)
    if i >= 0 and j > i:
        new = text[:i] + section.rstrip("\n") + text[j + len(END):]
    else:
        new = text.rstrip("\n") + ("\n\n" if text else "") + section
    atomic_write(path, lambda p: p.write_text(new if new.endswith("\n") else new + "\n"))


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------


def parse_set(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="40 training / 14 test structures, a few epochs, 108 and 500 atoms, fewer repeats")
    ap.add_argument("--no-accuracy", action="store_true", help="skip the training part")
    ap.add_argument("--no-speed", action="store_true", help="skip the inference-speed part")
    ap.add_argument("--out-dir", type=Path, default=HERE,
                    help="where results_model.json, RESULTS.md and figures/ go (default benches/)")
    ap.add_argument("--cache-dir", type=Path, default=HERE / ".cache", help="cached datasets and sweep runs")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a training setting (AniModel keyword, JSON value), e.g. --set force_weight=0.2")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--sweep", nargs="?", const="all", default=None, metavar="NAMES",
                    help="also train the settings of SWEEP (comma-separated names, default all); runs are "
                         "cached in CACHE_DIR/sweep and every cached run is reported")
    ap.add_argument("--members", type=int, default=N_MEMBERS, help="committee size of the bench training")
    ap.add_argument("--sweep-members", type=int, default=N_MEMBERS, help="committee size of sweep runs")
    ap.add_argument("--rerun-sweep", action="store_true", help="retrain cached sweep settings")
    ap.add_argument("--sweep-only", action="store_true", help="run the sweep and report, without the bench training")
    ap.add_argument("--train-threads", type=int, default=2, help="descriptor threads while training")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch threads while training")
    ap.add_argument("--save-model", type=Path, default=None, help="save the trained bench model here")
    ap.add_argument("--progress", action="store_true", help="show the training progress bar")
    ap.add_argument("--sizes", type=str, default=None, help="speed sizes (4k^3 atoms), default 108,500,4000")
    ap.add_argument("--batched-max", type=int, default=500,
                    help="largest size for torchani's is_grads_batched variant (memory)")
    ap.add_argument("--torchani-modes", type=str, default="loop,two-stage,batched,mean",
                    help="torchani committee variants to time (loop, batched, two-stage, mean)")
    ap.add_argument("--sequential", action="store_true",
                    help="also time torchani with K torch.nn.Sequential members (<= 500 atoms)")
    ap.add_argument("--target-s", type=float, default=None, help="seconds of repeats per runner per case")
    ap.add_argument("--report-only", action="store_true",
                    help="re-render the RESULTS.md section from OUT_DIR/results_model.json without running anything")
    args = ap.parse_args()
    if args.report_only:
        write_section(args.out_dir / "RESULTS.md", render(json.loads((args.out_dir / "results_model.json").read_text())))
        return
    args.set = parse_set(args.set)
    args.n_train = args.n_train or (40 if args.quick else TRAIN["n"])
    args.n_test = args.n_test or (14 if args.quick else TEST["n"])
    args.speed_sizes = ([int(x) for x in args.sizes.split(",")] if args.sizes else
                        [108, 500] if args.quick else list(SPEED_SIZES))
    if args.target_s is None:
        args.target_s = 0.3 if args.quick else 1.0
    args.min_reps = 2 if args.quick else 3
    args.max_reps = 6 if args.quick else 20
    args.slow_s = 10.0
    if args.quick and args.batched_max == 500:
        args.batched_max = 108

    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    res: dict[str, Any] = {"argv": sys.argv[1:], "date": _dt.datetime.now().isoformat(timespec="seconds"),
                           "machine": core.machine_info(), "versions": versions(),
                           "torchani_modes": [m for m in args.torchani_modes.split(",") if m]}
    log(f"machine {res['machine']}")
    log(f"versions {res['versions']}")
    out_dir = args.out_dir
    # a partial run (--no-accuracy / --no-speed) keeps the other part of the previous results
    previous = {}
    if (out_dir / "results_model.json").exists() and (args.no_accuracy or args.no_speed):
        try:
            previous = json.loads((out_dir / "results_model.json").read_text())
        except (OSError, ValueError):
            previous = {}
    for part, skipped in (("accuracy", args.no_accuracy), ("speed", args.no_speed)):
        if skipped and part in previous:
            res[part] = previous[part]
            res[part].setdefault("from_run", {"date": previous.get("date"), "argv": previous.get("argv")})
            log(f"keeping the {part} results of the run of {res[part]['from_run']['date']}")
    try:
        if not args.no_accuracy:
            res["accuracy"] = run_accuracy(args, log, out_dir)
            res["accuracy"]["from_run"] = {"date": res["date"], "argv": res["argv"]}
        if not args.no_speed:
            res["speed"] = run_speed(args, log)
            res["speed"]["from_run"] = {"date": res["date"], "argv": res["argv"]}
            res["speed"]["machine"] = res["machine"]
    except Exception:  # noqa: BLE001
        res["error"] = traceback.format_exc()
        log("ERROR\n" + res["error"])
    res["elapsed_s"] = time.perf_counter() - t_start
    res["loadavg_at_end"] = os.getloadavg()
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = out_dir / "results_model.json"
    if previous.is_file() and (args.no_accuracy or args.no_speed):
        # A partial run keeps the other part of the previous run (with its own date and argv).
        old = json.loads(previous.read_text())
        for part in ("accuracy", "speed"):
            if part not in res and part in old:
                res[part] = old[part]
                res.setdefault("merged_from_previous", {})[part] = {"date": old.get("date"), "argv": old.get("argv")}
    atomic_write(out_dir / "results_model.json", lambda p: p.write_text(json.dumps(res, indent=1, default=str)))
    section = render(res)
    write_section(out_dir / "RESULTS.md", section)
    print(section)
    log(f"wrote {out_dir / 'RESULTS.md'} (bench_model section) and results_model.json")


if __name__ == "__main__":
    main()
