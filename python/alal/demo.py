"""``alal-demo``: neighbour-list and descriptor timings on an aluminium supercell, checked against ASE.

Until the active-learning loop exists this is the package's main job: it shows that the native
core is installed, correct (pair set equal to ASE's) and fast.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list

from alal import _core
from alal.descriptors import AniDescriptor, ani_al
from alal.neighbors import neighbor_list


def _best_of(repeat: int, fn) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alal-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=6, help="supercell repetitions of the 4-atom cubic cell")
    parser.add_argument("--cutoff", type=float, default=5.0, help="neighbour-list cutoff, Å")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: all)")
    args = parser.parse_args(argv)

    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(args.repeat)
    atoms.rattle(0.1, seed=0)
    n = len(atoms)
    print(f"alal {_core.__version__}: fcc Al, {n} atoms, a = 4.05 Å, rattled 0.1 Å, "
          f"threads = {args.threads or _core.default_threads()}")

    i, j, d = neighbor_list("ijd", atoms, args.cutoff, n_threads=args.threads)
    ai, aj = ase_neighbor_list("ij", atoms, args.cutoff)
    same = len(i) == len(ai) and set(zip(i.tolist(), j.tolist())) == set(zip(ai.tolist(), aj.tolist()))
    t_alal = _best_of(5, lambda: neighbor_list("ijSd", atoms, args.cutoff, n_threads=args.threads))
    t_ase = _best_of(2, lambda: ase_neighbor_list("ijSd", atoms, args.cutoff))
    print(f"neighbour list ({args.cutoff} Å): {len(i)} pairs, same as ASE: {same}; "
          f"alal {t_alal * 1e3:.2f} ms, ASE {t_ase * 1e3:.1f} ms ({t_ase / t_alal:.0f}x)")

    desc = AniDescriptor(ani_al(), n_threads=args.threads)
    features = desc.compute(atoms)
    t_g = _best_of(3, lambda: desc.compute(atoms))
    cot = np.ones_like(features)
    t_vjp = _best_of(3, lambda: desc.vjp(atoms, cot))
    print(f"ANI-Al descriptor: {features.shape[1]} features/atom; forward {t_g / n * 1e6:.1f} µs/atom, "
          f"forces (vector-Jacobian product) {t_vjp / n * 1e6:.1f} µs/atom")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
