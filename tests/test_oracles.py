"""Oracle contract, the ASE-calculator adapter, the EMT oracle and the geometry checks."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from alal.errors import CalculationError, OracleSetupError, UnphysicalStructureError
from alal.geometry import check_geometry, closest_pair
from alal.oracles.emt import EmtOracle
from alal.plugins import AseCalculatorOracle, available, oracle_class


def test_emt_oracle_labels_equal_emt():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=0)
    label = EmtOracle().label(atoms)
    ref = atoms.copy()
    ref.calc = EMT()
    assert label.labels.energy == pytest.approx(ref.get_potential_energy(), abs=1e-12)
    np.testing.assert_allclose(label.labels.forces, ref.get_forces(), atol=1e-12)
    np.testing.assert_allclose(label.labels.stress, ref.get_stress(), atol=1e-12)
    assert label.seconds >= 0 and atoms.calc is None  # the caller's Atoms is left alone
    slab = atoms.copy()
    slab.pbc = (True, True, False)
    assert EmtOracle().label(slab).labels.stress is None
    assert EmtOracle(stress=False).label(atoms).labels.stress is None


def test_settings_hash_and_registry():
    assert EmtOracle().settings_hash == EmtOracle().settings_hash
    assert EmtOracle().settings_hash != EmtOracle(stress=False).settings_hash
    assert "emt" in available("oracles") and oracle_class("emt") is EmtOracle
    with pytest.raises(TypeError):
        EmtOracle(stres=True)  # a misspelt key is an error
    with pytest.raises(OracleSetupError, match="Fe"):
        EmtOracle().check_elements(["Al", "Fe"])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: Atoms("Al2", positions=[[0, 0, 0], [0.5, 0, 0]], cell=[6, 6, 6], pbc=True), "atoms 0 and 1"),
        (lambda: Atoms("Al", cell=[1.2, 6, 6], pbc=True), "atoms 0 and 0"),  # its own image
        (lambda: Atoms("Al2", positions=[[0, 0, 0], [np.nan, 0, 0]], cell=[6, 6, 6], pbc=True), "non-finite"),
        (lambda: Atoms("Al2", positions=[[0, 0, 0], [2, 0, 0]], cell=[[4, 0, 0], [8, 0, 0], [0, 0, 4]],
                       pbc=True), "no volume"),
        (lambda: Atoms("Al", cell=[0, 4, 4], pbc=True), "without a lattice vector"),
        (lambda: Atoms(), "no atoms"),
    ],
)
def test_unphysical_structures_are_refused_before_the_oracle(make, reason):
    calls = []

    class Spy(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=None, system_changes=all_changes):
            calls.append(1)
            super().calculate(atoms, properties, system_changes)
            self.results = {"energy": 0.0, "forces": np.zeros((len(atoms), 3))}

    oracle = AseCalculatorOracle(make_calculator=Spy, min_distance=1.5, stress=False)
    with pytest.raises(UnphysicalStructureError, match=reason):
        oracle.label(make())
    assert not calls


def test_failures_follow_the_taxonomy():
    class Broken(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=None, system_changes=all_changes):
            raise RuntimeError("SCF did not converge")

    class NaNs(Broken):
        def calculate(self, atoms=None, properties=None, system_changes=all_changes):
            Calculator.calculate(self, atoms, properties, system_changes)
            self.results = {"energy": np.nan, "forces": np.zeros((len(atoms), 3))}

    atoms = bulk("Al", "fcc", a=4.05)
    with pytest.raises(CalculationError, match="SCF did not converge"):
        AseCalculatorOracle(make_calculator=Broken, stress=False).label(atoms)
    with pytest.raises(CalculationError, match="non-finite"):
        AseCalculatorOracle(make_calculator=NaNs, stress=False).label(atoms)


def test_closest_pair_and_clean_geometry():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    check_geometry(atoms, min_distance=2.5)
    i, j, d = closest_pair(atoms, 3.0)
    assert d == pytest.approx(4.05 / np.sqrt(2)) and i != j
    assert closest_pair(atoms, 2.0) is None


def test_emt_passes_the_oracle_conformance_checks():
    from alal.testing.oracles import check_oracle

    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.rattle(0.05, seed=1)
    check_oracle(EmtOracle(), atoms)


def test_an_oracle_may_return_info_kept_with_its_label():
    class Logged(EmtOracle):
        name = "logged"

        def calculate(self, atoms):
            return super().calculate(atoms), {"log": "converged in 1 step", "recipe": "configured"}

    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    label = Logged().label(atoms)
    assert label.info == {"log": "converged in 1 step", "recipe": "configured"}
    assert label.labels.forces.shape == (4, 3) and label.seconds >= 0
    assert EmtOracle().label(atoms).info == {}


def test_the_kpoint_rule_is_gamma_centred_from_a_density():
    from alal.plugins.kpoints import kpoint_mesh

    cubic = bulk("Al", "fcc", a=4.05, cubic=True)
    assert kpoint_mesh(cubic, 3.5) == (6, 6, 6)  # ceil(2π/4.05 × 3.5) = ceil(5.43)
    assert kpoint_mesh(cubic.repeat((2, 1, 3)), 3.5) == (3, 6, 2)
    slab = cubic.copy()
    slab.pbc = (True, True, False)
    assert kpoint_mesh(slab, 3.5) == (6, 6, 1)
