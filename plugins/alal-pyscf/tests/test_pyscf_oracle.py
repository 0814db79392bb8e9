"""The ``pyscf`` oracle on real PySCF calculations, kept to seconds: gth-szv, a 200 eV mesh, 2x2x2 k
or fewer, 1- and 2-atom aluminium cells, a water molecule."""

from __future__ import annotations

import json
import textwrap
import time

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

pytest.importorskip("pyscf")
pytest.importorskip("alal_pyscf")

from alal.config import ConfigError, parse_config  # noqa: E402
from alal.errors import CalculationError, InvalidInputError, OracleSetupError  # noqa: E402
from alal.plugins import oracle_class  # noqa: E402
from alal.testing.oracles import check_oracle  # noqa: E402
from alal_pyscf.oracle import PyscfOracle, kpoint_mesh  # noqa: E402

FAST = {"basis": "gth-szv", "pseudo": "gth-pbe", "cutoff": 200.0, "kpoint_density": 0.5}
TIGHT = {**FAST, "energy_tolerance": 1e-9}


def _pair() -> Atoms:
    """2-atom fcc Al (a 2x1x1 primitive supercell), rattled; k-mesh 1x2x2 at FAST's density."""
    atoms = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    return atoms


def test_entry_point_and_conformance():
    assert oracle_class("pyscf") is PyscfOracle
    # Forces against finite differences: test_forces_are_derivatives_of_the_free_energy_label.
    label = check_oracle(PyscfOracle(**FAST), _pair(), forces_fd=False)
    assert label.labels.stress is not None and label.info["recipe"] == "configured"
    assert label.info["mode"] == "periodic" and label.info["kpts"] == [1, 2, 2]
    assert "converged SCF energy" in label.info["log"] and label.info["scf_iterations"] >= 1
    json.dumps(label.info)  # the store keeps it as JSON


def test_forces_are_derivatives_of_the_free_energy_label():
    """Smeared metal: the forces are −∂(E − σS)/∂r, and E − σS is the energy label; E alone (kept
    in info as energy_internal) is not their potential."""
    # Γ only (the cost) has a gap: a wide smearing makes the occupations fractional all the same.
    oracle = PyscfOracle(**{**TIGHT, "smearing": 1.0, "kpoint_density": 0.2})
    atoms = _pair()
    label = oracle.label(atoms)
    assert label.labels.energy == pytest.approx(label.info["energy_free"], abs=1e-9)
    h = 2e-3
    err_free, err_internal = [], []
    for a, c in ((0, 1), (1, 2)):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        lp, lm = oracle.label(plus), oracle.label(minus)
        fd_free = -(lp.labels.energy - lm.labels.energy) / (2 * h)
        fd_internal = -(lp.info["energy_internal"] - lm.info["energy_internal"]) / (2 * h)
        err_free.append(abs(fd_free - label.labels.forces[a, c]))
        err_internal.append(abs(fd_internal - label.labels.forces[a, c]))
    assert np.abs(label.labels.forces).max() > 0.1
    assert max(err_free) < 1e-3, err_free
    assert max(err_internal) > 5 * max(err_free), (err_free, err_internal)


def test_stress_is_the_strain_derivative_in_ev_per_cubic_angstrom():
    """σ = (1/V) ∂E/∂ε, eV/Å³, on a sheared 1-atom cell. PySCF's own ASE calculator converts
    Hartree/Bohr³ with 27.211/0.529 instead of 27.211/0.529³: 3.571 times too small."""
    oracle = PyscfOracle(**TIGHT)
    atoms = bulk("Al", "fcc", a=4.0)
    atoms.set_cell(atoms.cell @ (np.eye(3) + [[0.02, 0.01, 0.0], [0.01, -0.01, 0.0], [0.0, 0.0, 0.0]]),
                   scale_atoms=True)
    label = oracle.label(atoms)
    volume = atoms.get_volume()
    h = 2e-4
    for voigt, (i, j) in ((0, (0, 0)), (5, (0, 1))):
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[i, j] += sign * h / 2
            eps[j, i] += sign * h / 2
            strained = atoms.copy()
            strained.set_cell(atoms.cell @ (np.eye(3) + eps), scale_atoms=True)
            lab = oracle.label(strained)
            assert lab.info["kpts"] == label.info["kpts"] and lab.info["mesh"] == label.info["mesh"]
            energies.append(lab.labels.energy)
        derivative = (energies[0] - energies[1]) / (2 * h) / volume  # ε_ij = ε_ji = h/2: σ_ij
        expected = label.labels.stress[voigt]
        assert derivative == pytest.approx(expected, rel=0.01, abs=2e-5), (voigt, derivative, expected)
    assert abs(label.labels.stress[5]) > 5e-3  # a real shear: a unit error would show


def test_molecules_without_periodicity_use_molecular_dft():
    oracle = PyscfOracle(molecular_basis="def2-svp", energy_tolerance=1e-9, min_distance=0.5)
    water = molecule("H2O")
    water.positions[1] += [0.05, 0.0, -0.03]
    label = oracle.label(water)
    assert label.info["mode"] == "molecular" and label.info["method"] == "RKS"
    assert label.labels.stress is None and "energy_free" not in label.info
    h = 1e-3
    for a, c in ((1, 0),):
        plus, minus = water.copy(), water.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        fd = -(oracle.label(plus).labels.energy - oracle.label(minus).labels.energy) / (2 * h)
        assert fd == pytest.approx(label.labels.forces[a, c], abs=2e-3), (a, c)
    assert np.abs(label.labels.forces).max() > 0.5
    radical = Atoms("OH", positions=[[0, 0, 0], [0.98, 0, 0]])  # odd electron count: UKS
    assert oracle.label(radical).info["method"] == "UKS"
    assert "Threads 1" in label.info["log"] and "input file" not in label.info["log"]
    two = PyscfOracle(molecular_basis="def2-svp", threads=2, min_distance=0.5).label(water)
    assert "Threads 2" in two.info["log"]  # set in the child's environment, whatever ours is


