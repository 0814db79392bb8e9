"""The ``ani`` committee model: fit to EMT aluminium, analytic forces and stress against finite
differences, invariances, persistence, calibration, the ASE calculator."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402

from alal.errors import InvalidInputError, LabelError, ModelFileError  # noqa: E402
from alal.models.ani import AniModel  # noqa: E402
from alal.plugins import labels_of  # noqa: E402
from alal.testing.emt import emt_aluminium  # noqa: E402

SMALL = {"n_members": 4, "hidden": (32, 32), "progress": False}


@pytest.fixture(scope="module")
def data():
    return emt_aluminium(20, seed=0, sizes=(16, 40))


@pytest.fixture(scope="module")
def fresh():
    """Structures no model of this module trains or calibrates on."""
    return emt_aluminium(10, seed=5, sizes=(16, 40))


@pytest.fixture(scope="module")
def trained(data):
    model = AniModel(**SMALL, max_epochs=30, seed=0)
    report = model.fit(data[:15], valid=data[15:])
    return model, report


@pytest.fixture(scope="module")
def model64(data):
    """A float64 model (for finite differences), briefly trained so its outputs are not trivial."""
    model = AniModel(n_members=3, hidden=(16, 16), dtype="float64", max_epochs=3, progress=False,
                     stress_weight=1.0)
    model.fit(data[:6])
    return model


def _rmse(model, structures):
    preds = model.predict(structures)
    e = [(p.energy - labels_of(a).energy) / len(a) for p, a in zip(preds, structures)]
    f = np.concatenate([(p.forces - labels_of(a).forces).ravel() for p, a in zip(preds, structures)])
    return float(np.sqrt(np.mean(np.square(e)))), float(np.sqrt(np.mean(f**2)))


def test_fit_learns_emt_aluminium(trained, fresh):
    model, report = trained
    e_rmse, f_rmse = _rmse(model, fresh)
    # Baselines: per-atom energies around their mean, and zero forces.
    e_pa = np.array([labels_of(a).energy / len(a) for a in fresh])
    f_all = np.concatenate([labels_of(a).forces.ravel() for a in fresh])
    assert e_rmse < 0.5 * e_pa.std()
    assert f_rmse < 0.5 * np.sqrt(np.mean(f_all**2))
    assert report.n_train == 15 and report.n_valid == 5
    assert len(report.members) == 4 and report.epochs >= 1
    assert report.history[-1]["train_loss"] < report.history[0]["train_loss"]
    assert set(report.valid_errors) == {"energy_rmse", "force_rmse"}
    # Members differ (own seeds and splits) and their splits are their own.
    p = model.predict(fresh[:1])[0]
    assert np.ptp(p.member_energies) > 0 and p.energy_std > 0 and p.forces_std.shape == (len(fresh[0]),)
    assert len({m["n_train"] for m in report.members}) >= 1


def test_forces_are_minus_the_energy_gradient(model64):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.1, seed=2)
    pred = model64.predict(atoms, calibrated=False)[0]
    h = 1e-5  # the descriptor's Gaussians (η = 44 Å⁻²) are steep: O(h²) errors matter at 1e-4
    rng = np.random.default_rng(0)
    for a, c in [(0, 0), (3, 1), (5, 2), (int(rng.integers(8)), int(rng.integers(3)))]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        fd = -(model64.predict(plus)[0].energy - model64.predict(minus)[0].energy) / (2 * h)
        assert pred.forces[a, c] == pytest.approx(fd, rel=1e-6, abs=1e-7)
    # Each member's forces too: the spread of forces matches finite differences of members.
    members_fd = []
    for c in range(3):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[1, c] += h
        minus.positions[1, c] -= h
        members_fd.append(-(model64.predict(plus)[0].member_energies
                            - model64.predict(minus)[0].member_energies) / (2 * h))
    members_fd = np.array(members_fd).T  # (K, 3)
    assert pred.forces_std[1] == pytest.approx(np.sqrt(members_fd.var(axis=0).mean()), rel=1e-5)


def test_stress_is_the_strain_derivative(model64):
    atoms = bulk("Al", "fcc", a=4.0).repeat((2, 2, 2))
    atoms.set_cell(atoms.cell[:] @ np.array([[1.0, 0.03, 0.0], [0.0, 1.0, 0.02], [0.01, 0.0, 0.98]]),
                   scale_atoms=True)
    atoms.rattle(0.05, seed=4)
    stress = model64.predict(atoms)[0].stress
    h = 1e-5
    voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    for v, (i, j) in enumerate(voigt):
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = h if i != j else h
        energies = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.set_cell(atoms.cell[:] @ (np.eye(3) + sign * eps), scale_atoms=True)
            energies.append(model64.predict(strained)[0].energy)
        d_e = (energies[0] - energies[1]) / (2 * h) / (2 if i != j else 1)
        assert stress[v] == pytest.approx(d_e / atoms.get_volume(), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("activation", ["silu", "softplus", "tanh"])
def test_smooth_activations_give_forces_that_are_the_energy_gradient(activation, data, tmp_path):
    model = AniModel(n_members=2, hidden=(16, 16), dtype="float64", max_epochs=2, progress=False,
                     activation=activation)
    model.fit(data[:4])
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.rattle(0.1, seed=3)
    pred = model.predict(atoms, calibrated=False)[0]
    h = 1e-5
    for a, c in [(0, 0), (2, 1), (3, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        fd = -(model.predict(plus)[0].energy - model.predict(minus)[0].energy) / (2 * h)
        assert pred.forces[a, c] == pytest.approx(fd, rel=1e-6, abs=1e-7)
    model.save(tmp_path / "m.safetensors")
    loaded = AniModel.load(tmp_path / "m.safetensors")
    assert loaded.config["activation"] == activation
    assert loaded.predict(atoms)[0].energy == pytest.approx(model.predict(atoms)[0].energy, rel=1e-12)
    with pytest.raises(InvalidInputError, match="warm_start"):  # another activation is another network
        AniModel(n_members=2, hidden=(16, 16), dtype="float64", progress=False).fit(data[:4], warm_start=model)


def test_invariant_under_rotation_translation_permutation(model64):
    atoms = bulk("Al", "fcc", a=4.05).repeat((2, 2, 2))
    atoms.rattle(0.1, seed=7)
    ref = model64.predict(atoms)[0]
    moved = atoms.copy()
    moved.rotate(37, (1, 2, 3), rotate_cell=True)
    moved.translate((0.3, -1.1, 2.0))
    rotated = model64.predict(moved)[0]
    assert rotated.energy == pytest.approx(ref.energy, abs=1e-9)
    rot = np.linalg.solve(atoms.cell[:], moved.cell[:])  # row-vector rotation
    np.testing.assert_allclose(rotated.forces, ref.forces @ rot, atol=1e-9)
    np.testing.assert_allclose(rotated.forces_std, ref.forces_std, atol=1e-9)
    perm = np.random.default_rng(1).permutation(len(atoms))
    permuted = model64.predict(atoms[perm])[0]
    assert permuted.energy == pytest.approx(ref.energy, abs=1e-9)
    np.testing.assert_allclose(permuted.forces, ref.forces[perm], atol=1e-9)


def test_mean_forces_without_member_forces(trained, data):
    model, _ = trained
    full = model.predict(data[:3])
    fast = model.predict(data[:3], forces_std=False)
    for a, b in zip(full, fast):
        assert b.forces_std is None and np.isnan(b.max_force_std)
        assert a.energy == b.energy and a.energy_std == b.energy_std
        np.testing.assert_allclose(a.forces, b.forces, atol=1e-9)
        np.testing.assert_allclose(a.stress, b.stress, atol=1e-12)


def test_batched_prediction_equals_one_by_one(trained, data):
    model, _ = trained
    together = model.predict(data[:5], max_atoms_per_batch=70)
    for atoms, p in zip(data[:5], together):
        alone = model.predict(atoms)[0]
        assert p.energy == pytest.approx(alone.energy, rel=1e-6)
        np.testing.assert_allclose(p.forces, alone.forces, atol=1e-5)


def test_save_load_round_trip_and_bad_files(trained, data, tmp_path):
    model, _ = trained
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = AniModel.load(path)
    for a, b in zip(model.predict(data[:3]), loaded.predict(data[:3])):
        assert a.energy == b.energy
        np.testing.assert_array_equal(a.forces, b.forces)
        np.testing.assert_array_equal(a.forces_std, b.forces_std)
    assert loaded.calibration == model.calibration
    from alal.plugins import load_model

    assert isinstance(load_model(path), AniModel)
    blob = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        AniModel.load(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="garbage"):
        AniModel.load(garbage)
    with pytest.raises(ModelFileError, match="no such"):
        AniModel.load(tmp_path / "missing.safetensors")
    from alal.models.file_format import read_model_file, write_model_file

    tensors, header = read_model_file(path)
    header["format_version"] = 99
    future = write_model_file(tmp_path / "future.safetensors", tensors,
                              {k: v for k, v in header.items() if k not in ("format", "format_version")})
    # write_model_file stamps the current version; forge a future one by rewriting the header.
    from safetensors.numpy import save

    import json

    meta = json.loads(json.dumps(header))
    future.write_bytes(save(tensors, metadata={"alal": json.dumps(meta)}))
    with pytest.raises(ModelFileError, match="version 99"):
        AniModel.load(future)
    pickled = tmp_path / "model.pt"
    torch.save({"x": torch.zeros(1)}, pickled)
    with pytest.raises(ModelFileError):
        AniModel.load(pickled)


def test_calibration_coverage_on_fresh_data(trained, fresh):
    """Scales fitted on held-out data make the predicted σ match errors on data never seen."""
    model, report = trained
    assert report.calibration is model.calibration and model.calibration.n_structures == 5
    preds = model.predict(fresh)
    err = np.concatenate([(p.forces - labels_of(a).forces).ravel() for p, a in zip(preds, fresh)])
    sigma = np.concatenate([np.repeat(p.forces_std, 3) for p in preds])
    within1 = np.mean(np.abs(err) < sigma)
    within2 = np.mean(np.abs(err) < 2 * sigma)
    assert 0.45 < within1 < 0.9, within1
    assert 0.8 < within2 <= 1.0, within2
    raw = model.predict(fresh, calibrated=False)
    assert preds[0].forces_std[0] == pytest.approx(raw[0].forces_std[0] * model.calibration.force_scale)


def test_calculator_in_ase_workflows(trained):
    from ase.md.verlet import VelocityVerlet
    from ase.optimize import BFGS

    model, _ = trained
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=1)
    atoms.calc = model.calculator()
    e = atoms.get_potential_energy()
    assert atoms.get_potential_energy(force_consistent=True) == e
    assert atoms.get_forces().shape == (32, 3) and atoms.get_stress().shape == (6,)
    forces = atoms.get_forces()
    assert "forces_std" not in atoms.calc.results  # per-member forces only when asked for
    forces_std = atoms.calc.get_property("forces_std", atoms)
    res = atoms.calc.results
    assert forces_std.shape == (32,) and res["max_force_std"] == forces_std.max()
    np.testing.assert_allclose(res["forces"], forces, atol=1e-6)
    assert res["energy_std"] >= 0 and res["energy"] == e
    atoms.calc = model.calculator(always_forces_std=True)
    atoms.get_forces()
    assert "forces_std" in atoms.calc.results
    VelocityVerlet(atoms, timestep=1.0 * 0.09822694788464063).run(3)  # 1 fs in ASE units ≈ 0.098
    BFGS(atoms, logfile=None).run(fmax=10.0, steps=2)
    cluster = Atoms("Al3", positions=[[0, 0, 0], [2.7, 0, 0], [0, 2.7, 0]])
    cluster.calc = model.calculator()
    assert np.isfinite(cluster.get_potential_energy())
    from ase.calculators.calculator import PropertyNotImplementedError

    with pytest.raises(PropertyNotImplementedError):
        cluster.get_stress()


def test_training_is_deterministic_and_warm_start_fine_tunes(data):
    kw = {**SMALL, "max_epochs": 4, "seed": 1}
    a, b = AniModel(**kw), AniModel(**kw)
    a.fit(data[:8])
    b.fit(data[:8])
    for (name, x), (_, y) in zip(a.committee.state_dict().items(), b.committee.state_dict().items()):
        assert torch.equal(x, y), name
    tuned = AniModel(**{**kw, "max_epochs": 2, "learning_rate": 1e-4})
    report = tuned.fit(data[:8], warm_start=a)
    # The fine-tune starts from a's weights: its first training loss is near a's last one.
    assert report.history[0]["train_loss"] < 3 * a_last_loss(a, data[:8])
    with pytest.raises(InvalidInputError, match="warm_start"):
        AniModel(**{**kw, "hidden": (8,)}).fit(data[:8], warm_start=a)


def a_last_loss(model, structures):
    e, f = _rmse(model, structures)
    return model.config["energy_weight"] * e**2 + model.config["force_weight"] * f**2


def test_two_elements():
    rng = np.random.default_rng(0)
    structures = []
    for k in range(6):
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 1))
        atoms.symbols[rng.permutation(len(atoms))[: 3 + k % 3]] = "Al"
        atoms.rattle(0.1, seed=k)
        atoms.calc = EMT()
        labelled = atoms.copy()
        labelled.calc = SinglePointCalculator(labelled, energy=atoms.get_potential_energy(),
                                              forces=atoms.get_forces(), stress=atoms.get_stress())
        structures.append(labelled)
    model = AniModel(elements=("Al", "Cu"), **SMALL, max_epochs=3)
    model.fit(structures)
    ref = model.committee.reference_energies.numpy()
    assert ref.shape == (2,) and np.isfinite(ref).all()
    p = model.predict(structures[0])[0]
    assert np.isfinite(p.energy) and p.forces.shape == (16, 3)
    with pytest.raises(InvalidInputError, match="Ni"):
        model.predict(bulk("Ni", "fcc", a=3.5))


def test_bad_configuration_and_labels(data):
    with pytest.raises(TypeError, match="n_member"):
        AniModel(n_member=3)  # misspelt key
    with pytest.raises(InvalidInputError, match="n_members"):
        AniModel(n_members=0)
    with pytest.raises(InvalidInputError, match="elements"):
        AniModel(elements=("Xx",))
    with pytest.raises(InvalidInputError, match="dtype"):
        AniModel(dtype="float16")
    with pytest.raises(InvalidInputError, match="activation"):
        AniModel(activation="relu")
    with pytest.raises(InvalidInputError, match="ani-al-smooth"):
        AniModel(descriptor="ani-2x")
    smooth = AniModel(descriptor="ani-al-smooth", n_members=2)
    assert smooth.descriptor.n_features == 76 and smooth.parameters.radial_eta == 4.0
    with pytest.raises(InvalidInputError, match="valid_fraction"):
        AniModel(valid_fraction=1.5)
    unlabelled = bulk("Al", "fcc", a=4.05)
    with pytest.raises(LabelError, match="training structure 1"):
        AniModel(**SMALL).fit([data[0], unlabelled])
    bad = data[0].copy()
    bad.calc = SinglePointCalculator(bad, energy=np.nan, forces=np.zeros((len(bad), 3)))
    with pytest.raises(LabelError, match="non-finite"):
        AniModel(**SMALL).fit([bad])
    with pytest.raises(InvalidInputError, match="at least one"):
        AniModel(**SMALL).fit([])


def test_registry():
    from alal.errors import PluginError
    from alal.plugins import available, model_class

    assert "ani" in available("models")
    assert model_class("ani") is AniModel
    with pytest.raises(PluginError, match="installed: .*ani"):
        model_class("nope")
    with pytest.raises(PluginError, match="kinds"):
        available("samplers")  # type: ignore[arg-type]


def test_force_loss_gradient_reaches_the_weights(model64, data):
    """Force training: d(force loss)/d(weight) through the descriptor's Jacobian–vector product
    equals finite differences of the loss."""
    from alal.models.ani.committee import TorchBatch

    desc = model64.descriptor
    batch = TorchBatch.build(desc, desc.pack(data[:2]))
    target = torch.from_numpy(np.concatenate([labels_of(a).forces for a in data[:2]]))
    weight = model64.committee.networks.weight_0_1

    def loss() -> torch.Tensor:
        _, grad_pos, grad_cells = model64.committee.energies_and_gradients(batch, desc, create_graph=True)
        return ((-grad_pos - target) ** 2).sum() + (grad_cells**2).sum()

    (grad,) = torch.autograd.grad(loss(), weight)
    h = 1e-5
    for idx in [(0, 0, 0), (1, 3, 5), (2, 15, 7)]:
        with torch.no_grad():
            weight[idx] += h
            up = loss().item()
            weight[idx] -= 2 * h
            down = loss().item()
            weight[idx] += h
        assert grad[idx].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


def test_conformance_checks_for_plugins(data, tmp_path):
    from alal.testing.models import check_model

    report = check_model(lambda: AniModel(**SMALL, max_epochs=2), data[:5], tmp_path)
    assert report.n_valid == 1


def test_features_constant_in_training_do_not_blow_up_elsewhere():
    """Scaling: a feature that barely varies in a narrow training set (perfect crystals) must not be
    multiplied by a huge factor when another structure has it."""
    from alal.builders import random_box

    train = []
    for k in range(4):
        atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
        atoms.rattle(0.002, seed=k)
        atoms.calc = EMT()
        labelled = atoms.copy()
        labelled.calc = SinglePointCalculator(labelled, energy=atoms.get_potential_energy(),
                                              forces=atoms.get_forces())
        train.append(labelled)
    model = AniModel(**SMALL, max_epochs=3)
    model.fit(train)
    assert float(model.committee.feature_inv_std.max()) < 1e3 * float(model.committee.feature_inv_std.median())
    liquid = random_box("Al", 24, volume_per_atom=17.0, min_distance=2.2, rng=np.random.default_rng(0))
    assert np.abs(model.predict(liquid)[0].forces).max() < 100.0
