"""The report of ``alal eval``: ``eval.md``, a self-contained ``eval.html`` (PNGs embedded as
base64), ``eval.json`` and the plots (E–V curves, phonon dispersion, RDF, MD stability, parity,
calibration) as PNGs, in the style of :mod:`alal.report`.

Both documents are rendered from one list of blocks (headings, paragraphs, tables, images), so
they always say the same thing.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from alal.evaluation.runner import PROPERTIES, Evaluation, Row

__all__ = ["format_table", "write_report"]

Block = tuple[Any, ...]
MODEL_STYLE = {"color": "C3", "ls": "--", "label": "model"}
ORACLE_STYLE = {"color": "k", "ls": "-", "label": "oracle"}


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—" if x is None else str(x)
    return f"{x:.{digits}g}"


def _rel(x: float | None) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{100 * x:+.1f} %"


def format_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the comparison table."""
    header = ["property", "quantity", "unit", "model", "oracle", "error (model − oracle)", "relative error"]
    return header, [[r.property, r.quantity, r.unit, _num(r.model), _num(r.oracle), _num(r.error, 3),
                     _rel(r.relative_error)] for r in rows]


# -- plots -------------------------------------------------------------------------------------
def _save(fig: Any, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def _sides(ev: Evaluation, name: str) -> list[tuple[Any, dict[str, Any]]]:
    out = ev.outcomes.get(name)
    if out is None:
        return []
    return [(r, style) for r, style in ((out.oracle, ORACLE_STYLE), (out.model, MODEL_STYLE)) if r is not None]


def _plot_eos(ev: Evaluation, plt: Any, path: Path) -> Path | None:
    sides = _sides(ev, "eos")
    if not sides:
        return None
    fig, ax = plt.subplots(figsize=(5, 4))
    for r, style in sides:
        ax.plot(r.volumes_A3, r.energies_eV, marker="o", ms=3, **style)
        ax.axvline(r.volume_per_atom_A3, color=style["color"], lw=0.8, alpha=0.5)
    ax.set(xlabel="volume (Å³/atom)", ylabel="energy (eV/atom)", title=f"E–V, {ev.structure} {ev.element}")
    ax.legend()
    return _save(fig, path)


def _plot_phonons(ev: Evaluation, plt: Any, path: Path) -> Path | None:
    sides = _sides(ev, "phonons")
    if not sides:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for r, style in sides:
        x = np.asarray(r.path_x) / max(r.path_x[-1], 1e-12)
        bands = np.asarray(r.bands_THz)
        for k in range(bands.shape[1]):
            ax.plot(x, bands[:, k], color=style["color"], ls=style["ls"], lw=1.2,
                    label=style["label"] if k == 0 else None)
    ref = sides[0][0]
    ticks = np.asarray(ref.special_x) / max(ref.path_x[-1], 1e-12)
    for t in ticks:
        ax.axvline(t, color="gray", lw=0.5)
    ax.set_xticks(ticks, ["Γ" if s == "G" else s for s in ref.special_labels])
    ax.axhline(0, color="gray", lw=0.5)
    ax.set(xlim=(0, 1), ylabel="frequency (THz)", title=f"phonons, {ev.structure} {ev.element}")
    ax.legend()
    return _save(fig, path)


def _plot_rdf(ev: Evaluation, plt: Any, path: Path) -> Path | None:
    sides = _sides(ev, "liquid")
    if not sides:
        return None
    fig, ax = plt.subplots(figsize=(5, 4))
    for r, style in sides:
        ax.plot(r.r_A, r.g, **style)
    ax.axhline(1, color="gray", lw=0.5)
    ax.set(xlabel="r (Å)", ylabel="g(r)", title=f"liquid {ev.element} at {sides[0][0].temperature_K:g} K")
    ax.legend()
    return _save(fig, path)


def _plot_stability(ev: Evaluation, plt: Any, path: Path) -> Path | None:
    sides = _sides(ev, "stability")
    if not sides:
        return None
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for r, style in sides:
        e = 1e3 * (np.asarray(r.nve_energy_eV_atom) - r.nve_energy_eV_atom[0])
        ax[0].plot(r.nve_time_ps, e, **style)
        ax[1].plot(r.hot_time_ps, r.hot_min_distances_A, **style)
    ax[0].set(xlabel="time (ps)", ylabel="E − E(0) (meV/atom)", title=f"NVE, {sides[0][0].nve_atoms} atoms")
    ax[1].axhline(ev.settings.min_distance, color="gray", ls=":", label="collapse")
    ax[1].set(xlabel="time (ps)", ylabel="shortest distance (Å)", title=f"{sides[0][0].hot_temperature_K:g} K run")
    ax[0].legend()
    ax[1].legend()
    return _save(fig, path)


def _plot_parity(ev: Evaluation, plt: Any, path: Path) -> Path | None:
    out = ev.outcomes.get("test_set")
    r = out.model if out else None
    if r is None:
        return None
    panels = [("energy", "eV/atom", r.energy_ref_eV_atom, r.energy_pred_eV_atom, r.energy_rmse_meV_atom / 1e3),
              ("force components", "eV/Å", r.force_ref_eV_A, r.force_pred_eV_A, r.force_rmse_eV_A)]
    if r.stress_ref_GPa:
        panels.append(("stress components", "GPa", r.stress_ref_GPa, r.stress_pred_GPa, r.stress_rmse_GPa))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4))
    for ax, (name, unit, x, y, rmse) in zip(np.atleast_1d(axes), panels):
        x, y = np.asarray(x), np.asarray(y)
        ax.scatter(x, y, s=5, alpha=0.5)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], c="gray", lw=1)
        ax.set(xlabel=f"oracle {name} ({unit})", ylabel=f"model ({unit})", title=f"RMSE {rmse:.3g} {unit}")
    fig.suptitle(f"test set: {r.n_structures} structures")
    return _save(fig, path)