def test_spin_unrestricted_aluminium_is_not_magnetic():
    atoms = bulk("Al", "fcc", a=4.05)
    restricted = PyscfOracle(**TIGHT).label(atoms)
    unrestricted = PyscfOracle(**TIGHT, spin=True).label(atoms)
    assert restricted.info["method"] == "SmearingKRKS" and unrestricted.info["method"] == "SmearingKUKS"
    assert unrestricted.labels.energy == pytest.approx(restricted.labels.energy, abs=1e-5)
    np.testing.assert_allclose(unrestricted.labels.stress, restricted.labels.stress, atol=1e-6)


def test_one_kpoint_rule_gamma_centred_from_a_density():
    cubic = bulk("Al", "fcc", a=4.05, cubic=True)
    assert kpoint_mesh(cubic, 1.5) == (3, 3, 3)  # ceil(2π/4.05 × 1.5) = ceil(2.33)
    slab = cubic.repeat((2, 2, 3))
    slab.pbc = (True, True, False)
    assert kpoint_mesh(slab, 1.5) == (2, 2, 1)
    settings = PyscfOracle().settings()
    assert "Gamma-centred" in settings["periodic"]["kpoints"]["rule"]
    assert settings["periodic"]["density_fitting"] == "FFTDF"
    assert PyscfOracle(kpoint_density=1.5).settings_hash != PyscfOracle().settings_hash
    assert PyscfOracle(threads=2, max_seconds=60.0).settings_hash == PyscfOracle().settings_hash


@pytest.mark.parametrize(("params", "name"), [
    ({"cutoff": 10.0}, "cutoff"), ({"xc": ""}, "xc"), ({"kpoint_density": -1.0}, "kpoint_density"),
    ({"smearing": -0.1}, "smearing"), ({"retries": -1}, "retries"), ({"max_cycles": 0}, "max_cycles"),
    ({"threads": 1.5}, "threads"), ({"max_seconds": 0}, "max_seconds"), ({"basis": None}, "basis"),
    ({"energy_tolerance": 0.0}, "energy_tolerance"),
])
def test_a_bad_parameter_is_an_error_naming_it(params, name):
    with pytest.raises(InvalidInputError, match=name):
        PyscfOracle(**params)


def test_a_misspelt_parameter_in_a_config_is_an_error_naming_it():
    with pytest.raises(TypeError, match="ke_cutoff"):
        PyscfOracle(ke_cutoff=20.0)
    with pytest.raises(ConfigError, match=r"oracle\.params\.ke_cutoff"):
        parse_config({"oracle": {"name": "pyscf", "params": {"ke_cutoff": 20.0}}})
    parse_config({"oracle": {"name": "pyscf", "params": {"cutoff": 600.0, "basis": "gth-szv"}}})


def test_missing_basis_or_unknown_functional_is_a_setup_error():
    PyscfOracle(**FAST).check_setup()
    with pytest.raises(OracleSetupError, match="gth-dzvp for Tc"):  # no GTH basis for Tc in PySCF
        PyscfOracle().check_elements(["Al", "Tc"])
    with pytest.raises(OracleSetupError, match="gth-dzvp"):
        PyscfOracle().label(Atoms("Tc", cell=[2.8, 2.8, 2.8], pbc=True))
    with pytest.raises(OracleSetupError, match="pbbe"):
        PyscfOracle(**FAST, xc="pbbe").check_setup()
    with pytest.raises(OracleSetupError, match="gth-nonsense"):
        PyscfOracle(**{**FAST, "basis": "gth-nonsense"}).label(bulk("Al", "fcc", a=4.05))


def test_wall_time_limit_kills_the_calculation():
    start = time.monotonic()
    with pytest.raises(CalculationError, match="max_seconds=0.5"):
        PyscfOracle(**FAST, max_seconds=0.5).label(_pair())
    assert time.monotonic() - start < 5.0


def test_scf_failure_tries_the_safer_recipes_then_fails_with_the_reason():
    with pytest.raises(CalculationError, match=r"SCF did not converge with 3 recipe\(s\).*wide-smearing start"):
        PyscfOracle(**FAST, max_cycles=1).label(_pair())


LOOP = """
[run]
elements = ["Al"]
seed = 3
workers = 1

[oracle]
name = "pyscf"
params = { basis = "gth-szv", cutoff = 200.0, kpoint_density = 0.2, max_cycles = 1, retries = 2 }

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
    config = tmp_path / "pyscf.toml"
    config.write_text(textwrap.dedent(LOOP))
    assert cli(["run", str(config), "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "pyscf"
    store = Store.open(run_dir)
    failed = store.structures(state="failed")
    assert failed and store.counts().get("queued", 0) == 0
    for atoms in failed:
        assert atoms.info["failure_kind"] == "calculation"
        assert "SCF did not converge with 3 recipe(s)" in atoms.info["failure_reason"]
    history = [json.loads(s) for s in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [h["generation"] for h in history] == [0, 1, 2]  # generation 2 was trained after the failures
    assert history[1]["labels"].get("failed_calculation") == len(failed)
