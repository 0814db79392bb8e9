"""Conformance checks for oracle plugins (``alal.oracles`` entry points).

    from alal.testing.oracles import check_oracle

    def test_conformance():
        check_oracle(MyOracle(), bulk("Al", "fcc", a=4.05, cubic=True))

Each check raises ``AssertionError`` naming what is wrong.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
from ase import Atoms

from alal.errors import UnphysicalStructureError
from alal.plugins.oracle import Label, Oracle

__all__ = ["check_oracle"]


def check_oracle(oracle: Oracle, atoms: Atoms, *, forces_fd: bool = True, h: float = 1e-3,
                 rtol: float = 1e-2) -> Label:
    """The oracle's contract on one small periodic structure: keyword-only constructor, JSON
    settings with a stable hash, labels of the right shapes and finite, stress for a 3-D cell,
    forces equal to −∂E/∂r (central differences on two components, unless ``forces_fd=False`` for
    oracles too costly or noisy for it), overlapping atoms refused before the calculation."""
    cls = type(oracle)
    assert isinstance(oracle, Oracle), f"{cls.__name__} does not derive from alal.plugins.Oracle"
    assert isinstance(getattr(cls, "name", None), str) and cls.name, f"{cls.__name__}.name must be a string"
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, f"{cls.__name__}({p.name}) must be keyword-only"
    json.dumps(oracle.settings())
    assert oracle.settings_hash == oracle.settings_hash, "settings_hash must be stable"
    label = oracle.label(atoms)
    assert isinstance(label, Label), "label() must return an alal.plugins.Label"
    lab = label.labels
    assert np.isfinite(lab.energy) and lab.forces.shape == (len(atoms), 3), "energy or forces malformed"
    if atoms.pbc.all() and lab.stress is not None:
        assert lab.stress.shape == (6,), "stress must be Voigt (6,) in eV/Å³"
    if forces_fd:
        scale = max(float(np.abs(lab.forces).max()), 0.05)
        for a, c in ((0, 0), (len(atoms) - 1, 2)):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, c] += h
            minus.positions[a, c] -= h
            fd = -(oracle.label(plus).labels.energy - oracle.label(minus).labels.energy) / (2 * h)
            assert abs(fd - lab.forces[a, c]) <= rtol * scale, \
                f"force on atom {a}, axis {c} is {lab.forces[a, c]}, −dE/dr is {fd}"
    crowded = atoms.copy()
    crowded.positions[-1] = crowded.positions[0] + [0.05, 0.0, 0.0]
    try:
        oracle.label(crowded)
    except UnphysicalStructureError:
        pass
    else:
        raise AssertionError("atoms 0.05 Å apart must be refused with UnphysicalStructureError")
    return label
