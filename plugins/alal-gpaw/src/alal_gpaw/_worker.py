"""The child process of the ``gpaw`` oracle: ``python -m alal_gpaw._worker request.json PARENT_PID``.

Runs GPAW on one structure through the ladder of SCF recipes and writes ``result.json`` next to the
request. Imports neither alal nor torch: only GPAW, ASE and NumPy, after the thread counts are set
in the environment by the parent.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any


class SetupProblem(Exception):
    """No structure can be labelled (GPAW or a PAW dataset missing)."""


class CalculationProblem(Exception):
    """This structure could not be labelled."""


def die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when the one that started it dies."""
    if sys.platform == "linux":
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except OSError:  # pragma: no cover - another libc
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def recipes(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The configured recipe, then safer ones: more iterations, stronger damping of the density
    mixing (Pulay, small ``beta``, large metric ``weight``), then more empty bands. None changes
    the converged result (smearing, cutoff and k-points stay as configured)."""
    n = int(params["maxiter"])
    return [
        {"name": "configured", "maxiter": n, "mixer": None, "more_bands": False},
        {"name": "damped mixing", "maxiter": 2 * n,
         "mixer": {"backend": "pulay", "beta": 0.02, "nmaxold": 5, "weight": 100.0}, "more_bands": False},
        {"name": "strongly damped mixing, 1.5x bands", "maxiter": 3 * n,
         "mixer": {"backend": "pulay", "beta": 0.01, "nmaxold": 8, "weight": 100.0}, "more_bands": True},
    ][: 1 + int(params["retries"])]


def _check(request: dict[str, Any]) -> dict[str, Any]:
    """check_setup: GPAW imports and finds a PAW dataset of the functional for each element asked
    for (no element: for any element)."""
    try:
        import gpaw
    except ImportError as err:
        raise SetupProblem(f"GPAW cannot be imported ({err}); install it: see the alal-gpaw README") from err
    paths = [str(p) for p in gpaw.setup_paths if os.path.isdir(p)]
    xc = request["xc"]
    suffixes = (f".{xc}", f".{xc}.gz")
    if request["elements"]:
        missing = [e for e in request["elements"]
                   if not any(os.path.isfile(os.path.join(p, e + s)) for p in paths for s in suffixes)]
    else:
        missing = [] if any(n.endswith(suffixes) for p in paths for n in os.listdir(p)) else ["any element"]
    if missing:
        where = ", ".join(paths) or "no directory"
        example = missing[0] if missing[0] != "any element" else "Al"
        raise SetupProblem(
            f"GPAW finds no {xc} PAW dataset for {', '.join(missing)} (searched {where}): "
            f"`pip install gpaw-data`, or set GPAW_SETUP_PATH to a directory holding {example}.{xc}.gz "
            f"(`gpaw install-data DIR` downloads the standard ones; `gpaw dataset {example} -f {xc} -w` "
            f"generates one that they lack)")
    return {"status": "ok", "setup_paths": paths, "gpaw_version": gpaw.__version__}


def _calculate(request: dict[str, Any], tmp: Path) -> dict[str, Any]:
    try:
        import gpaw
        from ase import Atoms
        from gpaw import GPAW, PW, FermiDirac, KohnShamConvergenceError
    except ImportError as err:
        raise SetupProblem(f"GPAW cannot be imported ({err}); install it: see the alal-gpaw README") from err
    import numpy as np

    p = request["params"]
    a = request["atoms"]
    atoms = Atoms(numbers=a["numbers"], positions=a["positions"], cell=a["cell"], pbc=a["pbc"])
    attempts: list[dict[str, Any]] = []
    nbands = None
    for k, recipe in enumerate(recipes(p)):
        write_json(tmp / "progress.json", {"recipe": recipe["name"], "attempt": k})
        log_path = tmp / f"gpaw-{k}.txt"
        kwargs: dict[str, Any] = {
            "mode": PW(float(p["cutoff"])), "xc": p["xc"],
            "kpts": {"size": tuple(request["kpts"]), "gamma": True},
            "occupations": FermiDirac(float(p["smearing"])),
            "convergence": {"energy": p["energy_tolerance"], "density": p["density_tolerance"],
                            "forces": p["force_tolerance"]},
            "maxiter": recipe["maxiter"], "txt": str(log_path),
        }
        if p["spin"]:
            kwargs.update(spinpol=True, hund=True)
        if recipe["mixer"] is not None:
            kwargs["mixer"] = recipe["mixer"]
        if recipe["more_bands"] and nbands:
            kwargs["nbands"] = int(np.ceil(1.5 * nbands))
        atoms.calc = calc = GPAW(**kwargs)
        t0 = time.perf_counter()
        try:
            forces = np.array(atoms.get_forces(), dtype=float)
        except KohnShamConvergenceError:
            nbands = _number_of_bands(calc) or nbands
            attempts.append({"recipe": recipe["name"], "converged": False, "maxiter": recipe["maxiter"],
                             "seconds": round(time.perf_counter() - t0, 3)})
            continue
        except FileNotFoundError as err:
            if "PAW dataset" in str(err) or "setup" in str(err).lower():
                raise SetupProblem(f"{str(err).splitlines()[0]} (set GPAW_SETUP_PATH or `pip install gpaw-data`)") \
                    from err
            raise
        free = float(calc.get_property("free_energy", atoms))
        extrapolated = float(calc.get_property("energy", atoms))
        stress = np.array(atoms.get_stress(voigt=True), dtype=float).tolist() if request["stress"] else None
        iterations = int(calc.get_number_of_iterations())
        attempts.append({"recipe": recipe["name"], "converged": True, "maxiter": recipe["maxiter"],
                         "iterations": iterations, "seconds": round(time.perf_counter() - t0, 3)})
        magmom = float(calc.get_magnetic_moment(atoms)) if p["spin"] else None
        _flush_log(calc)
        return {"status": "ok", "energy": free, "forces": forces.tolist(), "stress": stress,
                "info": {"energy_free": free, "energy_extrapolated": extrapolated, "recipe": recipe["name"],
                         "attempt": k, "attempts": attempts, "scf_iterations": iterations,
                         "magnetic_moment": magmom, "kpts": list(request["kpts"]),
                         "gpaw_version": gpaw.__version__, "log": log_path.read_text(errors="replace")}}
    tried = "; ".join(f"{t['recipe']} ({t['maxiter']} iterations)" for t in attempts)
    raise CalculationProblem(f"SCF did not converge with {len(attempts)} recipe(s): {tried}")


def _flush_log(calc: Any) -> None:
    fd = getattr(getattr(calc, "log", None), "fd", None)
    if fd is not None and not fd.closed:
        fd.flush()


def _number_of_bands(calc: Any) -> int | None:
    try:
        return int(calc.get_number_of_bands())
    except Exception:  # noqa: BLE001 - only a hint for the next recipe
        return None


def main(argv: list[str]) -> int:
    request_path, parent = Path(argv[1]), int(argv[2])
    die_with_parent(parent)
    tmp = request_path.parent
    request = json.loads(request_path.read_text())
    try:
        result = _check(request) if request.get("check") else _calculate(request, tmp)
    except SetupProblem as err:
        result = {"status": "setup", "reason": str(err)}
    except CalculationProblem as err:
        result = {"status": "calculation", "reason": str(err)}
    except Exception as err:  # noqa: BLE001 - GPAW may fail in any way on one structure
        traceback.print_exc()
        result = {"status": "calculation", "reason": f"{type(err).__name__}: {err}"}
    write_json(tmp / "result.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
