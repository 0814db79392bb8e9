"""The ``gpaw`` oracle on real GPAW calculations, kept to seconds: 200 eV, a coarse k-point density,
1- and 2-atom aluminium cells."""

from __future__ import annotations

import json
import textwrap
import time

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

pytest.importorskip("gpaw")
pytest.importorskip("alal_gpaw")

from alal.config import ConfigError, parse_config  # noqa: E402
from alal.errors import CalculationError, InvalidInputError, OracleSetupError  # noqa: E402
from alal.plugins import oracle_class  # noqa: E402
from alal.testing.oracles import check_oracle  # noqa: E402
from alal_gpaw.oracle import GpawOracle, kpoint_mesh  # noqa: E402

FAST = {"cutoff": 200.0, "kpoint_density": 1.2}
TIGHT = {**FAST, "energy_tolerance": 1e-7, "density_tolerance": 1e-6, "force_tolerance": 1e-5}


def _pair() -> Atoms:
    """2-atom fcc Al (a 1x1x2 primitive supercell), rattled: forces of ~0.3 eV/Å."""
    atoms = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    return atoms


def test_entry_point_and_conformance():
    assert oracle_class("gpaw") is GpawOracle
    label = check_oracle(GpawOracle(**FAST), _pair())
    assert label.labels.stress is not None and label.info["recipe"] == "configured"
    assert "Converged" in label.info["log"] and label.info["scf_iterations"] > 1
    json.dumps(label.info)  # the store keeps it as JSON


def test_forces_are_derivatives_of_the_free_energy_label():
    """Smeared metal: the forces are −∂F/∂r with F the free energy, the energy label; the energy
    extrapolated to zero width (kept in info) is not their potential."""
    oracle = GpawOracle(**{**TIGHT, "smearing": 0.2})
    atoms = _pair()
    label = oracle.label(atoms)
    assert label.labels.energy == label.info["energy_free"]
    assert abs(label.info["energy_extrapolated"] - label.info["energy_free"]) > 1e-3
    h = 1e-3
    err_free, err_extrapolated = [], []
    for a, c in ((0, 1), (1, 0), (1, 2)):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        lp, lm = oracle.label(plus), oracle.label(minus)
        fd_free = -(lp.labels.energy - lm.labels.energy) / (2 * h)
        fd_extrapolated = -(lp.info["energy_extrapolated"] - lm.info["energy_extrapolated"]) / (2 * h)
        err_free.append(abs(fd_free - label.labels.forces[a, c]))
        err_extrapolated.append(abs(fd_extrapolated - label.labels.forces[a, c]))
    assert np.abs(label.labels.forces).max() > 0.1
    assert max(err_free) < 2e-4, err_free
    assert max(err_extrapolated) > 5 * max(err_free), (err_free, err_extrapolated)


def test_stress_is_the_strain_derivative_of_the_energy_label():
    """σ = (1/V) ∂F/∂ε on a sheared 1-atom cell (normal and shear components); the k-point mesh
    stays the same over the finite difference."""
    oracle = GpawOracle(**TIGHT)
    atoms = bulk("Al", "fcc", a=4.0)
    atoms.set_cell(atoms.cell @ (np.eye(3) + [[0.02, 0.01, 0.0], [0.01, -0.01, 0.0], [0.0, 0.0, 0.0]]),
                   scale_atoms=True)
    label = oracle.label(atoms)
    volume = atoms.get_volume()
    h = 2e-4
    for voigt, (i, j) in ((0, (0, 0)), (2, (2, 2)), (5, (0, 1))):
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[i, j] += sign * h / 2
            eps[j, i] += sign * h / 2
            strained = atoms.copy()
            strained.set_cell(atoms.cell @ (np.eye(3) + eps), scale_atoms=True)
            lab = oracle.label(strained)
            assert lab.info["kpts"] == label.info["kpts"]
            energies.append(lab.labels.energy)
        derivative = (energies[0] - energies[1]) / (2 * h) / volume  # ε_ij = ε_ji = h/2: σ_ij
        expected = label.labels.stress[voigt]
        assert derivative == pytest.approx(expected, abs=2e-5 + 0.02 * abs(expected)), (voigt, derivative, expected)
    assert abs(label.labels.stress[5]) > 1e-3  # the shear is real, so the check is not trivial


def test_one_kpoint_rule_gamma_centred_from_a_density():
    cubic = bulk("Al", "fcc", a=4.05, cubic=True)
    assert kpoint_mesh(cubic, 3.5) == (6, 6, 6)  # ceil(2π/4.05 × 3.5) = ceil(5.43)
    assert kpoint_mesh(cubic.repeat((2, 1, 3)), 3.5) == (3, 6, 2)
    slab = cubic.repeat((2, 2, 3))
    slab.pbc = (True, True, False)
    assert kpoint_mesh(slab, 3.5) == (3, 3, 1)
    settings = GpawOracle().settings()
    assert "Gamma-centred" in settings["kpoints"]["rule"] and settings["kpoints"]["density_per_inv_A"] == 3.5
    assert GpawOracle(kpoint_density=3.0).settings_hash != GpawOracle().settings_hash
    assert GpawOracle(threads=2, max_seconds=60.0).settings_hash == GpawOracle().settings_hash
    # A translated 1-atom cell has no shear stress (a shifted mesh gave it −1.4 GPa).
    one = bulk("Al", "fcc", a=4.05)
    one.positions += [0.31, -0.17, 0.42]
    label = GpawOracle(**FAST, threads=2).label(one)
    assert "OMP_NUM_THREADS: 2" in label.info["log"]  # set in the child's environment, whatever ours is
    assert label.info["kpts"] == list(kpoint_mesh(one, 1.2))
    assert np.abs(label.labels.stress[3:]).max() < 1e-5
    assert abs(label.labels.stress[0]) > 1e-4


