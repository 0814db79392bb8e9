#!/usr/bin/env python
"""Side-by-side benchmark of alal's core against its peers.

Part 1, neighbour lists (full lists with i, j, S, D, d): alal against ASE, matscipy, vesin and
neighborlist-rs on rattled periodic fcc Al (108 ... 256000 atoms), a non-periodic 2000-atom
cluster and a strongly sheared periodic cell, at cutoffs 5.0 and 6.5 Å; beyond the systems the
targets name, a gas of 32000 atoms at random places (and so in random order in memory). Every
library's output is checked against ASE (against vesin above 32000 atoms) before it is timed.

Part 2, descriptors + forces: alal's ``AniDescriptor.compute`` + ``.vjp`` against torchani's
``AEVComputer.from_constants`` (same constants, float32, 'cell_list', AEV + autograd backward to
the positions) and dscribe's ACSF (descriptor + numerical derivatives), after a float64
cross-check of alal against torchani.

Part 3, peak RSS of alal (and, for scale, vesin / torchani) at the largest sizes, each case in a
fresh subprocess.

All timings in one process are interleaved round-robin over the libraries (the order rotates each
round) and the best of the repeats is used for the ratios (the median is reported too), so that
load from other processes on a shared machine hits all libraries alike. The second thread's
speed-up at 32000 atoms and more is also timed with alal's 1- and 2-thread calls alternated alone
(``paired_scaling``); that target is judged on the best of all samples of each call.

Writes benches/RESULTS.md and benches/results.json. Run::

    python benches/bench_core.py             # everything (~10 min on 2 cores)
    python benches/bench_core.py --quick     # small subset (~1-2 min)
    python benches/bench_core.py --sizes 500,4000 --skip-large
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib.metadata
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

# NumPy's OpenBLAS threads busy-wait for a while after each BLAS call (building the structures,
# checking the outputs) and would take a core from the 2-thread runs. No timed call uses NumPy's
# BLAS (torch has its own, set per run), so one BLAS thread changes nothing else.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore", message=r"The extensions: .* are not installed")
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")

HERE = Path(__file__).resolve().parent
A_AL = 4.05
ALL_SIZES = (108, 500, 4000, 32000, 256000)
#: From this many atoms (fcc) the second thread's speed-up is also timed by ``paired_scaling``.
SCALING_MIN_ATOMS = 32000
DESC_SIZES = (108, 500, 4000, 32000)
CUTOFFS = (5.0, 6.5)
ASE_LIMIT = 32000  # largest size checked against (and timed with) ASE
SLOW_CALL_S = 10.0  # a call slower than this is timed once only (its check call); else the check call is warm-up
TOL = 1e-10


# ----------------------------------------------------------------------------------------------
# structures
# ----------------------------------------------------------------------------------------------


def fcc_al(n_atoms: int, seed: int = 0):
    """Rattled (0.1 Å) periodic cubic fcc Al with ``n_atoms = 4 k^3`` atoms, wrapped into the cell."""
    from ase.build import bulk

    k = round((n_atoms / 4) ** (1 / 3))
    if 4 * k**3 != n_atoms:
        raise SystemExit(f"size {n_atoms} is not 4 k^3 (cubic fcc supercell)")
    atoms = bulk("Al", "fcc", a=A_AL, cubic=True).repeat(k)
    atoms.rattle(stdev=0.1, seed=seed)
    atoms.wrap()
    return atoms


def al_cluster(n_atoms: int = 2000, seed: int = 4):
    """The ``n_atoms`` atoms of a rattled fcc block nearest its centre; no periodicity, zero cell."""
    from ase import Atoms
    from ase.build import bulk

    block = bulk("Al", "fcc", a=A_AL, cubic=True).repeat(11)
    block.rattle(stdev=0.1, seed=seed)
    centred = block.positions - block.positions.mean(axis=0)
    keep = np.sort(np.argsort(np.linalg.norm(centred, axis=1), kind="stable")[:n_atoms])
    return Atoms(f"Al{n_atoms}", positions=block.positions[keep], pbc=False, cell=np.zeros((3, 3)))


def sheared_al(seed: int = 3):
    """2048 fcc Al atoms (8x8x8 cubic cells, rattled 0.1 Å) in a strongly sheared periodic cell
    ((L,0,0), (0.75L,L,0), (0.625L,0.375L,L)): the same crystal, the cell vectors being integer
    combinations of the cubic ones (angles ~57-60°)."""
    atoms = fcc_al(2048, seed=seed)
    length = 8 * A_AL
    atoms.set_cell([[length, 0, 0], [0.75 * length, length, 0], [0.625 * length, 0.375 * length, length]],
                   scale_atoms=False)
    atoms.wrap()
    return atoms


GAS_BOX = 120.0  # Å: 32000 atoms at 0.0185 Å⁻³, ~10 / ~21 neighbours at 5 / 6.5 Å


def random_gas(n_atoms: int = 32000, seed: int = 6):
    """``n_atoms`` atoms at uniformly random places in a periodic ``GAS_BOX`` cube: few neighbours
    per atom, and atoms that follow each other in memory are far apart in space (unlike a crystal
    built cell by cell), so that every search starts with cache misses."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    return Atoms(f"Al{n_atoms}", positions=rng.uniform(0.0, GAS_BOX, (n_atoms, 3)), cell=np.eye(3) * GAS_BOX,
                 pbc=True)


