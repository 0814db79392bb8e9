"""The child process of the ``pyscf`` oracle: ``python -m alal_pyscf._worker request.json PARENT_PID``.

Runs PySCF on one structure through the ladder of SCF recipes and writes ``result.json`` next to the
request. Imports neither alal nor torch: only PySCF and NumPy, after the parent has set the thread
counts in the environment.

Units: PySCF works in Hartree and Bohr; everything written out is in eV and Å. Forces are
−∂E/∂r (Hartree/Bohr × 27.211/0.52918 → eV/Å) and the stress is (1/V) ∂E/∂ε (Hartree/Bohr³ ×
27.211/0.52918³ → eV/Å³; PySCF's own ASE calculator multiplies by 27.211/0.52918 only, which makes
its stress 1/0.52918² = 3.571 times too small).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

HARTREE = 27.211386024367243  # eV, CODATA 2014 as ASE's units
BOHR = 0.5291772105638411  # Å


class SetupProblem(Exception):
    """No structure can be labelled (PySCF, a basis or a pseudopotential missing)."""


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


def recipes(params: dict[str, Any], periodic: bool) -> list[dict[str, Any]]:
    """The configured recipe, then safer ones, each from the density the previous one reached:
    more cycles with damping (and, for molecules, a level shift), then (periodic) a start at 4x the
    smearing width before converging at the configured width, or (molecules) second-order SCF.
    The converged result is that of the configured settings in every case."""
    n = int(params["max_cycles"])
    last = ({"name": "wide-smearing start", "max_cycle": 2 * n, "damp": 0.5, "wide_start": True}
            if periodic and params["smearing"] > 0 else
            {"name": "second-order SCF", "max_cycle": 2 * n, "damp": 0.0, "newton": True})
    return [
        {"name": "configured", "max_cycle": n, "damp": 0.0},
        {"name": "damped", "max_cycle": 2 * n, "damp": 0.5, "level_shift": 0.0 if periodic else 0.2},
        last,
    ][: 1 + int(params["retries"])]


def _import_pyscf() -> Any:
    try:
        import pyscf
        from pyscf import dft, gto  # noqa: F401
        from pyscf.pbc import dft as pbcdft, gto as pbcgto  # noqa: F401
    except ImportError as err:
        raise SetupProblem(f"PySCF cannot be imported ({err}); `pip install pyscf`") from err
    return pyscf


def _check_xc(xc: str) -> None:
    from pyscf.dft import libxc

    try:
        libxc.parse_xc(xc)
    except (KeyError, ValueError) as err:
        raise SetupProblem(f"xc {xc!r} is not a functional libxc knows ({err})") from err


def _build(request: dict[str, Any], log_path: Path) -> Any:
    """The PySCF Cell (periodic) or Mole (all axes non-periodic) of the request."""
    from pyscf import gto
    from pyscf.lib.exceptions import BasisNotFoundError
    from pyscf.pbc import gto as pbcgto

    import numpy as np
    from pyscf.data.elements import ELEMENTS

    p, a = request["params"], request["atoms"]

    atom = [(ELEMENTS[z], xyz) for z, xyz in zip(a["numbers"], a["positions"])]
    nelectron = sum(a["numbers"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "basis may be in basis-set-exchange"
            if request["periodic"]:
                system = pbcgto.Cell(atom=atom, a=a["cell"], unit="Angstrom", basis=p["basis"],
                                     pseudo=p["pseudo"], ke_cutoff=p["cutoff"] / HARTREE, verbose=4,
                                     output=str(log_path))
                system.build()
                # 2S: KUKS counts it over the whole k-mesh; KRKS ignores it (this value silences a
                # warning about an odd electron count per cell, which is fine over an even mesh).
                nk = int(np.prod(request["kpts"]))
                system.spin = (system.nelectron * nk) % 2 if p["spin"] else system.nelectron % 2
            else:
                system = gto.M(atom=atom, unit="Angstrom", basis=p["molecular_basis"], verbose=4,
                               output=str(log_path), spin=nelectron % 2)
    except BasisNotFoundError as err:
        which = ("basis / pseudo", f"{p['basis']} / {p['pseudo']}") if request["periodic"] else (
            "molecular_basis", p["molecular_basis"])
        raise SetupProblem(f"PySCF has no {which[0]} {which[1]} for this structure's elements: {err}") from err
    return system


def _method(system: Any, request: dict[str, Any], sigma: float) -> Any:
    from pyscf import dft
    from pyscf.pbc import dft as pbcdft
    from pyscf.pbc.df import FFTDF
    from pyscf.pbc.scf.smearing import smearing

    p = request["params"]
    unrestricted = p["spin"] or (system.spin != 0 and not request["periodic"])  # odd molecules: UKS
    if request["periodic"]:
        kpts = system.make_kpts(request["kpts"], with_gamma_point=True)
        mf = (pbcdft.KUKS if unrestricted else pbcdft.KRKS)(system, kpts=kpts)
        assert isinstance(mf.with_df, FFTDF)  # the one with analytic forces and stress
        if sigma > 0:
            mf = smearing(mf, sigma=sigma / HARTREE, method="fermi")
    else:
        mf = (dft.UKS if unrestricted else dft.RKS)(system)
    mf.xc = p["xc"]
    mf.conv_tol = p["energy_tolerance"] / HARTREE
    return mf


def _tune(mf: Any, recipe: dict[str, Any]) -> None:
    mf.max_cycle = recipe["max_cycle"]
    if recipe["damp"]:  # PySCF damps only the cycles before DIIS starts
        mf.damp, mf.diis_start_cycle, mf.diis_space = recipe["damp"], 8, 12
    mf.level_shift = recipe.get("level_shift", 0.0)


def _spin_broken_guess(mf: Any) -> Any:
    dm = mf.get_init_guess()
    return [dm[0] * 1.1, dm[1] * 0.9]


def _calculate(request: dict[str, Any], tmp: Path) -> dict[str, Any]:
    pyscf = _import_pyscf()
    import numpy as np

    p = request["params"]
    periodic = request["periodic"]
    _check_xc(p["xc"])
    attempts: list[dict[str, Any]] = []
    dm = None
    for k, recipe in enumerate(recipes(p, periodic)):
        write_json(tmp / "progress.json", {"recipe": recipe["name"], "attempt": k})
        log_path = tmp / f"pyscf-{k}.txt"
        system = _build(request, log_path)
        sigma = p["smearing"] if periodic else 0.0
        t0 = time.perf_counter()
        cycles = 0
        if recipe.get("wide_start"):
            wide = _method(system, request, 4 * sigma)
            _tune(wide, recipe)
            wide.conv_tol = max(wide.conv_tol, 1e-6)
            wide.kernel(dm)
            cycles += int(getattr(wide, "cycles", 0))
            dm = wide.make_rdm1()
        mf = _method(system, request, sigma)
        _tune(mf, recipe)
        if recipe.get("newton"):
            mf = mf.newton()
        if dm is None and p["spin"]:
            dm = _spin_broken_guess(mf)
        mf.kernel(dm)
        cycles += int(getattr(mf, "cycles", 0))
        dm = mf.make_rdm1()
        if not mf.converged:
            attempts.append({"recipe": recipe["name"], "converged": False, "max_cycle": recipe["max_cycle"],
                             "seconds": round(time.perf_counter() - t0, 3)})
            continue
        e_free = getattr(mf, "e_free", None) if sigma > 0 else None
        energy = float(mf.e_tot if e_free is None else e_free) * HARTREE  # the free energy when smeared
        grad = mf.nuc_grad_method()
        forces = -np.asarray(grad.kernel(), dtype=float) * (HARTREE / BOHR)
        stress = None
        if request["stress"]:
            sigma_xy = np.asarray(grad.get_stress(), dtype=float) * (HARTREE / BOHR**3)  # 3x3 from Ha/Bohr³
            sym = 0.5 * (sigma_xy + sigma_xy.T)
            stress = [sym[0, 0], sym[1, 1], sym[2, 2], sym[1, 2], sym[0, 2], sym[0, 1]]
        attempts.append({"recipe": recipe["name"], "converged": True, "max_cycle": recipe["max_cycle"],
                         "cycles": cycles, "seconds": round(time.perf_counter() - t0, 3)})
        info: dict[str, Any] = {
            "mode": "periodic" if periodic else "molecular", "method": type(mf).__name__,
            "recipe": recipe["name"], "attempt": k, "attempts": attempts, "scf_iterations": cycles,
            "pyscf_version": pyscf.__version__}
        if periodic:
            info.update(kpts=list(request["kpts"]), mesh=[int(n) for n in system.mesh])
        if e_free is not None:  # E − σS (the label), E, and E − σS/2 ≈ the zero-width limit
            info.update(energy_free=energy, energy_internal=float(mf.e_tot) * HARTREE,
                        energy_zero_width=float(mf.e_zero) * HARTREE)
        system.stdout.flush()
        info["log"] = log_path.read_text(errors="replace")
        return {"status": "ok", "energy": energy, "forces": forces.tolist(),
                "stress": None if stress is None else [float(s) for s in stress], "info": info}
    tried = "; ".join(f"{t['recipe']} ({t['max_cycle']} cycles)" for t in attempts)
    raise CalculationProblem(f"SCF did not converge with {len(attempts)} recipe(s): {tried}")


def _check(request: dict[str, Any]) -> dict[str, Any]:
    """check_setup: PySCF imports, knows the functional, the basis sets and pseudopotentials."""
    pyscf = _import_pyscf()
    _check_xc(request["params"]["xc"])
    from pyscf import gto
    from pyscf.lib.exceptions import BasisNotFoundError
    from pyscf.pbc import gto as pbcgto

    p = request["params"]
    missing = []
    for symbol in request["elements"]:
        for kind, name, load in (("basis", p["basis"], pbcgto.basis.load),
                                 ("pseudo", p["pseudo"], pbcgto.pseudo.load),
                                 ("molecular_basis", p["molecular_basis"], gto.basis.load)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    if not load(name, symbol):
                        raise BasisNotFoundError(name)
            except (BasisNotFoundError, KeyError, RuntimeError):
                missing.append(f"{kind} {name} for {symbol}")
    if missing:
        raise SetupProblem(f"PySCF has no {', '.join(missing)} (nothing is downloaded: choose another "
                           f"basis/pseudo parameter)")
    return {"status": "ok", "pyscf_version": pyscf.__version__}


def main(argv: list[str]) -> int:
    request_path, parent = Path(argv[1]), int(argv[2])
    die_with_parent(parent)
    import __main__

    __main__.__dict__.pop("__file__", None)  # PySCF would copy this file into every log
    tmp = request_path.parent
    request = json.loads(request_path.read_text())
    try:
        result = _check(request) if request.get("check") else _calculate(request, tmp)
    except SetupProblem as err:
        result = {"status": "setup", "reason": str(err)}
    except CalculationProblem as err:
        result = {"status": "calculation", "reason": str(err)}
    except Exception as err:  # noqa: BLE001 - PySCF may fail in any way on one structure
        traceback.print_exc()
        result = {"status": "calculation", "reason": f"{type(err).__name__}: {err}"}
    write_json(tmp / "result.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