def test_spin_polarised_aluminium_is_not_magnetic():
    atoms = bulk("Al", "fcc", a=4.05)
    paired = GpawOracle(**TIGHT).label(atoms)
    polarised = GpawOracle(**TIGHT, spin=True).label(atoms)
    assert abs(polarised.info["magnetic_moment"]) < 1e-3
    assert polarised.labels.energy == pytest.approx(paired.labels.energy, abs=1e-4)


@pytest.mark.parametrize(("params", "name"), [
    ({"cutoff": -200.0}, "cutoff"), ({"xc": "PBE0"}, "xc"), ({"kpoint_density": 0}, "kpoint_density"),
    ({"smearing": "wide"}, "smearing"), ({"retries": 3}, "retries"), ({"maxiter": 0}, "maxiter"),
    ({"threads": 0}, "threads"), ({"max_seconds": -1.0}, "max_seconds"), ({"spin": 1}, "spin"),
])
def test_a_bad_parameter_is_an_error_naming_it(params, name):
    with pytest.raises(InvalidInputError, match=name):
        GpawOracle(**params)


def test_a_misspelt_parameter_in_a_config_is_an_error_naming_it():
    with pytest.raises(TypeError, match="cutof"):
        GpawOracle(cutof=300.0)
    with pytest.raises(ConfigError, match=r"oracle\.params\.cutof"):
        parse_config({"oracle": {"name": "gpaw", "params": {"cutof": 300.0}}})
    parse_config({"oracle": {"name": "gpaw", "params": {"cutoff": 300.0, "kpoint_density": 3.5}}})


def test_the_aluminium_gpaw_example_is_a_valid_config():
    from alal.config import load_config
    from alal.examples import example_path

    cfg = load_config(example_path("aluminium-gpaw"))  # checks params against GpawOracle's signature
    oracle = GpawOracle(**cfg.oracle.params)
    assert cfg.oracle.name == "gpaw" and cfg.builders.sizes == (4, 32)
    assert oracle.settings()["kpoints"]["density_per_inv_A"] == 3.5 and oracle.cutoff == 300.0


def test_missing_paw_dataset_is_a_setup_error():
    oracle = GpawOracle(**FAST)
    oracle.check_setup()
    oracle.check_elements(["Al", "Cu"])
    with pytest.raises(OracleSetupError, match="Tc"):  # gpaw-data has no PBE dataset for Tc
        oracle.check_elements(["Al", "Tc"])
    with pytest.raises(OracleSetupError, match="Tc"):
        oracle.label(Atoms("Tc", cell=[3.0, 3.0, 3.0], pbc=True))


def test_wall_time_limit_kills_the_calculation():
    start = time.monotonic()
    with pytest.raises(CalculationError, match="max_seconds=0.5"):
        GpawOracle(**FAST, max_seconds=0.5).label(_pair())
    assert time.monotonic() - start < 5.0


def test_scf_failure_tries_the_safer_recipes_then_fails_with_the_reason():
    with pytest.raises(CalculationError, match=r"SCF did not converge with 3 recipe\(s\).*damped"):
        GpawOracle(**FAST, maxiter=1).label(bulk("Al", "fcc", a=4.05))
    with pytest.raises(CalculationError, match=r"with 1 recipe\(s\)"):
        GpawOracle(**FAST, maxiter=1, retries=0).label(bulk("Al", "fcc", a=4.05))


LOOP = """
[run]
elements = ["Al"]
seed = 3
workers = 1

[oracle]
name = "gpaw"
params = { cutoff = 200.0, kpoint_density = 1.5, maxiter = 1, retries = 2 }

[model]
name = "ani"
params = { n_members = 2, hidden = [8], max_epochs = 2, patience = 1 }

[engine]
name = "ase"
params = { steps = 20, check_interval = 5, temperature_K = [300.0, 600.0], force_lower = 1e-6, force_upper = 1e3, energy_lower = 1e-9, energy_upper = 1e3 }

[builders]
sizes = [2, 2]
kinds = { sc = 1.0 }

[loop]
max_generations = 2
samplers = 2
batch_size = 2
oracle_budget = 10
validation_fraction = 0.0
seed_data = ["seed.extxyz"]
"""


def test_unconverged_scf_through_the_loop_is_a_failed_row_and_the_run_goes_on(tmp_path):
    pytest.importorskip("torch")
    from ase.io import write

    from alal.cli import main as cli
    from alal.store import Store
    from alal.testing.emt import emt_aluminium

    write(tmp_path / "seed.extxyz", emt_aluminium(4, seed=2, sizes=(4, 8)))
    config = tmp_path / "gpaw.toml"
    config.write_text(textwrap.dedent(LOOP))
    assert cli(["run", str(config), "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "gpaw"
    store = Store.open(run_dir)
    failed = store.structures(state="failed")
    assert failed and store.counts().get("queued", 0) == 0
    for atoms in failed:
        assert atoms.info["failure_kind"] == "calculation"
        assert "SCF did not converge with 3 recipe(s)" in atoms.info["failure_reason"]
    history = [json.loads(s) for s in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [h["generation"] for h in history] == [0, 1, 2]  # generation 2 was trained after the failures
    assert history[1]["labels"].get("failed_calculation") == len(failed)