def _plot_calibration(ev: Evaluation, plt: Any, path: Path) -> Path | None:
    out = ev.outcomes.get("test_set")
    r = out.model if out else None
    if r is None or r.calibration_k is None:
        return None
    from alal.evaluation.properties.test_set import gaussian_fraction

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(r.calibration_k, gaussian_fraction(r.calibration_k), c="gray", ls=":", label="Gaussian erf(k/√2)")
    ax.plot(r.calibration_k, r.calibration_fraction, c="C0", label="committee")
    ax.set(xlabel="k", ylabel="fraction of force errors within kσ", title="calibration (test set)", ylim=(0, 1.02))
    ax.legend()
    return _save(fig, path)


_PLOTS = {"eos": ("eos.png", _plot_eos, "E–V curves"), "phonons": ("phonons.png", _plot_phonons, "phonon dispersion"),
          "liquid": ("rdf.png", _plot_rdf, "radial distribution functions"),
          "stability": ("stability.png", _plot_stability, "NVE energy and shortest distance in the hot run"),
          "test_set": ("parity.png", _plot_parity, "parity plots")}


def write_plots(ev: Evaluation, directory: Path) -> dict[str, list[Path]]:
    """PNG files per property name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: dict[str, list[Path]] = {}
    for name, (filename, plot, _) in _PLOTS.items():
        if name in ev.outcomes:
            try:
                p = plot(ev, plt, directory / filename)
            finally:
                plt.close("all")
            if p is not None:
                written.setdefault(name, []).append(p)
    if "test_set" in ev.outcomes:
        p = _plot_calibration(ev, plt, directory / "calibration.png")
        plt.close("all")
        if p is not None:
            written.setdefault("test_set", []).append(p)
    return written


# -- documents ---------------------------------------------------------------------------------
def _blocks(ev: Evaluation, plots: dict[str, list[Path]]) -> list[Block]:
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    blocks: list[Block] = [
        ("h1", f"Evaluation of {ev.model}"),
        ("p", f"Oracle: {ev.oracle}. Element {ev.element}, ground state {ev.structure}. Written {when}; "
              f"{ev.seconds:.0f} s of computation."),
        ("h2", "Model against oracle"),
    ]
    header, cells = format_table(ev.rows())
    blocks.append(("table", header, cells))
    blocks.append(("p", "Each side relaxes to its own equilibrium before every property; error = model − "
                        "oracle, relative error = error / |oracle|."))
    for name, out in ev.outcomes.items():
        spec = PROPERTIES[name]
        blocks.append(("h2", spec.title))
        notes = []
        if out.not_applicable:
            notes.append(f"Not applicable: {out.not_applicable}.")
        for side, message in out.errors.items():
            notes.append(f"The {side} side failed: {message}")
        if out.oracle_reused:
            notes.append("Oracle values reused from a previous eval.json.")
        notes += _notes(name, out)
        for n in notes:
            blocks.append(("p", n))
        if name == "phases" and (out.model or out.oracle):
            blocks.append(("table", ["structure", "V0 model (Å³/atom)", "V0 oracle (Å³/atom)"],
                           _phase_volumes(out.model, out.oracle)))
        if name == "test_set" and out.model is not None:
            r = out.model
            blocks.append(("p", f"Source: {r.source}; {r.n_structures} structures, {r.n_atoms} atoms."))
            blocks.append(("table", ["metric", "unit", "model"],
                           [[q.label, q.unit, _num(q.value)] for q in r.quantities()]))
        for p in plots.get(name, []):
            blocks.append(("img", p, f"{spec.title}: {p.stem}"))
        if out.seconds:
            blocks.append(("p", "Time: " + ", ".join(f"{s} {t:.1f} s" for s, t in out.seconds.items()) + "."))
    blocks.append(("h2", "Settings"))
    blocks.append(("table", ["setting", "value"], [[k, str(v)] for k, v in ev.settings.to_dict().items()]))
    return blocks


def _phase_volumes(model: Any, oracle: Any) -> list[list[str]]:
    names = list(dict.fromkeys([*(oracle.volume_per_atom_A3 if oracle else {}),
                                *(model.volume_per_atom_A3 if model else {})]))
    return [[s, _num(model.volume_per_atom_A3.get(s) if model else None),
             _num(oracle.volume_per_atom_A3.get(s) if oracle else None)] for s in names]


def _notes(name: str, out: Any) -> list[str]:
    notes = []
    m = out.model
    if name == "eos" and m is not None and m.isolated_atom_std_eV is not None:
        notes.append(f"The committee's spread on the isolated atom is {m.isolated_atom_std_eV:.3g} eV. Its "
                     "isolated-atom energy is what the committee predicts, not the oracle's: unless the "
                     "training data held isolated atoms it is an extrapolation, however small the spread.")
    if name in ("vacancy", "interstitial"):
        for side in ("model", "oracle"):
            r = getattr(out, side)
            if r is not None:
                notes.append(f"{side}: {r.configuration}, {r.n_atoms}-atom cell, unrelaxed "
                             f"{r.unrelaxed_formation_energy_eV:.4g} eV" + ("" if r.converged else ", NOT converged"))
    if name == "stability":
        for side in ("model", "oracle"):
            r = getattr(out, side)
            if r is not None:
                verdict = "stable" if r.stable else f"COLLAPSED ({r.failure})"
                notes.append(f"{side}: {r.hot_completed_ps:g} of {r.hot_requested_ps:g} ps at "
                             f"{r.hot_temperature_K:g} K, {verdict}; NVE mean temperature "
                             f"{r.nve_mean_temperature_K:.0f} K.")
    if name == "liquid":
        for side in ("model", "oracle"):
            r = getattr(out, side)
            if r is not None:
                notes.append(f"{side}: {r.n_atoms} atoms at {r.volume_per_atom_A3:.2f} Å³/atom, {r.n_frames} frames, "
                             f"mean temperature {r.mean_temperature_K:.0f} K.")
    return notes


def _markdown(blocks: list[Block], directory: Path) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            lines += [f"# {block[1]}", ""]
        elif kind == "h2":
            lines += [f"## {block[1]}", ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "table":
            header, cells = block[1], block[2]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
            lines.append("")
        elif kind == "img":
            lines += [f"![{block[2]}]({os.path.relpath(block[1], directory)})", ""]
    return "\n".join(lines)


def _html(blocks: list[Block], title: str) -> str:
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
             "text-align:left}td:nth-child(n+4){text-align:right;font-variant-numeric:tabular-nums}"
             "img{max-width:100%}</style></head><body>"]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "p"):
            parts.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "table":
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in block[1]) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block[2]]
            parts.append("</table>")
        elif kind == "img":
            data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
            parts.append(f"<p><img alt='{html.escape(block[2])}' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_report(ev: Evaluation, directory: str | Path) -> dict[str, Path]:
    """Write ``eval.md``, ``eval.html``, ``eval.json`` and the PNGs into ``directory``; returns the
    documents' paths by kind (``md``, ``html``, ``json``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = ev.to_dict()
    _write(directory / "eval.json", json.dumps(data, indent=1, default=float))
    plots = write_plots(ev, directory)
    blocks = _blocks(ev, plots)
    _write(directory / "eval.md", _markdown(blocks, directory))
    _write(directory / "eval.html", _html(blocks, f"alal eval: {ev.model}"))
    return {"md": directory / "eval.md", "html": directory / "eval.html", "json": directory / "eval.json"}
