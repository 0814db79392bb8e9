"""Plots of a run, rewritten after every generation into ``report/``: the learning curve, the
sampling over the loop (samplers' verdicts, MD steps before they stopped, the spread of the
structures selected), a parity plot of the latest committee on the held-out data, and its
predicted spread against its error."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from alal.loop import Run

__all__ = ["write_report"]


def _save(fig: object, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    tmp.replace(path)


def write_report(run: Run) -> list[Path]:
    """Write the PNGs of ``run`` and return their paths (nothing before the first committee)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alal.plugins import labels_of, load_model

    out = run.directory / "report"
    out.mkdir(exist_ok=True)
    history = [h for h in run.history() if "fit" in h]
    written: list[Path] = []
    if history:
        n = [h["n_labelled"] for h in history]
        f_rmse = [h["fit"].get("valid_errors", {}).get("force_rmse", np.nan) for h in history]
        e_rmse = [1e3 * h["fit"].get("valid_errors", {}).get("energy_rmse", np.nan) for h in history]
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        ax[0].plot(n, f_rmse, "o-")
        ax[0].axhline(run.config.loop.target_force_rmse, ls="--", c="gray", label="target")
        ax[0].set(xlabel="labelled structures", ylabel="validation force RMSE (eV/Å)")
        ax[0].legend()
        ax[1].plot(n, e_rmse, "o-", c="C1")
        ax[1].set(xlabel="labelled structures", ylabel="validation energy RMSE (meV/atom)")
        fig.suptitle("learning curve")
        _save(fig, out / "learning_curve.png")
        plt.close(fig)
        written.append(out / "learning_curve.png")
    sampled = [h for h in history if "samplers" in h]
    if sampled:
        written.append(_sampling_plot(run, sampled, out / "sampling.png"))
    gens = sorted(run.directory.glob("models/gen-*/model.safetensors"))
    _, valid = run._split(run.store.labelled())
    if gens and valid:
        model = load_model(gens[-1])
        preds = model.predict(valid)
        labels = [labels_of(a) for a in valid]
        e_ref = np.array([lab.energy / len(a) for lab, a in zip(labels, valid)])
        e_pred = np.array([p.energy / len(a) for p, a in zip(preds, valid)])
        f_ref = np.concatenate([lab.forces.ravel() for lab in labels])
        f_pred = np.concatenate([p.forces.ravel() for p in preds])
        fig, ax = plt.subplots(1, 2, figsize=(9, 4))
        for a, x, y, unit, name in ((ax[0], e_ref, e_pred, "eV/atom", "energy"),
                                    (ax[1], f_ref, f_pred, "eV/Å", "force components")):
            a.scatter(x, y, s=6, alpha=0.6)
            lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
            a.plot([lo, hi], [lo, hi], c="gray", lw=1)
            rmse = float(np.sqrt(np.mean((x - y) ** 2)))
            a.set(xlabel=f"oracle {name} ({unit})", ylabel=f"committee ({unit})", title=f"RMSE {rmse:.3g} {unit}")
        fig.suptitle(f"parity on held-out data, {gens[-1].parent.name}")
        _save(fig, out / "parity.png")
        plt.close(fig)
        err = np.concatenate([np.linalg.norm(p.forces - lab.forces, axis=1) / np.sqrt(3)
                              for p, lab in zip(preds, labels)])
        std = np.concatenate([p.forces_std for p in preds])
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.scatter(std, err, s=6, alpha=0.6)
        top = float(max(std.max(), err.max(), 1e-3))
        ax.plot([0, top], [0, top], c="gray", lw=1, label="error = predicted σ")
        ax.set(xlabel="predicted force σ per atom (eV/Å, calibrated)", ylabel="actual RMS force error (eV/Å)",
               title="uncertainty vs error (held-out)")
        ax.legend()
        _save(fig, out / "spread_vs_error.png")
        plt.close(fig)
        written += [out / "parity.png", out / "spread_vs_error.png"]
    return written


def _sampling_plot(run: Run, sampled: list[dict], path: Path) -> Path:
    """Per generation: the samplers' verdicts, the MD steps they ran, and the calibrated largest
    per-atom force spread of the structures selected for labelling."""
    import matplotlib.pyplot as plt

    gens = np.array([h["generation"] for h in sampled])
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    bottom = np.zeros(len(sampled))
    for verdict, colour in (("completed", "C2"), ("candidate", "C0"), ("unreliable", "C3")):
        counts = np.array([h["samplers"].get(verdict, 0) for h in sampled], dtype=float)
        ax[0].bar(gens, counts, bottom=bottom, color=colour, label=verdict)
        bottom += counts
    ax[0].set(xlabel="generation", ylabel="samplers", title="how the samplers ended")
    ax[0].legend(fontsize=8)
    steps = [h.get("sampler_steps") for h in sampled]
    if any(steps):
        for g, s in zip(gens, steps):
            if s:
                ax[1].scatter(np.full(len(s), g), s, s=8, alpha=0.4, c="C0")
        ax[1].plot([g for g, s in zip(gens, steps) if s], [np.mean(s) for s in steps if s], "k-", label="mean")
        ax[1].legend(fontsize=8)
    ax[1].set(xlabel="generation", ylabel="MD steps run", title="how far the samplers got")
    for h in sampled:
        g = h["generation"]
        spreads = [(a.info.get("uncertainty") or {}).get("force_std_max") for a in run.store.structures(generation=g)]
        spreads = [x for x in spreads if x is not None and x > 0]  # log axis: a 1-atom cell's spread is 0
        if spreads:
            ax[2].scatter(np.full(len(spreads), g), spreads, s=10, alpha=0.6, c="C1")
    ax[2].set(xlabel="generation", ylabel="largest per-atom force σ (eV/Å)", yscale="log",
              title="spread of the structures selected")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path