# ----------------------------------------------------------------------------------------------
# machine / versions
# ----------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, value = line.split(":", 1)
            if key in ("MemTotal", "MemAvailable"):
                mem[key] = round(int(value.split()[0]) / 2**20, 1)
    except OSError:
        pass
    return {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "mem_total_gib": mem.get("MemTotal"),
        "mem_available_gib_at_start": mem.get("MemAvailable"),
        "loadavg_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def mem_available_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def versions() -> dict[str, str]:
    out = {}
    for dist in ("alal", "numpy", "ase", "vesin", "matscipy", "neighborlist-rs", "dscribe", "torch", "torchani"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    root = HERE.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "rust", "python"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        out["alal_git"] = commit + (" (+ uncommitted changes in rust/ or python/)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import alal._core as core

        out["alal_core_built"] = _dt.datetime.fromtimestamp(Path(core.__file__).stat().st_mtime).isoformat(
            timespec="seconds")
    except Exception:  # noqa: BLE001
        pass
    return out


# ----------------------------------------------------------------------------------------------
# timing harness
# ----------------------------------------------------------------------------------------------


_LAST_SYS = [0.0]


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process summed over its threads, result) of one call.
    The kernel (system) part of the CPU time, at os.times()'s 10 ms resolution, is left in
    ``_LAST_SYS[0]``."""
    s0 = os.times().system
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = fn()
    t1 = time.perf_counter()
    c1 = time.process_time()
    _LAST_SYS[0] = os.times().system - s0
    return t1 - t0, c1 - c0, result


def interleave(runners: dict[str, Callable[[], Any]], reps: dict[str, int]) -> dict[str, list[tuple[float, ...]]]:
    """Round-robin timing: round r calls every runner that still wants a repeat, in an order that
    rotates by one each round. Results are dropped at once."""
    names = list(runners)
    samples: dict[str, list[tuple[float, ...]]] = {n: [] for n in names}
    rounds = max(reps.values(), default=0)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)] if names else []
        for name in order:
            if len(samples[name]) < reps[name]:
                wall, cpu, out = timed(runners[name])
                del out
                samples[name].append((wall, cpu, _LAST_SYS[0]))
        gc.collect()
    return samples


def summarise(samples: list[tuple[float, ...]]) -> dict[str, Any]:
    walls = np.array([s[0] for s in samples])
    cpus = np.array([s[1] for s in samples])
    syss = np.array([s[2] for s in samples])
    k = int(walls.argmin())
    return {
        "best_s": float(walls.min()),
        "median_s": float(np.median(walls)),
        "n": len(walls),
        "cpu_per_wall": float(np.median(cpus / np.maximum(walls, 1e-12))),
        "cpu_s_of_best": float(cpus[k]),
        "sys_s_of_best": float(syss[k]),
        "samples_s": [float(w) for w in walls],
        "cpu_samples_s": [float(c) for c in cpus],
    }


def n_reps(first_s: float, target_s: float, min_reps: int, max_reps: int, slow_s: float = SLOW_CALL_S) -> int:
    if first_s > slow_s:
        return 0  # the check call is the one sample
    if first_s > 2.0:
        return 1  # one timed call after the warm-up (check) call
    return int(min(max_reps, max(min_reps, math.ceil(target_s / max(first_s, 1e-6)))))


def paired_scaling(one: Callable[[], Any], two: Callable[[], Any], first_s: float, target_s: float) -> dict[str, Any]:
    """alal's 1- and 2-thread calls alternated with nothing else between them (1t 2t, 2t 1t, ...),
    about ``target_s`` seconds of each (6 to 60 rounds): best times, their ratio, and the median of
    the per-round ratios. The interleaved timing of all libraries spreads alal's samples over
    minutes of a shared machine; this pairs them within tens of milliseconds."""
    rounds = int(max(6, min(60, math.ceil(target_s / max(first_s, 1e-6)))))
    walls: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        for k, fn in ((1, one), (2, two)) if r % 2 == 0 else ((2, two), (1, one)):
            wall, _, out = timed(fn)
            del out
            walls[k].append(wall)
    per_round = [a / b for a, b in zip(walls[1], walls[2])]
    return {
        "rounds": rounds,
        "best_1t_s": min(walls[1]),
        "best_2t_s": min(walls[2]),
        "ratio": min(walls[1]) / min(walls[2]),
        "median_round_ratio": float(np.median(per_round)),
    }


# ----------------------------------------------------------------------------------------------
# neighbour lists
# ----------------------------------------------------------------------------------------------

S_BITS = 7  # shifts in [-64, 63] per direction


def pair_keys(i: np.ndarray, j: np.ndarray, S: np.ndarray, n: int) -> np.ndarray:
    """One int64 per (i, j, S), ordered like (i, j, S) lexicographically."""
    S = np.asarray(S, dtype=np.int64)
    if S.size and (S.min() < -64 or S.max() > 63):
        raise ValueError("shift out of the encodable range [-64, 63]")
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    key = (i * n + j) << (3 * S_BITS)
    key |= (S[:, 0] + 64) << (2 * S_BITS)
    key |= (S[:, 1] + 64) << S_BITS
    key |= S[:, 2] + 64
    return key


def canonical(n: int, i, j, S, D=None, d=None) -> dict[str, Any]:
    """Pairs sorted by (i, j, S) as a key array, with D and d in the same order."""
    key = pair_keys(i, j, S, n)
    was_sorted = key.size < 2 or bool(np.all(key[1:] > key[:-1]))
    if not was_sorted:
        if D is None and d is None:
            key = np.sort(key)
        else:
            order = np.argsort(key)
            key = key[order]
            D = None if D is None else np.asarray(D)[order]
            d = None if d is None else np.asarray(d)[order]
            del order
    return {"key": key, "D": None if D is None else np.asarray(D, dtype=np.float64),
            "d": None if d is None else np.asarray(d, dtype=np.float64), "was_sorted": was_sorted}


def compare(ref: dict[str, Any], got: dict[str, Any], what: str) -> tuple[str, str]:
    """('ok' | 'MISMATCH', detail)."""
    rk, gk = ref["key"], got["key"]
    if rk.shape != gk.shape or not np.array_equal(rk, gk):
        dup = int(gk.size - np.unique(gk).size)
        missing = int(np.setdiff1d(rk, gk, assume_unique=False).size)
        extra = int(np.setdiff1d(gk, rk, assume_unique=False).size)
        return "MISMATCH", (f"{gk.size} pairs vs {rk.size} in {what}: {missing} missing, {extra} extra, "
                            f"{dup} duplicated (i,j,S)")
    detail = []
    for q in ("D", "d"):
        if got[q] is not None and ref[q] is not None and rk.size:
            err = float(np.abs(got[q] - ref[q]).max())
            if not err <= TOL:
                return "MISMATCH", f"max |Δ{q}| = {err:.3g} vs {what}"
            detail.append(f"|Δ{q}|≤{err:.1g}")
    return "ok", f"same {rk.size} (i,j,S) as {what}" + (", " + ", ".join(detail) if detail else "")


def nl_case_list(sizes: list[int], quick: bool) -> list[dict[str, Any]]:
    cases = []
    for n in sizes:
        for rc in CUTOFFS:
            cases.append({"system": "fcc", "n": n, "cutoff": rc, "make": (lambda n=n: fcc_al(n))})
    for rc in CUTOFFS if not quick else (6.5,):
        cases.append({"system": "cluster (pbc F)", "n": 2000, "cutoff": rc, "make": al_cluster})
        cases.append({"system": "sheared", "n": 2048, "cutoff": rc, "make": sheared_al})
    if not quick:
        for rc in CUTOFFS:
            cases.append({"system": GAS, "n": 32000, "cutoff": rc, "make": random_gas})
    return cases


GAS = "gas (random order)"  # not among the systems the targets name: reported beside them


def nl_runners(atoms, rc: float, skip: set[str]) -> tuple[dict[str, Callable[[], Any]], dict[str, str], dict[str, str]]:
    """Callables returning raw outputs, their output kind ('full' ijSDd, 'half' ijS), and notes."""
    import matscipy.neighbours as mn
    import neighborlist_rs as nrs
    import vesin
    from ase.neighborlist import primitive_neighbor_list

    from alal.neighbors import NeighborList

    P = np.ascontiguousarray(atoms.positions, dtype=np.float64)
    C = np.ascontiguousarray(atoms.cell.array, dtype=np.float64)
    pbc = [bool(x) for x in atoms.pbc]
    periodic = any(pbc)
    runners: dict[str, Callable[[], Any]] = {}
    kinds: dict[str, str] = {}
    notes: dict[str, str] = {}

    for nt in (1, 2):
        nl = NeighborList(rc, full_list=True, n_threads=nt)
        runners[f"alal {nt}t"] = (lambda nl=nl: nl.compute(P, C, pbc, "ijSDd"))
        kinds[f"alal {nt}t"] = "full"
    for nt in (1, 2):
        nl = NeighborList(rc, full_list=False, n_threads=nt)
        runners[f"alal half {nt}t"] = (lambda nl=nl: nl.compute(P, C, pbc, "ijS"))
        kinds[f"alal half {nt}t"] = "half"

    v = vesin.NeighborList(cutoff=rc, full_list=True)
    runners["vesin"] = lambda: v.compute(points=P, box=C, periodic=periodic, quantities="ijSDd")
    kinds["vesin"] = "full"
    runners["vesin copy=False"] = lambda: [np.asarray(x) for x in
                                           v.compute(points=P, box=C, periodic=periodic, quantities="ijSDd",
                                                     copy=False)]
    kinds["vesin copy=False"] = "full"

    if "matscipy" not in skip:
        if periodic:
            runners["matscipy"] = lambda: mn.neighbour_list("ijSDd", positions=P, cutoff=rc, cell=C, pbc=pbc)
        else:
            # matscipy inverts the cell: a zero cell is a LinAlgError, so give it the bounding box.
            lo, hi = P.min(axis=0), P.max(axis=0)
            box = np.diag(hi - lo + 1.0)
            runners["matscipy"] = lambda: mn.neighbour_list("ijSDd", positions=P, cutoff=rc, cell=box, pbc=pbc,
                                                            cell_origin=lo - 0.5)
            notes["matscipy"] = "zero cell unsupported (singular matrix); given a bounding-box cell"
        kinds["matscipy"] = "full"
    if "ase" not in skip:
        runners["ase"] = lambda: primitive_neighbor_list("ijSDd", pbc, C, P, rc)
        kinds["ase"] = "full"

    cell = nrs.PyCell(C.tolist(), pbc) if periodic else None
    runners["nlrs 1t"] = lambda: nrs.build_neighborlists(cell, P, rc, False)
    runners["nlrs 2t"] = lambda: nrs.build_neighborlists(cell, P, rc, True)
    kinds["nlrs 1t"] = kinds["nlrs 2t"] = "nlrs"
    return runners, kinds, notes


def canonical_of(kind: str, out: Any, n: int) -> dict[str, Any]:
    if kind == "full":
        i, j, S, D, d = out
        return canonical(n, i, j, S, D, d)
    if kind == "half":
        i, j, S = out
        return canonical(n, np.concatenate([i, j]), np.concatenate([j, i]), np.concatenate([S, -np.asarray(S)]))
    # neighborlist-rs: half list, edge_index (2, M) and shift (M, 3) with D = x_j - x_i + S·cell
    ei, sh = out["edge_index"], np.asarray(out["shift"], dtype=np.int64)
    return canonical(n, np.concatenate([ei[0], ei[1]]), np.concatenate([ei[1], ei[0]]), np.concatenate([sh, -sh]))


def run_nl(args, log) -> list[dict[str, Any]]:
    results = []
    for case in nl_case_list(args.sizes, args.quick):
        n, rc = case["n"], case["cutoff"]
        atoms = case["make"]()
        skip = {}
        if n > ASE_LIMIT:
            skip["ase"] = f"skipped: > {ASE_LIMIT} atoms (minutes per call)"
            skip["matscipy"] = f"skipped: > {ASE_LIMIT} atoms (time budget of this 2-core run)"
        runners, kinds, notes = nl_runners(atoms, rc, set(skip))
        label = f"{case['system']} N={n} rc={rc}"
        log(f"[nl] {label}: checking {len(runners)} libraries")

        # reference: ASE up to ASE_LIMIT atoms (its call also serves as its timing), vesin above.
        ref_name = "ase" if "ase" in runners else "vesin"
        first: dict[str, tuple[float, ...]] = {}
        checks: dict[str, tuple[str, str]] = {}
        wall, cpu, out = timed(runners[ref_name])
        first[ref_name] = (wall, cpu, _LAST_SYS[0])
        ref = canonical_of(kinds[ref_name], out, n)
        n_pairs = int(ref["key"].size)
        del out
        gc.collect()
        checks[ref_name] = ("ref", f"reference ({n_pairs} pairs)")
        alal_keys = None
        for name, fn in runners.items():
            if name == ref_name:
                continue
            try:
                wall, cpu, out = timed(fn)
            except Exception as err:  # noqa: BLE001
                checks[name] = ("ERROR", f"{type(err).__name__}: {err}")
                log(f"   {name}: ERROR {type(err).__name__}: {err}")
                continue
            first[name] = (wall, cpu, _LAST_SYS[0])
            got = canonical_of(kinds[name], out, n)
            del out
            status, detail = compare(ref, got, ref_name)
            if name.startswith("alal") and kinds[name] == "full":
                if status == "ok":
                    detail += ", output already sorted by (i,j,S)" if got["was_sorted"] else ", output NOT sorted"
                if alal_keys is None:
                    alal_keys = got["key"]
                elif not np.array_equal(alal_keys, got["key"]):
                    status, detail = "MISMATCH", "alal 2t output differs from alal 1t"
            checks[name] = (status, detail)
            del got
            gc.collect()
            if status != "ok":
                log(f"   {name}: {status}: {detail}")
        del ref, alal_keys
        gc.collect()

        timed_names = [nm for nm in runners if nm in first]
        min_reps = 2 if n >= 256000 else args.min_reps
        reps = {nm: n_reps(first[nm][0], args.target_s, min_reps, args.max_reps) for nm in timed_names}
        samples = interleave({nm: runners[nm] for nm in timed_names}, reps)
        timings = {}
        for nm in timed_names:
            s = samples[nm] if samples[nm] else [first[nm]]
            timings[nm] = summarise(s)
            timings[nm]["single_call"] = not samples[nm]
        scaling = None
        if case["system"] == "fcc" and n >= SCALING_MIN_ATOMS and {"alal 1t", "alal 2t"} <= set(timings):
            scaling = paired_scaling(runners["alal 1t"], runners["alal 2t"], first["alal 1t"][0],
                                     3 * args.target_s)
            log(f"   alal 1t/2t paired over {scaling['rounds']} rounds: {scaling['best_1t_s'] * 1e3:.3g} / "
                f"{scaling['best_2t_s'] * 1e3:.3g} ms, second thread {scaling['ratio']:.2f}x "
                f"(median of rounds {scaling['median_round_ratio']:.2f}x)")
        rec = {
            "system": case["system"], "n": n, "cutoff": rc, "n_pairs_full": n_pairs, "reference": ref_name,
            "scaling": scaling,
            "timings": timings, "checks": {k: list(v) for k, v in checks.items()},
            "skipped": skip, "notes": notes,
        }
        results.append(rec)
        best = {k: v["best_s"] * 1e3 for k, v in timings.items()}
        log("   " + ", ".join(f"{k} {v:.3g} ms" for k, v in best.items()))
        del atoms, runners
        gc.collect()
    return results


# ----------------------------------------------------------------------------------------------
# descriptors
# ----------------------------------------------------------------------------------------------


def desc_params():
    import dataclasses

    from alal.descriptors import ani_1x, ani_al

    return {"ANI-Al": ani_al(), "ANI-1x consts": dataclasses.replace(ani_1x(), species=("Al",))}


def torchani_computer(p, dtype, neighborlist: str = "cell_list"):
    """torchani AEVComputer with alal's constants; in float64 its float32-rounded buffers are
    replaced by the exact float64 values."""
    import torch
    from torchani.aev import AEVComputer

    comp = AEVComputer.from_constants(
        p.radial_cutoff, p.angular_cutoff, p.radial_eta, list(p.radial_shifts), p.angular_eta, p.angular_zeta,
        list(p.angular_shifts), list(p.angle_sections), num_species=1, neighborlist=neighborlist,
    ).to(dtype)
    if dtype == torch.float64:
        for mod, name, values in ((comp.radial, "eta", [p.radial_eta]), (comp.radial, "shifts", p.radial_shifts),
                                  (comp.angular, "eta", [p.angular_eta]), (comp.angular, "zeta", [p.angular_zeta]),
                                  (comp.angular, "shifts", p.angular_shifts),
                                  (comp.angular, "sections", p.angle_sections)):
            old = getattr(mod, name)
            setattr(mod, name, torch.tensor(values, dtype=dtype).reshape(old.shape))
    return comp


def torchani_call(comp, atoms, cot, dtype, n_threads: int):
    import torch

    torch.set_num_threads(n_threads)
    x = torch.tensor(atoms.positions, dtype=dtype)[None].requires_grad_(True)
    species = torch.zeros((1, len(atoms)), dtype=torch.long)
    cell = torch.tensor(atoms.cell.array, dtype=dtype)
    pbc = torch.tensor([bool(b) for b in atoms.pbc])
    aev = comp(species, x, cell, pbc)
    (grad,) = torch.autograd.grad((aev * cot).sum(), x)
    return aev.detach()[0].numpy(), grad[0].numpy()


def alal_call(desc, atoms, cot):
    G = desc.compute(atoms)
    g = desc.vjp(atoms, cot).positions
    return G, g


def prepared_call(desc, atoms, cot):
    """Energy + forces route of the prepared API: neighbourhoods once, then forward and vjp."""
    prepared = desc.prepare(desc.pack(atoms))
    G = desc.forward_prepared(prepared)
    grad, _, _ = desc.vjp_prepared(prepared, cot)
    return G, grad


def check_vs_torchani64(log) -> list[dict[str, Any]]:
    import torch

    from alal.descriptors import AniDescriptor

    out = []
    for name, p in desc_params().items():
        for n in (108, 500):
            atoms = fcc_al(n, seed=11)
            cot = np.random.default_rng(5).normal(size=(n, AniDescriptor(p).n_features))
            comp = torchani_computer(p, torch.float64)
            Gt, gt = torchani_call(comp, atoms, torch.tensor(cot), torch.float64, 2)
            Ga, ga = alal_call(AniDescriptor(p, n_threads=2), atoms, cot)
            eG, eg = float(np.abs(Ga - Gt).max()), float(np.abs(ga - gt).max())
            ok = eG <= 1e-8 and eg <= 1e-8
            out.append({"constants": name, "n": n, "max_abs_dG": eG, "max_abs_dgrad": eg,
                        "max_abs_G": float(np.abs(Gt).max()), "max_abs_grad": float(np.abs(gt).max()),
                        "status": "ok" if ok else "MISMATCH"})
            log(f"[desc check] {name} N={n}: float64 torchani vs alal max|ΔG| {eG:.2e}, max|Δ∂| {eg:.2e}"
                f" -> {'ok' if ok else 'MISMATCH'}")
    return out


def dscribe_case(n: int, log, quick: bool) -> list[dict[str, Any]]:
    """dscribe ACSF, 32 g2 (ANI-Al η and shifts) + 64 g4 (8 η × ζ∈{1,2,4,16} × λ=±1), at r_cut 7.0 Å
    (ANI-Al radial cutoff; dscribe has one cutoff, so its g4 also reach 7.0 Å) and 5.0 Å (ANI-Al
    angular cutoff; its g2 then stop at 5.0 Å). Derivatives are numerical in dscribe 2.1 (6 descriptor
    evaluations per displaced atom), so the full-Jacobian time is extrapolated linearly from
    derivatives w.r.t. 1 and 2 atoms (include=[0] and [0, 1])."""
    from dscribe.descriptors import ACSF

    from alal.descriptors import ani_al

    p = ani_al()
    g2 = [[p.radial_eta, rs] for rs in p.radial_shifts]
    g4 = [[eta, zeta, lam] for eta in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0) for zeta in (1, 2, 4, 16)
          for lam in (-1, 1)]
    atoms = fcc_al(n)
    rows = []
    for rc in ((5.0,) if quick else (7.0, 5.0)):
        acsf = ACSF(r_cut=rc, g2_params=g2, g4_params=g4, species=["Al"], periodic=True)
        t_create = min(timed(lambda: acsf.create(atoms))[0] for _ in range(2))
        t1 = timed(lambda: acsf.derivatives(atoms, include=[0], attach=True))[0]
        t2 = timed(lambda: acsf.derivatives(atoms, include=[0, 1], attach=True))[0]
        per_atom = max(t2 - t1, 1e-9)
        est = (t1 - per_atom) + per_atom * n
        rows.append({"r_cut": rc, "n": n, "n_features": int(acsf.get_number_of_features()),
                     "create_s": t_create, "deriv_1atom_s": t1, "deriv_2atoms_s": t2,
                     "deriv_full_estimate_s": est})
        log(f"[dscribe] N={n} r_cut={rc}: create {t_create * 1e3:.0f} ms, derivatives est. {est:.1f} s"
            f" ({per_atom:.2f} s per displaced atom)")
    return rows


def run_desc(args, log, rss: dict[str, Any]) -> dict[str, Any]:
    import torch

    from alal.descriptors import AniDescriptor

    checks = check_vs_torchani64(log)
    sizes = [n for n in args.sizes if n in DESC_SIZES]
    rows = []
    r4000 = rss.get("torchani desc ANI-Al N=4000 1t", {})
    mem_torch_4000 = r4000["peak_gib"] - r4000["baseline_gib"] if "peak_gib" in r4000 else None
    for name, p in desc_params().items():
        nf = AniDescriptor(p).n_features
        for n in sizes:
            atoms = fcc_al(n)
            cot = np.random.default_rng(1).normal(size=(n, nf))
            cot32 = torch.tensor(cot, dtype=torch.float32)
            runners: dict[str, Callable[[], Any]] = {}
            skipped = {}
            for nt in (1, 2):
                desc = AniDescriptor(p, n_threads=nt)
                runners[f"alal {nt}t compute"] = (lambda d=desc: d.compute(atoms))
                runners[f"alal {nt}t vjp"] = (lambda d=desc: d.vjp(atoms, cot))
            if hasattr(AniDescriptor, "prepare"):  # neighbourhoods found once for forward + vjp
                for nt in (1, 2):
                    runners[f"alal {nt}t prepared"] = (lambda d=AniDescriptor(p, n_threads=nt): prepared_call(d, atoms, cot))
            torch_ok = n <= 4000
            if not torch_ok:
                need = f"~{8 * mem_torch_4000:.0f} GiB" if mem_torch_4000 else "> 20 GiB"
                skipped["torchani"] = (f"skipped at {n} atoms: its autograd graph would need {need} "
                                       f"(8x its 4000-atom peak), {mem_available_gib():.0f} GiB available")
            if torch_ok:
                comp = torchani_computer(p, torch.float32)
                for nt in (1, 2):
                    runners[f"torchani {nt}t"] = (lambda nt=nt: torchani_call(comp, atoms, cot32, torch.float32, nt))
            # warm-up calls, whose outputs give the float32 sanity check and the 1 vs 2 thread check
            first, outs = {}, {}
            for nm, fn in runners.items():
                wall, cpu, out = timed(fn)
                first[nm] = (wall, cpu, _LAST_SYS[0])
                outs[nm] = out.positions if nm.endswith("vjp") else out
            diff = None
            if torch_ok:
                Ga, ga = outs["alal 1t compute"], outs["alal 1t vjp"]
                Gt, gt = outs["torchani 1t"]
                diff = {"max_abs_dG_f32": float(np.abs(Ga - Gt).max()),
                        "max_rel_dgrad_f32": float(np.abs(ga - gt).max() / np.abs(ga).max())}
            same_threads = bool(np.array_equal(outs["alal 1t compute"], outs["alal 2t compute"])
                                and np.array_equal(outs["alal 1t vjp"], outs["alal 2t vjp"]))
            prepared_same = None
            if "alal 1t prepared" in outs:
                prepared_same = {f"{k}t": [float(np.abs(outs[f"alal {k}t prepared"][0] - outs["alal 1t compute"]).max()),
                                           float(np.abs(outs[f"alal {k}t prepared"][1] - outs["alal 1t vjp"]).max())]
                                 for k in (1, 2)}
            del outs
            # at least two timed calls after the warm-up, unless a call takes > 20 s
            reps = {nm: n_reps(first[nm][0], args.target_s, 2, args.max_reps, slow_s=20.0) for nm in runners}
            samples = interleave(runners, reps)
            timings = {}
            for nm in runners:
                s = samples[nm] if samples[nm] else [first[nm]]
                timings[nm] = summarise(s)
            rows.append({"constants": name, "n": n, "n_features": nf, "timings": timings, "skipped": skipped,
                         "f32_vs_alal": diff, "alal_1t_equals_2t": same_threads,
                         "prepared_vs_compute_vjp_max_abs": prepared_same})
            tot = {f"alal {k}t": (timings[f"alal {k}t compute"]["best_s"] + timings[f"alal {k}t vjp"]["best_s"])
                   for k in (1, 2)}
            msg = ", ".join(f"{k} {v / n * 1e6:.0f}" for k, v in tot.items())
            if torch_ok:
                msg += ", " + ", ".join(f"torchani {k}t {timings[f'torchani {k}t']['best_s'] / n * 1e6:.0f}"
                                        for k in (1, 2))
            log(f"[desc] {name} N={n}: µs/atom {msg}" + ("" if same_threads else "  (alal 1t != 2t output!)"))
            del runners
            gc.collect()
    dscribe_rows = []
    if 108 in args.sizes and not args.no_dscribe:
        dscribe_rows = dscribe_case(108, log, args.quick)
    return {"checks": checks, "rows": rows, "dscribe": dscribe_rows}


# ----------------------------------------------------------------------------------------------
# peak RSS (subprocesses)
# ----------------------------------------------------------------------------------------------


def vm_status_gib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: current RSS; VmHWM: peak RSS of this process
    image; unlike getrusage's ru_maxrss it is not inherited from the parent across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_child(spec: str) -> None:
    """Run one case and print JSON: baseline RSS (after imports + structure), peak RSS, output size."""
    kind, lib, n, extra, nt = spec.split(":")
    n, nt = int(n), int(nt)
    atoms = fcc_al(n)
    if kind == "nl":
        rc = float(extra)
        if lib == "alal":
            from alal.neighbors import NeighborList

            fn = lambda: NeighborList(rc, n_threads=nt).compute(atoms.positions, atoms.cell.array, True, "ijSDd")  # noqa: E731
        else:
            import vesin

            fn = lambda: vesin.NeighborList(cutoff=rc, full_list=True).compute(  # noqa: E731
                points=atoms.positions, box=atoms.cell.array, periodic=True, quantities="ijSDd")
    else:
        if lib == "alal":
            from alal.descriptors import AniDescriptor, ani_al

            desc = AniDescriptor(ani_al(), n_threads=nt)
            cot = np.random.default_rng(1).normal(size=(n, desc.n_features))
            fn = lambda: (desc.compute(atoms), desc.vjp(atoms, cot))  # noqa: E731
        else:
            import torch

            from alal.descriptors import ani_al

            comp = torchani_computer(ani_al(), torch.float32)
            cot = torch.tensor(np.random.default_rng(1).normal(size=(n, 96)), dtype=torch.float32)
            fn = lambda: torchani_call(comp, atoms, cot, torch.float32, nt)  # noqa: E731
    gc.collect()
    base = vm_status_gib("VmRSS")
    wall, cpu, out = timed(fn)
    leaves = out if isinstance(out, (list, tuple)) else [out]
    flat = []
    for leaf in leaves:
        flat.extend(leaf if isinstance(leaf, (list, tuple)) else [leaf])
    out_bytes = sum(getattr(a, "nbytes", 0) for a in flat)
    peak = vm_status_gib("VmHWM")
    print(json.dumps({"baseline_gib": base, "peak_gib": peak, "output_gib": out_bytes / 2**30, "wall_s": wall}))


def run_rss(args, log) -> dict[str, Any]:
    specs = []
    big_nl = 32000 if args.skip_large else 256000
    if args.quick:
        specs = [("nl", "alal", 4000, "6.5", 1), ("desc", "alal", 4000, "-", 1)]
    else:
        specs += [("nl", lib, big_nl, "6.5", nt) for lib, nt in (("alal", 1), ("alal", 2), ("vesin", 1))]
        specs += [("desc", "alal", n, "-", 1) for n in ((4000,) if args.skip_large else (4000, 32000))]
        specs += [("desc", "torchani", 4000, "-", 1)]
    out = {}
    for kind, lib, n, extra, nt in specs:
        what = "nl ijSDd rc=6.5" if kind == "nl" else "desc ANI-Al"
        label = f"{lib} {what} N={n} {nt}t"
        try:
            proc = subprocess.run([sys.executable, __file__, "--rss-child", f"{kind}:{lib}:{n}:{extra}:{nt}"],
                                  capture_output=True, text=True, timeout=300)
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
        except Exception as err:  # noqa: BLE001
            rec = {"error": f"{type(err).__name__}: {err}"}
        out[label] = rec
        log(f"[rss] {label}: {rec}")
    return out


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------


def fmt_ms(s: float | None) -> str:
    if s is None:
        return "—"
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:,.0f}"


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.2f}×"


def best(timings: dict[str, Any], name: str) -> float | None:
    t = timings.get(name)
    return None if t is None else t["best_s"]


def ratio(peer: float | None, alal: float | None) -> float | None:
    return None if peer is None or alal is None else peer / alal


def status_mark(rec: dict[str, Any], name: str) -> str:
    c = rec["checks"].get(name)
    if c is None:
        return ""
    return {"ok": "", "ref": " (ref)"}.get(c[0], f" **{c[0]}**")


def cell_entry(rec, name) -> str:
    if name in rec["skipped"]:
        return "skip"
    if name not in rec["timings"]:
        c = rec["checks"].get(name)
        return f"**{c[0]}**" if c else "—"
    t = rec["timings"][name]
    return fmt_ms(t["best_s"]) + ("¹" if t.get("single_call") else "") + status_mark(rec, name)


def case_label(rec) -> str:
    return f"{rec['system']} | {rec['n']} | {rec['cutoff']}"


def targets(nl: list[dict[str, Any]], desc: dict[str, Any] | None) -> list[str]:
    lines = []
    fcc = [r for r in nl if r["system"] == "fcc"]

    # T1: single-threaded >= 1.5x vesin throughput from 500 atoms up
    rows = [(r, ratio(best(r["timings"], "vesin"), best(r["timings"], "alal 1t")))
            for r in nl if r["n"] >= 500 and r["system"] != GAS]
    rows = [(r, x) for r, x in rows if x is not None]
    if rows:
        worst = min(rows, key=lambda t: t[1])
        fails = [f"{r['system']} {r['n']}/{r['cutoff']} Å ({x:.2f}×)" for r, x in rows if x < 1.5]
        rows_nc = [(r, ratio(best(r["timings"], "vesin copy=False"), best(r["timings"], "alal 1t"))) for r, _ in rows]
        rows_nc = [x for _, x in rows_nc if x is not None]
        med = [r["timings"]["vesin"]["median_s"] / r["timings"]["alal 1t"]["median_s"] for r, _ in rows]
        lines.append(
            f"- **Single-threaded ≥ 1.5× vesin from 500 atoms up: {'MET' if not fails else 'NOT MET'}.** "
            f"Speed-up of alal 1t over vesin (vesin time / alal time, full ijSDd lists) ranges {worst[1]:.2f}× – {max(x for _, x in rows):.2f}× over {len(rows)} "
            f"cases ≥ 500 atoms (median {np.median([x for _, x in rows]):.2f}×)"
            + (f"; below 1.5× in: {', '.join(fails)}" if fails else "")
            + (f". Against vesin with `copy=False` (no copy of its output buffers): {min(rows_nc):.2f}× – "
               f"{max(rows_nc):.2f}× (median {np.median(rows_nc):.2f}×)" if rows_nc else "")
            + f". From median instead of best times: {min(med):.2f}× – {max(med):.2f}× (median {np.median(med):.2f}×)."
            + (" At 256000 atoms vesin's default copy of its output spends most of its time in the kernel "
               "(page faults), hence the large ratios there." if any(r["n"] >= 256000 for r, _ in rows) else "")
        )
    gas = [(r, ratio(best(r["timings"], "vesin"), best(r["timings"], "alal 1t"))) for r in nl if r["system"] == GAS]
    gas = [(r, x) for r, x in gas if x is not None]
    if gas:
        lines.append(
            f"- **Beyond the systems the targets name: a gas of 32000 atoms at random places** ({GAS_BOX:.0f} Å "
            "periodic box; not counted above). alal 1t vs vesin: "
            + ", ".join(f"{r['cutoff']} Å {x:.2f}× ({r['n_pairs_full']:,} pairs)" for r, x in gas)
            + ". Few pairs per atom and atoms in random order in memory: both searches wait on cache misses "
            "more than they compute, and alal's lead over vesin is much smaller than in the crystal."
        )
    # T2: no slower than the fastest at 108 atoms
    small = [r for r in fcc if r["n"] == 108]
    for r in small:
        t = r["timings"]
        peers = {k: best(t, k) for k in ("vesin", "vesin copy=False", "matscipy", "ase") if k in t}
        fastest = min(peers, key=peers.get) if peers else None
        a = min(x for x in (best(t, "alal 1t"), best(t, "alal 2t")) if x is not None)
        x = ratio(peers[fastest], a) if fastest else None
        half = min(x for x in (best(t, "alal half 1t"), best(t, "alal half 2t")) if x is not None)
        nl_best = min((best(t, k) for k in ("nlrs 1t", "nlrs 2t") if k in t), default=None)
        xn = ratio(nl_best, half)
        lines.append(
            f"- **No slower than the fastest at 108 atoms, rc {r['cutoff']} Å:** full ijSDd lists "
            f"**{'MET' if x is not None and x >= 1.0 else 'NOT MET'}**: alal {fmt_ms(a)} ms vs the fastest "
            f"full-list peer ({fastest}) {fmt_ms(peers.get(fastest))} ms, {fmt_ratio(x)}. Half ijS lists "
            f"**{'MET' if xn is not None and xn >= 1.0 else 'NOT MET'}**: alal {fmt_ms(half)} ms vs neighborlist-rs "
            f"{fmt_ms(nl_best)} ms, {fmt_ratio(xn)}."
        )
    # T3: >= 1.8x from the second thread at >= 32000 atoms
    big = [r for r in fcc if r["n"] >= 32000]
    if big:
        xs = [(r, ratio(best(r["timings"], "alal 1t"), best(r["timings"], "alal 2t"))) for r in big]
        cpu = [r["timings"]["alal 2t"]["cpu_per_wall"] for r in big if "alal 2t" in r["timings"]]
        paired = [(r, r["scaling"]) for r in big if r.get("scaling")]
        if paired:
            # Best of all the samples of each call: those interleaved with the peers and the paired ones.
            pooled = [(r, min(best(r["timings"], "alal 1t"), p["best_1t_s"])
                       / min(best(r["timings"], "alal 2t"), p["best_2t_s"])) for r, p in paired]
            ok = len(paired) == len(big) and all(x >= 1.8 for _, x in pooled)
            lines.append(
                f"- **≥ 1.8× from the second thread at ≥ 32000 atoms: {'MET' if ok else 'NOT MET'}** "
                "(best 1-thread time over best 2-thread time, each the best of all its samples: those "
                "interleaved with the peers and those of alal's 1- and 2-thread calls alternated alone): "
                + ", ".join(f"{r['n']}/{r['cutoff']} Å: {fmt_ratio(x)}" for r, x in pooled)
                + ". Alternated alone: "
                + ", ".join(f"{r['n']}/{r['cutoff']} Å: {fmt_ratio(p['ratio'])} ({p['rounds']} rounds, "
                            f"median of rounds {fmt_ratio(p['median_round_ratio'])})" for r, p in paired)
                + ". Interleaved with the peers only: "
                + ", ".join(f"{r['n']}/{r['cutoff']} Å: {fmt_ratio(x)}" for r, x in xs)
                + f" (the 2-thread runs there used {min(cpu):.2f}–{max(cpu):.2f} CPU-s per wall-s; 2.0 = both "
                  "cores busy)."
            )
        else:
            ok = all(x is not None and x >= 1.8 for _, x in xs)
            lines.append(
                f"- **≥ 1.8× from the second thread at ≥ 32000 atoms: {'MET' if ok else 'NOT MET'}.** "
                + ", ".join(f"{r['n']}/{r['cutoff']} Å: {fmt_ratio(x)}" for r, x in xs)
                + f". The 2-thread runs used {min(cpu):.2f}–{max(cpu):.2f} CPU-s per wall-s (2.0 = both cores "
                  "busy), so on this shared machine the second core was only partly available; see the load "
                  "averages."
            )
    if desc and desc.get("rows"):
        parts, bests, preps = [], [], []
        for row in desc["rows"]:
            t = row["timings"]
            if "torchani 1t" not in t or "alal 1t prepared" not in t:
                continue
            alal = {k: t[f"alal {k}t compute"]["best_s"] + t[f"alal {k}t vjp"]["best_s"] for k in (1, 2)}
            prepared = {k: t[f"alal {k}t prepared"]["best_s"] for k in (1, 2)}
            torch_t = {k: t[f"torchani {k}t"]["best_s"] for k in (1, 2)}
            xp1, xp2 = torch_t[1] / prepared[1], torch_t[2] / prepared[2]
            xp = min(torch_t.values()) / min(prepared.values())
            xb = min(torch_t.values()) / min(alal.values())
            preps.append(xp)
            bests.append(xb)
            parts.append(f"{row['constants']} N={row['n']}: 1t {xp1:.1f}×, 2t {xp2:.1f}×, best/best {xp:.1f}×")
        if preps:
            lines.append(
                f"- **Descriptors + forces ≥ 5× torchani with the same constants: "
                f"{'MET' if min(preps) >= 5.0 else 'NOT MET'}** (judged on each library's best thread count, "
                f"{min(preps):.1f}× – {max(preps):.1f}×). Both sides find the neighbours once: torchani's timed "
                "call is one AEV forward (its own cell list) and one backward; alal's is the route its models "
                "take for energies and forces (`alal.autograd`: `prepare`, `forward_prepared`, `vjp_prepared`). "
                + "; ".join(parts) + ". The two separate calls `compute` + `vjp` search the neighbours twice: "
                f"best/best {min(bests):.1f}× – {max(bests):.1f}×. torchani with 2 threads is often much slower "
                "than with 1 on this loaded 2-core machine (OpenMP threads waiting for a busy core), which "
                "inflates the 2t ratios; the best/best column avoids that.")
    return lines


def write_report(res: dict[str, Any], path: Path) -> None:
    L: list[str] = []
    m, v = res["machine"], res["versions"]
    L.append("# alal core benchmark: neighbour lists and ANI descriptors vs peers\n")
    L.append(f"Generated by `benches/bench_core.py {' '.join(res['argv'])}` on {res['date']} "
             f"in {res['elapsed_s'] / 60:.1f} min.\n")
    L.append("## Summary\n")
    L.extend(targets(res.get("nl", []), res.get("desc")))
    bad = [(r, k, c) for r in res.get("nl", []) for k, c in r["checks"].items() if c[0] not in ("ok", "ref")]
    alal_bad = [(r, k, c) for r, k, c in bad if k.startswith("alal")]
    L.append(f"- **Correctness of alal's neighbour lists:** "
             + ("every alal output matched the reference (same sorted (i,j,S), D and d to 1e-10) and 1 vs 2 "
                "threads gave identical pairs." if not alal_bad else
                "MISMATCHES: " + "; ".join(f"{r['system']} {r['n']}/{r['cutoff']} {k}: {c[1]}"
                                         for r, k, c in alal_bad)))
    peer_bad = [(r, k, c) for r, k, c in bad if not k.startswith("alal")]
    if peer_bad:
        L.append("- **Peer mismatches / errors** (these timings are not comparable): "
                 + "; ".join(f"{k} on {r['system']} {r['n']}/{r['cutoff']} Å: {c[1]}" for r, k, c in peer_bad) + ".")
    if res.get("desc"):
        ch = res["desc"]["checks"]
        L.append("- **Descriptor cross-check:** alal vs float64 torchani (all constants in float64), features and "
                 "position gradients of a random cotangent: "
                 + "; ".join(f"{c['constants']} N={c['n']} {c['status']} (max |ΔG| {c['max_abs_dG']:.1e}, "
                             f"max |Δ∂| {c['max_abs_dgrad']:.1e})" for c in ch) + ".")
    la0, la1 = m["loadavg_at_start"], res["loadavg_at_end"]
    L.append(f"- **Noise:** the machine was shared (load average {la0[0]:.1f} at the start, {la1[0]:.1f} at the end "
             f"on {m['usable_cpus']} CPUs). Timings are best-of-N with the libraries interleaved round-robin, so "
             "ratios are more trustworthy than absolute times; 2-thread numbers are the least reliable.\n")

    L.append("## Machine and versions\n")
    L.append(f"- CPU: {m['cpu_model']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable), "
             f"{m['mem_total_gib']} GiB RAM ({m['mem_available_gib_at_start']} GiB available at start)")
    L.append(f"- {m['platform']}, Python {m['python']}")
    L.append("- " + ", ".join(f"{k} {val}" for k, val in v.items()))
    L.append("- Threads: alal `n_threads` 1 / 2 (rayon pool); vesin CPU backend, matscipy and ASE are serial "
             "(1 thread); neighborlist-rs `parallel=False` (1t) / `parallel=True` (its rayon pool, "
             f"{res.get('nlrs_threads', '?')} threads); torchani `torch.set_num_threads(1 / 2)`; dscribe serial "
             "(its `n_jobs` only parallelises over structures); NumPy's OpenBLAS held to 1 thread "
             f"(`OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}`: its idle threads spin and "
             "would take a core from the 2-thread runs; no timed call uses it). The `CPU/wall` columns below "
             "measure how many cores a call actually kept busy.\n")

    nl = res.get("nl", [])
    if nl:
        L.append("## 1. Neighbour lists\n")
        L.append("Full lists with i, j, S, D, d (`quantities=\"ijSDd\"`), periodic rattled fcc Al (a = 4.05 Å, "
                 "0.1 Å rattle, wrapped), a 2000-atom cluster (pbc False, zero cell), a 2048-atom sheared "
                 f"periodic cell and a gas of 32000 atoms at uniformly random places in a {GAS_BOX:.0f} Å periodic "
                 "box. Best time in ms (¹ = one call only; peers slower than "
                 f"{SLOW_CALL_S:.0f} s per call are timed once). Every output was checked before timing against "
                 "ASE (vesin above 32000 atoms): same sorted (i, j, S) and D, d to 1e-10; a flagged entry is "
                 "listed in the summary. `skip` = not run (reason in results.json).\n")
        L.append("| system | N | rc Å | pairs | alal 1t | alal 2t | vesin | vesin copy=False | matscipy | ase | "
                 "alal 1t Mpairs/s | alal 1t kernel % | alal 2t CPU/wall | alal CPU-s 2t / 1t |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in nl:
            t = r["timings"]
            a1 = best(t, "alal 1t")
            L.append(f"| {case_label(r)} | {r['n_pairs_full']:,} | "
                     + " | ".join(cell_entry(r, k) for k in ("alal 1t", "alal 2t", "vesin", "vesin copy=False",
                                                             "matscipy", "ase"))
                     + (f" | {r['n_pairs_full'] / a1 / 1e6:.0f} | " if a1 else " | — | ")
                     + (f"{100 * t['alal 1t']['sys_s_of_best'] / a1:.0f}" if a1 and a1 >= 0.05 else "—") + " | "
                     + (f"{t['alal 2t']['cpu_per_wall']:.2f}" if "alal 2t" in t else "—") + " | "
                     + (f"{t['alal 2t']['cpu_s_of_best'] / t['alal 1t']['cpu_s_of_best']:.2f}"
                        if a1 and a1 >= 0.05 and "alal 2t" in t else "—") + " |")
        L.append("\n`kernel %`: share of the best 1-thread call spent in the kernel (page faults of the freshly "
                 "allocated output arrays, at os.times()'s 10 ms resolution; shown from 50 ms). `CPU/wall`: CPU "
                 "seconds (all threads) per wall second of the 2-thread call, 2.0 if both cores were busy. "
                 "`CPU-s 2t / 1t`: total CPU time of the 2-thread call over that of the 1-thread call (1.0 = no "
                 "extra work from parallelising; includes rayon's spinning).\n")
        L.append("Speed-up of alal (peer time / alal time, > 1 means alal is faster); `2nd thread` is alal "
                 "1t time / alal 2t time.\n")
        L.append("| system | N | rc Å | vesin / alal 1t | vesin copy=False / alal 1t | matscipy / alal 1t | "
                 "ase / alal 1t | 2nd thread | vesin / alal 2t |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in nl:
            t = r["timings"]
            a1, a2 = best(t, "alal 1t"), best(t, "alal 2t")
            L.append(f"| {case_label(r)} | "
                     + " | ".join(fmt_ratio(ratio(best(t, k), a1)) for k in ("vesin", "vesin copy=False",
                                                                              "matscipy", "ase"))
                     + f" | {fmt_ratio(ratio(a1, a2))} | {fmt_ratio(ratio(best(t, 'vesin'), a2))} |")
        L.append("\n### Half lists vs neighborlist-rs\n")
        L.append("neighborlist-rs returns a half list with i, j and S only (no D, d), so it is compared with alal "
                 "in the same mode (`full_list=False`, `quantities=\"ijS\"`); its output was checked after "
                 "symmetrising. Best time in ms.\n")
        L.append("| system | N | rc Å | alal half 1t | alal half 2t | nlrs 1t | nlrs 2t | nlrs 1t / alal 1t | "
                 "nlrs 2t / alal 2t | nlrs check |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in nl:
            t = r["timings"]
            c = r["checks"].get("nlrs 1t", ["—", ""])
            L.append(f"| {case_label(r)} | "
                     + " | ".join(cell_entry(r, k) for k in ("alal half 1t", "alal half 2t", "nlrs 1t", "nlrs 2t"))
                     + f" | {fmt_ratio(ratio(best(t, 'nlrs 1t'), best(t, 'alal half 1t')))} | "
                       f"{fmt_ratio(ratio(best(t, 'nlrs 2t'), best(t, 'alal half 2t')))} | "
                       f"{c[0] if c[0] == 'ok' else '**' + c[0] + '**: ' + c[1]} |")
        notes = sorted({f"{k}: {n}" for r in nl for k, n in r["notes"].items()})
        if notes:
            L.append("\nNotes: " + "; ".join(notes) + ".")
        L.append("")

    d = res.get("desc")
    if d:
        L.append("## 2. Descriptors + forces\n")
        L.append("alal: `AniDescriptor(p).compute(atoms)` + `.vjp(atoms, cotangent)` (float64). torchani: "
                 "`AEVComputer.from_constants(...)` with the same constants, `num_species=1`, "
                 "`neighborlist='cell_list'`, float32, AEV + `torch.autograd.grad((aev*cot).sum(), positions)`. "
                 "`ANI-1x consts` = torchani's ANI-1x constants (Rc 5.2 / 3.5 Å, 48 features) on Al. Periodic fcc "
                 "Al as above. µs per atom (best); speed-up = torchani / alal (compute + vjp). `prepared` = "
                 "`pack` + `prepare` + `forward_prepared` + `vjp_prepared` (neighbourhoods found once for both; "
                 "its outputs were checked equal to compute/vjp to 1e-12).\n")
        L.append("| constants | N | feat | alal 1t compute | alal 1t vjp | alal 1t total | alal 2t total | "
                 "alal 1t prepared | alal 2t prepared | torchani 1t | torchani 2t | speed-up 1t | speed-up 2t | "
                 "speed-up 1t prepared | alal 2nd thread | f32 torchani vs alal |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for row in d["rows"]:
            t, n = row["timings"], row["n"]
            us = lambda s: "—" if s is None else f"{s / n * 1e6:.1f}"  # noqa: E731
            a1c, a1v = t["alal 1t compute"]["best_s"], t["alal 1t vjp"]["best_s"]
            a1, a2 = a1c + a1v, t["alal 2t compute"]["best_s"] + t["alal 2t vjp"]["best_s"]
            t1, t2 = best(t, "torchani 1t"), best(t, "torchani 2t")
            f32 = row["f32_vs_alal"]
            f32s = (f"max abs ΔG {f32['max_abs_dG_f32']:.1e}, max rel Δ∂ {f32['max_rel_dgrad_f32']:.1e}" if f32 else
                    "torchani skipped (memory)")
            p1, p2 = best(t, "alal 1t prepared"), best(t, "alal 2t prepared")
            L.append(f"| {row['constants']} | {n} | {row['n_features']} | {us(a1c)} | {us(a1v)} | {us(a1)} | {us(a2)} | "
                     f"{us(p1)} | {us(p2)} | "
                     f"{us(t1)} | {us(t2)} | {fmt_ratio(ratio(t1, a1))} | {fmt_ratio(ratio(t2, a2))} | "
                     f"{fmt_ratio(ratio(t1, p1))} | {fmt_ratio(a1 / a2)} | {f32s} |")
        bad_prep = [(row, k, v) for row in d["rows"] for k, v in (row.get("prepared_vs_compute_vjp_max_abs") or {}).items()
                    if max(v) > 1e-12]
        if bad_prep:
            L.append("\n**alal's prepared path differed from compute/vjp:** " + "; ".join(
                f"{row['constants']} N={row['n']} {k}: max |ΔG| {v[0]:.1e}, max |Δ∂| {v[1]:.1e}" for row, k, v in bad_prep))
        if any(not row["alal_1t_equals_2t"] for row in d["rows"]):
            L.append("\n**alal's descriptor output differed between 1 and 2 threads in some case (see results.json).**")
        for row in d["rows"]:
            for k, why in row["skipped"].items():
                L.append(f"\n{k} at {row['n']} atoms ({row['constants']}): {why}.")
        if d["dscribe"]:
            L.append("\n### dscribe ACSF (108 atoms)\n")
            L.append("32 g2 (ANI-Al η and shifts) + 64 g4 (η ∈ {0.005 … 1}, ζ ∈ {1, 2, 4, 16}, λ = ±1) + g1 = 97 "
                     "features. dscribe has a single cutoff: at 7.0 Å its g4 reach further than ANI-Al's 5.0 Å "
                     "angular terms (more work than alal does), at 5.0 Å its g2 stop short of ANI-Al's 7.0 Å "
                     "(less work); the two bracket a like-for-like setup. dscribe 2.1's ACSF derivatives are "
                     "numerical and materialise the full (N, N, 3, F) Jacobian; the full-derivative time is "
                     "extrapolated from `derivatives(include=[0])` and `include=[0, 1]` (measured). alal's vjp gives "
                     "forces without the Jacobian, so the comparison is of the route to forces, not of equal "
                     "outputs.\n")
            a108 = next((row for row in d["rows"] if row["constants"] == "ANI-Al" and row["n"] == 108), None)
            a_tot = a_cmp = None
            if a108:
                t = a108["timings"]
                a_cmp = t["alal 1t compute"]["best_s"]
                a_tot = a_cmp + t["alal 1t vjp"]["best_s"]
            L.append("| r_cut Å | descriptor ms | descriptor / alal 1t compute | descriptor + derivatives s "
                     "(extrapolated) | / alal 1t compute + vjp |")
            L.append("|---:|---:|---:|---:|---:|")
            for row in d["dscribe"]:
                L.append(f"| {row['r_cut']} | {row['create_s'] * 1e3:.0f} | {fmt_ratio(ratio(row['create_s'], a_cmp))} | "
                         f"{row['deriv_full_estimate_s']:.1f} | "
                         f"{fmt_ratio(ratio(row['deriv_full_estimate_s'], a_tot))} |")
        L.append("")

    rss = res.get("rss")
    if rss:
        L.append("## 3. Peak memory\n")
        L.append("Each case in a fresh subprocess: RSS after imports and building the structure (baseline), peak "
                 "RSS (`VmHWM` of /proc/self/status; `getrusage` maxrss would carry the parent's peak across "
                 "fork + exec) and the size of the returned arrays.\n")
        L.append("| case | baseline GiB | peak GiB | peak − baseline GiB | output GiB | wall s |")
        L.append("|---|---:|---:|---:|---:|---:|")
        for k, r in rss.items():
            if "error" in r:
                L.append(f"| {k} | error: {r['error']} | | | | |")
            else:
                L.append(f"| {k} | {r['baseline_gib']:.2f} | {r['peak_gib']:.2f} | "
                         f"{r['peak_gib'] - r['baseline_gib']:.2f} | {r['output_gib']:.2f} | {r['wall_s']:.2f} |")
        L.append("")
    L.append("Raw numbers (all samples, CPU times, check details, skip reasons): `benches/results.json`.")
    text = "\n".join(L) + "\n"
    # keep the sections written by the other benchmarks between their markers, at the end
    old = path.read_text() if path.exists() else ""
    for name in ("bench_model", "al_efficiency", "eval"):
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        i, j = old.find(begin), old.find(end)
        if 0 <= i < j:
            text += "\n" + old[i:j + len(end)] + "\n"
    path.write_text(text)


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="sizes 108,500,4000, fewer repeats, small RSS checks")
    ap.add_argument("--sizes", type=str, default=None,
                    help="comma-separated atom counts (4k^3), default 108,500,4000,32000,256000")
    ap.add_argument("--skip-large", action="store_true", help="drop 256000 (lists) and 32000 (descriptors)")
    ap.add_argument("--no-nl", action="store_true", help="skip the neighbour-list part")
    ap.add_argument("--no-desc", action="store_true", help="skip the descriptor part")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--no-dscribe", action="store_true", help="skip dscribe")
    ap.add_argument("--target-s", type=float, default=None, help="time to spend per library per case (s)")
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("--report-only", action="store_true",
                    help="re-render RESULTS.md from OUT_DIR/results.json without running anything")
    ap.add_argument("--rss-child", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    if args.report_only:
        write_report(json.loads((args.out_dir / "results.json").read_text()), args.out_dir / "RESULTS.md")
        return

    if args.sizes:
        args.sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    elif args.quick:
        args.sizes = [108, 500, 4000]
    else:
        args.sizes = list(ALL_SIZES)
    if args.skip_large:
        args.sizes = [n for n in args.sizes if n <= 32000]
    if args.target_s is None:
        args.target_s = 0.3 if args.quick else 1.0
    args.min_reps = 2 if args.quick else 3
    # Fast calls get up to 100 samples (still about target_s seconds each): their best times are
    # what the targets compare, and on a shared machine 25 samples of a 5 ms call often all
    # caught some noise (vesin at 4000 atoms: 6.5 ms best in one run, 7.7 ms in another).
    args.max_reps = 10 if args.quick else 100

    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    import neighborlist_rs

    res: dict[str, Any] = {
        "argv": sys.argv[1:], "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(), "versions": versions(), "nlrs_threads": neighborlist_rs.get_num_threads(),
    }
    log(f"machine {res['machine']}")
    log(f"versions {res['versions']}")
    try:
        if not args.no_nl:
            res["nl"] = run_nl(args, log)
        if not args.no_rss:
            res["rss"] = run_rss(args, log)
        if not args.no_desc:
            dargs = argparse.Namespace(**vars(args))
            if args.skip_large:
                dargs.sizes = [n for n in args.sizes if n < 32000]
            res["desc"] = run_desc(dargs, log, res.get("rss", {}))
    except Exception:  # noqa: BLE001
        res["error"] = traceback.format_exc()
        log("ERROR\n" + res["error"])
    res["elapsed_s"] = time.perf_counter() - t_start
    res["loadavg_at_end"] = os.getloadavg()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(res, indent=1, default=str))
    write_report(res, args.out_dir / "RESULTS.md")
    log(f"wrote {args.out_dir / 'RESULTS.md'} and results.json")


if __name__ == "__main__":
    main()
