"""Conformance checks for model plugins (``alal.models`` entry points).

A third-party model runs these against itself, e.g. in its own pytest suite::

    from alal.testing.models import check_model
    from alal.testing.emt import emt_aluminium

    def test_conformance(tmp_path):
        check_model(lambda: MyModel(n_members=3), emt_aluminium(6, seed=0, sizes=(8, 24)), tmp_path)

Each check raises ``AssertionError`` with what went wrong. Tolerances allow float32 networks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from alal.errors import ModelFileError
from alal.plugins.model import FitReport, Model, Prediction

__all__ = ["check_model", "check_signature", "check_predictions", "check_forces", "check_invariance",
           "check_persistence", "check_calculator"]


def check_signature(cls: type[Model]) -> None:
    """A subclass of :class:`~alal.plugins.Model` with a name and keyword-only parameters (so a
    config's ``params`` map onto it and a misspelt key is an error)."""
    assert isinstance(cls, type) and issubclass(cls, Model), f"{cls} does not derive from alal.plugins.Model"
    assert isinstance(getattr(cls, "name", None), str) and cls.name, f"{cls.__name__}.name must be a string"
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, \
            f"{cls.__name__}({p.name}): constructor parameters must be keyword-only, without **kwargs"


def check_predictions(model: Model, structures: Sequence[Atoms]) -> list[Prediction]:
    """Shapes, finiteness and consistency of :meth:`Model.predict`."""
    preds = model.predict(structures)
    assert len(preds) == len(structures), "one prediction per structure"
    for k, (p, atoms) in enumerate(zip(preds, structures)):
        n = len(atoms)
        assert isinstance(p, Prediction), f"structure {k}: predict must return Prediction objects"
        assert np.isfinite(p.energy), f"structure {k}: non-finite energy"
        assert p.forces.shape == (n, 3) and np.isfinite(p.forces).all(), f"structure {k}: bad forces"
        assert p.forces_std is not None and p.forces_std.shape == (n,), f"structure {k}: bad forces_std"
        assert (p.forces_std >= 0).all() and p.energy_std >= 0, f"structure {k}: negative spread"
        assert p.member_energies.shape == (model.n_members,), f"structure {k}: member_energies shape"
        assert np.isclose(p.member_energies.mean(), p.energy, rtol=1e-6, atol=1e-6), \
            f"structure {k}: energy is not the committee mean"
        if p.stress is not None:
            assert p.stress.shape == (6,) and np.isfinite(p.stress).all(), f"structure {k}: bad stress"
    return preds


def check_forces(model: Model, atoms: Atoms, *, h: float = 1e-3, rtol: float = 2e-2) -> None:
    """Committee-mean forces equal −∂E/∂r by central differences (a few random components)."""
    forces = model.predict([atoms])[0].forces
    scale = max(float(np.abs(forces).max()), 1e-2)
    rng = np.random.default_rng(0)
    for _ in range(4):
        a, c = int(rng.integers(len(atoms))), int(rng.integers(3))
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        fd = -(model.predict([plus])[0].energy - model.predict([minus])[0].energy) / (2 * h)
        assert abs(fd - forces[a, c]) <= rtol * scale, \
            f"force on atom {a}, axis {c}: {forces[a, c]} vs finite difference {fd}"


def check_invariance(model: Model, atoms: Atoms, *, atol: float = 1e-4) -> None:
    """Energy invariant and forces covariant under rotation and translation; permutation of atoms."""
    ref = model.predict([atoms])[0]
    moved = atoms.copy()
    moved.rotate(29, (1, -2, 2), rotate_cell=True)
    moved.translate((0.7, 0.2, -0.4))
    rot = np.linalg.solve(atoms.cell[:], moved.cell[:]) if atoms.cell.rank == 3 else None
    got = model.predict([moved])[0]
    scale = max(abs(ref.energy), 1.0)
    assert abs(got.energy - ref.energy) <= atol * scale, "energy changes under rotation + translation"
    if rot is not None:
        np.testing.assert_allclose(got.forces, ref.forces @ rot, atol=atol * max(1.0, np.abs(ref.forces).max()))
    perm = np.random.default_rng(1).permutation(len(atoms))
    got = model.predict([atoms[perm]])[0]
    assert abs(got.energy - ref.energy) <= atol * scale, "energy changes under a permutation of atoms"
    np.testing.assert_allclose(got.forces, ref.forces[perm], atol=atol * max(1.0, np.abs(ref.forces).max()))


def check_persistence(model: Model, structures: Sequence[Atoms], tmp_path: Path) -> None:
    """save → load gives the same predictions; a corrupt file raises ModelFileError."""
    path = Path(tmp_path) / f"{model.name}.model"
    model.save(path)
    loaded = type(model).load(path)
    for a, b in zip(model.predict(structures), loaded.predict(structures)):
        assert np.isclose(a.energy, b.energy, rtol=1e-9, atol=1e-9), "energy differs after save/load"
        np.testing.assert_allclose(a.forces, b.forces, atol=1e-9)
        np.testing.assert_allclose(a.forces_std, b.forces_std, atol=1e-9)
    bad = Path(tmp_path) / "corrupt.model"
    bad.write_bytes(path.read_bytes()[:100])
    try:
        type(model).load(bad)
    except ModelFileError:
        pass
    else:
        raise AssertionError("loading a truncated model file must raise alal.errors.ModelFileError")


def check_calculator(model: Model, atoms: Atoms) -> None:
    """The ASE calculator gives the model's prediction and the spread properties."""
    atoms = atoms.copy()
    atoms.calc = model.calculator()
    pred = model.predict([atoms])[0]
    assert np.isclose(atoms.get_potential_energy(), pred.energy, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(atoms.get_forces(), pred.forces, atol=1e-9)
    for name in ("energy_std", "forces_std", "max_force_std"):
        assert atoms.calc.get_property(name, atoms) is not None, f"calculator lacks {name}"


def check_model(make_model: Callable[[], Model], train: Sequence[Atoms], tmp_path: Path) -> FitReport:
    """Every check above on a model made by ``make_model`` and fitted on ``train`` (≥ 4 labelled
    structures; a few epochs are enough). Returns the fit report."""
    model = make_model()
    check_signature(type(model))
    report = model.fit(train[:-1], valid=train[-1:])
    assert isinstance(report, FitReport), "fit must return a FitReport"
    check_predictions(model, train)
    check_forces(model, train[0])
    check_invariance(model, train[0])
    check_persistence(model, train[:2], tmp_path)
    check_calculator(model, train[0])
    return report
