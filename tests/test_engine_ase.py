"""The engine contract (alal.plugins.engine) and the built-in 'ase' engine.

Most runs use a stub committee whose mean is ASE's EMT (fast, stable dynamics) and whose spread
follows a script, so that each verdict is forced; one test runs a small real 'ani' committee."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

from alal.builders import crystal
from alal.engines.ase_md import AseEngine
from alal.errors import InvalidInputError, UnphysicalStructureError
from alal.plugins.engine import Engine, Protocol, SamplingResult, TrustLevels
from alal.plugins.model import FitReport, Model, Prediction
from alal.plugins.registry import load_plugin

HUGE = dict(energy_lower=1e3, energy_upper=2e3, force_lower=1e3, force_upper=2e3)


class StubModel(Model):
    """EMT energies and forces; the spread at check ``k`` (the k-th prediction with
    ``forces_std=True``, from 0) is ``energy(k)`` eV/atom and ``force(k)`` eV/Å on every atom."""

    name = "stub"

    def __init__(self, *, energy: Callable[[int], float] = lambda k: 0.0,
                 force: Callable[[int], float] = lambda k: 0.0,
                 fail_at_check: int | None = None, force_scale: float = 1.0) -> None:
        self.energy, self.force = energy, force
        self.fail_at_check, self.force_scale = fail_at_check, force_scale
        self.calls: list[bool] = []  # forces_std flag of each prediction

    n_members = 2
    elements = ("Al",)

    def predict(self, structures: Sequence[Atoms], *, calibrated: bool = True,
                forces_std: bool = True) -> list[Prediction]:
        out = []
        for atoms in structures:
            k = sum(self.calls)  # checks before this one
            self.calls.append(forces_std)
            if forces_std and k == self.fail_at_check:
                raise UnphysicalStructureError("the stub refuses this frame")
            a = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            a.calc = EMT()
            e, f = a.get_potential_energy(), a.get_forces() * self.force_scale
            s = a.get_stress() if a.pbc.all() else None
            e_std = self.energy(k) * len(a)
            out.append(Prediction(
                energy=e, forces=f, stress=s, energy_std=e_std,
                forces_std=np.full(len(a), self.force(k)) if forces_std else None,
                member_energies=np.array([e - e_std, e + e_std])))
        return out

    def fit(self, train, valid=None, *, warm_start=None) -> FitReport:  # pragma: no cover
        raise NotImplementedError

    def save(self, path) -> None:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def load(cls, path) -> Model:  # pragma: no cover
        raise NotImplementedError


@pytest.fixture(scope="module")
def fcc() -> Atoms:
    return crystal("Al", "fcc", n_atoms=32, rattle=0.02, rng=np.random.default_rng(0))


def protocol(**kw) -> Protocol:
    base = dict(steps=40, timestep_fs=2.0, temperature_start_K=600.0, temperature_end_K=900.0,
                temperature_amplitude_K=100.0, temperature_period_ps=0.05, check_interval=10)
    return Protocol(**{**base, **kw})


# -- the contract ---------------------------------------------------------------------------------
def test_temperature_schedule_and_density_ramp():
    p = Protocol(steps=1000, timestep_fs=2.0, temperature_start_K=300.0, temperature_end_K=1300.0,
                 temperature_amplitude_K=200.0, temperature_period_ps=4.0, density_end=0.8)
    assert p.duration_ps == 2.0
    assert p.temperature_K(0.0) == pytest.approx(300.0)
    assert p.temperature_K(2.0) == pytest.approx(1300.0 + 200.0)  # sin²(π/2) = 1
    assert p.temperature_K(1.0) == pytest.approx(800.0 + 100.0)  # sin²(π/4) = 1/2
    assert p.temperature_K(4.0) == pytest.approx(300.0 + 2000.0)  # a whole period: no oscillation
    assert p.max_temperature_K == 1500.0
    assert p.density(0.0) == 1.0 and p.density(1.0) == pytest.approx(0.9) and p.density(2.0) == pytest.approx(0.8)
    assert Protocol(**p.to_dict()) == p


def test_trust_levels_classify():
    t = TrustLevels(energy_lower=0.01, energy_upper=0.1, force_lower=0.1, force_upper=1.0)
    assert (t.max_force_lower, t.max_force_upper) == (pytest.approx(0.3), pytest.approx(3.0))
    quiet = np.full(10, 0.05)
    assert t.classify(0.001, quiet) == "known"
    assert t.classify(0.05, quiet) == "candidate"
    assert t.classify(0.2, quiet) == "unreliable"
    assert t.classify(0.001, np.full(10, 0.5)) == "candidate"
    assert t.classify(0.001, np.full(10, 2.0)) == "unreliable"
    one_hot = quiet.copy()
    one_hot[3] = 0.5  # mean still below 0.1, max above 0.3
    assert t.classify(0.001, one_hot) == "candidate"
    one_hot[3] = 5.0  # max above 3.0 (mean 0.545 only a candidate)
    assert t.classify(0.001, one_hot) == "unreliable"
    assert t.classify(float("nan"), quiet) == "unreliable"
    assert t.classify(0.001, np.array([0.01, np.inf])) == "unreliable"


@pytest.mark.parametrize(("kwargs", "key"), [
    (dict(energy_lower=0.2, energy_upper=0.1), "energy_lower"),
    (dict(force_lower=-1.0), "force_lower"),
    (dict(max_force_lower=5.0, max_force_upper=1.0), "max_force_lower"),
    (dict(min_distance=float("nan")), "min_distance"),
])
def test_trust_levels_refuse_bad_values(kwargs, key):
    with pytest.raises(InvalidInputError, match=key):
        TrustLevels(**kwargs)


@pytest.mark.parametrize(("kwargs", "key"), [
    (dict(steps=0), "steps"),
    (dict(timestep_fs=0.0), "timestep_fs"),
    (dict(check_interval=2.5), "check_interval"),
    (dict(temperature_K=(5000, 100)), "temperature_K"),
    (dict(amplitude_K=(-1, 10)), "amplitude_K"),
    (dict(period_ps=(0, 10)), "period_ps"),
    (dict(density_scale=(0.0, 1.1)), "density_scale"),
    (dict(ensemble="nve"), "ensemble"),
    (dict(ensemble="npt", density_scale=(0.9, 1.1)), "density_scale"),
    (dict(friction_per_fs=0), "friction_per_fs"),
    (dict(pressure_GPa=float("inf")), "pressure_GPa"),
    (dict(force_lower=2.0, force_upper=1.0), "force_lower"),
    (dict(energy_upper="high"), "energy_upper"),
])
def test_engine_refuses_bad_parameters_naming_the_key(kwargs, key):
    with pytest.raises(InvalidInputError, match=key):
        AseEngine(**kwargs)


def test_engine_is_a_plugin_with_keyword_only_parameters():
    assert load_plugin("engines", "ase") is AseEngine
    assert issubclass(AseEngine, Engine) and AseEngine.name == "ase"
    params = list(inspect.signature(AseEngine.__init__).parameters.values())[1:]
    assert params and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    with pytest.raises(TypeError):
        AseEngine(temperature=300)  # a misspelt key
    settings = AseEngine().settings()
    assert settings["force_lower"] == 0.10 and settings["max_force_upper"] == pytest.approx(3.0)
    assert settings["temperature_K"] == [100.0, 5000.0] and settings["steps"] == 2000


def test_draw_protocol_ranges_and_reproducibility():
    engine = AseEngine(temperature_K=(200, 400), amplitude_K=(0, 50), period_ps=(2, 3),
                       density_scale=(0.9, 1.1), steps=100, check_interval=7)
    draws = [engine.draw_protocol(np.random.default_rng(s)) for s in range(100)]
    for p in draws:
        assert 200 <= p.temperature_start_K <= 400 and 200 <= p.temperature_end_K <= 400
        assert 0 <= p.temperature_amplitude_K <= 50 and 2 <= p.temperature_period_ps <= 3
        assert p.density_start == 1.0 and 0.9 <= p.density_end <= 1.1
        assert (p.steps, p.check_interval, p.ensemble) == (100, 7, "nvt")
    assert len({p.temperature_start_K for p in draws}) == 100
    assert engine.draw_protocol(np.random.default_rng(5)) == engine.draw_protocol(np.random.default_rng(5))
    default = AseEngine().draw_protocol(np.random.default_rng(0))
    assert default.density_end == 1.0 and (default.steps, default.timestep_fs) == (2000, 2.0)
    with pytest.raises(InvalidInputError, match="rng"):
        engine.draw_protocol(5)  # type: ignore[arg-type]


# -- verdicts ---------------------------------------------------------------------------------------
def test_completed_run_checks_every_interval_and_asks_member_forces_only_there(fcc):
    model = StubModel(energy=lambda k: 1e-4, force=lambda k: 0.01 * (k + 1))
    start = fcc.copy()
    result = AseEngine(**HUGE).sample(model, start, seed=0, protocol=protocol(steps=45, check_interval=10))
    assert isinstance(result, SamplingResult)
    assert result.verdict == "completed" and result.candidates == []
    assert (result.steps, result.checks, result.unreliable_frames) == (45, 6, 0)  # 0, 10, 20, 30, 40, 45
    assert result.max_force_std_seen == pytest.approx(0.06)
    assert sum(model.calls) == result.checks  # per-member forces only at the checks
    assert model.calls.count(False) == result.steps  # one mean-force prediction per MD step
    assert result.seconds > 0 and result.to_dict()["protocol"]["steps"] == 45
    assert np.array_equal(start.positions, fcc.positions) and start.calc is None  # start untouched


def test_candidate_stops_the_run_and_carries_its_uncertainty(fcc):
    model = StubModel(energy=lambda k: 1e-4, force=lambda k: 0.05 if k < 2 else 0.2)
    engine = AseEngine(energy_lower=0.01, energy_upper=1.0, force_lower=0.1, force_upper=1.0)
    p = protocol()
    result = engine.sample(model, fcc, seed=3, protocol=p)
    assert result.verdict == "candidate" and result.unreliable_frames == 0
    assert (result.steps, result.checks) == (20, 3)
    (frame,) = result.candidates
    assert frame.calc is None and not frame.constraints and len(frame) == len(fcc)
    info = frame.info
    assert info["step"] == 20 and info["time_ps"] == pytest.approx(0.04)
    assert info["temperature_K"] == pytest.approx(p.temperature_K(0.02))  # the target of its chunk
    assert info["energy_std_per_atom"] == pytest.approx(1e-4)
    assert info["force_std_mean"] == pytest.approx(0.2) and info["force_std_max"] == pytest.approx(0.2)
    assert info["protocol"] == p.to_dict() and info["engine"] == "ase" and info["seed"] == 3
    assert not np.allclose(frame.get_scaled_positions(), fcc.get_scaled_positions(), atol=1e-3)


def test_energy_spread_alone_makes_a_candidate(fcc):
    model = StubModel(energy=lambda k: 0.02 * k)
    result = AseEngine(energy_lower=0.03, energy_upper=0.5).sample(model, fcc, seed=0, protocol=protocol())
    assert result.verdict == "candidate" and result.candidates[0].info["step"] == 20


def test_above_the_upper_level_is_unreliable_and_discarded(fcc):
    model = StubModel(force=lambda k: 0.05 if k < 1 else 5.0)
    result = AseEngine(force_lower=0.1, force_upper=1.0).sample(model, fcc, seed=0, protocol=protocol())
    assert result.verdict == "unreliable" and result.candidates == []
    assert (result.steps, result.checks, result.unreliable_frames) == (10, 2, 1)
    assert result.max_force_std_seen == pytest.approx(5.0) and "step 10" in result.reason


def test_a_start_far_beyond_the_upper_level_is_a_candidate_not_discarded(fcc):
    """The starting cell is built, not simulated: a huge spread there means "label me"."""
    result = AseEngine(force_lower=0.1, force_upper=1.0).sample(StubModel(force=lambda k: 5.0), fcc, seed=0,
                                                                 protocol=protocol())
    assert result.verdict == "candidate" and result.steps == 0 and len(result.candidates) == 1
    assert result.candidates[0].info["force_std_max"] == pytest.approx(5.0)


def test_warm_up_labels_the_frame_reached_instead_of_an_uncertain_start(fcc):
    # Check 0 (the start) is a candidate; after 15 warm-up steps, check 1 is a candidate too.
    model = StubModel(force=lambda k: 0.5)
    engine = AseEngine(force_lower=0.1, force_upper=1.0, warmup_steps=15)
    result = engine.sample(model, fcc, seed=0, protocol=protocol(warmup_steps=15))
    assert result.verdict == "candidate" and (result.steps, result.checks) == (15, 2)
    (frame,) = result.candidates
    assert frame.info["step"] == 15 and result.unreliable_frames == 0
    assert not np.allclose(frame.positions, fcc.positions, atol=1e-3)
    assert engine.settings()["warmup_steps"] == 15


def test_warm_up_that_reaches_known_ground_goes_on_checking_every_interval(fcc):
    model = StubModel(force=lambda k: 0.5 if k == 0 else 0.01)
    result = AseEngine(force_lower=0.1, force_upper=1.0).sample(model, fcc, seed=0,
                                                                 protocol=protocol(warmup_steps=5))
    assert result.verdict == "completed" and result.candidates == []
    assert (result.steps, result.checks) == (40, 6)  # 0, 5, 15, 25, 35, 40


def test_a_cold_start_is_labelled_as_built_without_warm_up(fcc):
    """An unrattled crystal (``builders.cold_fraction``) asks about the 0 K lattice itself."""
    cold = fcc.copy()
    cold.info["cold"] = True
    model = StubModel(force=lambda k: 0.5)
    result = AseEngine(force_lower=0.1, force_upper=1.0).sample(model, cold, seed=0,
                                                                 protocol=protocol(warmup_steps=15))
    assert result.verdict == "candidate" and (result.steps, result.checks) == (0, 1)
    (frame,) = result.candidates
    assert frame.info["step"] == 0 and frame.info["cold"] is True
    wrapped = cold.copy()
    wrapped.wrap()
    assert np.allclose(frame.positions, wrapped.positions)


def test_an_unreliable_warm_up_falls_back_to_the_start(fcc):
    model = StubModel(force=lambda k: 0.5 if k == 0 else 5.0)
    result = AseEngine(force_lower=0.1, force_upper=1.0).sample(model, fcc, seed=0,
                                                                 protocol=protocol(warmup_steps=10))
    assert result.verdict == "candidate" and result.unreliable_frames == 1
    (frame,) = result.candidates
    assert frame.info["step"] == 0
    wrapped = fcc.copy()
    wrapped.wrap()
    assert np.allclose(frame.positions, wrapped.positions)
    assert "warm-up frame unreliable" in result.reason and "step 10" in result.reason


def test_a_known_start_ignores_the_warm_up(fcc):
    model = StubModel(force=lambda k: 0.01 if k < 2 else 0.5)
    result = AseEngine(force_lower=0.1, force_upper=1.0).sample(model, fcc, seed=0,
                                                                 protocol=protocol(warmup_steps=25))
    assert result.verdict == "candidate" and result.candidates[0].info["step"] == 20


def test_overlapping_start_is_unreliable_before_the_model_sees_it():
    start = Atoms("Al2", positions=[(0, 0, 0), (0.5, 0, 0)], cell=[8, 8, 8], pbc=True)
    model = StubModel()
    result = AseEngine(min_distance=1.5).sample(model, start, seed=0, protocol=protocol())
    assert result.verdict == "unreliable" and (result.steps, result.checks) == (0, 1)
    assert model.calls == [] and "apart" in result.reason


@pytest.mark.parametrize("ensemble", ["nvt", "npt"])
def test_a_model_that_refuses_a_frame_makes_it_unreliable(fcc, ensemble):
    result = AseEngine(**HUGE, ensemble=ensemble).sample(
        StubModel(fail_at_check=2), fcc, seed=0, protocol=protocol(ensemble=ensemble))
    assert result.verdict == "unreliable" and result.steps == 20 and "refuses" in result.reason


def test_atoms_flying_apart_are_unreliable(fcc):
    model = StubModel(force_scale=1e4)  # absurd forces: atoms leave at many times their thermal speed
    result = AseEngine(**HUGE).sample(model, fcc, seed=0, protocol=protocol(temperature_amplitude_K=0.0))
    assert result.verdict == "unreliable" and result.steps == 10 and "thermal speed" in result.reason


def test_hot_emt_run_is_not_flagged(fcc):
    """A sane potential at the hottest default temperature passes the speed and distance checks."""
    p = protocol(steps=60, temperature_start_K=5000.0, temperature_end_K=5000.0, temperature_amplitude_K=2000.0,
                 temperature_period_ps=0.24)
    result = AseEngine(**HUGE).sample(StubModel(), fcc, seed=1, protocol=p)
    assert result.verdict == "completed", result.reason


def test_same_seed_same_trajectory(fcc):
    def run(seed: int) -> SamplingResult:
        model = StubModel(force=lambda k: 0.0 if k < 3 else 0.5)
        return AseEngine(force_lower=0.1, force_upper=1.0, steps=40, check_interval=10).sample(model, fcc, seed=seed)

    a, b, c = run(7), run(7), run(8)
    assert a.verdict == b.verdict == "candidate" and a.protocol == b.protocol
    assert np.array_equal(a.candidates[0].positions, b.candidates[0].positions)
    assert c.protocol != a.protocol
    assert not np.allclose(c.candidates[0].positions, a.candidates[0].positions)
    # the same protocol with another seed: other dynamics
    d = AseEngine(force_lower=0.1, force_upper=1.0).sample(
        StubModel(force=lambda k: 0.0 if k < 3 else 0.5), fcc, seed=8, protocol=a.protocol)
    assert d.protocol == a.protocol and not np.allclose(d.candidates[0].positions, a.candidates[0].positions)


def test_density_ramp_rescales_the_cell(fcc):
    p = protocol(density_end=0.8)
    model = StubModel(force=lambda k: 0.5 if k == 4 else 0.0)  # a candidate at the last check
    result = AseEngine(force_lower=0.1, force_upper=1.0).sample(model, fcc, seed=0, protocol=p)
    frame = result.candidates[0]
    assert frame.info["step"] == 40
    # the last chunk (steps 30-40) ran at the density of step 30
    assert fcc.get_volume() / frame.get_volume() == pytest.approx(p.density(0.06))
    assert np.allclose(frame.cell.cellpar()[3:], fcc.cell.cellpar()[3:])


def test_npt_changes_the_volume_not_the_shape(fcc):
    p = protocol(ensemble="npt", pressure_GPa=5.0, steps=30)
    model = StubModel(force=lambda k: 0.5 if k == 3 else 0.0)
    result = AseEngine(force_lower=0.1, force_upper=1.0, ensemble="npt").sample(model, fcc, seed=0, protocol=p)
    frame = result.candidates[0]
    assert frame.info["step"] == 30 and frame.info["protocol"]["ensemble"] == "npt"
    ratio = frame.cell.lengths() / fcc.cell.lengths()
    assert not np.allclose(ratio, 1.0, atol=1e-6) and np.allclose(ratio, ratio[0])


def test_sample_refuses_bad_arguments(fcc):
    engine, model = AseEngine(), StubModel()
    with pytest.raises(InvalidInputError, match="seed"):
        engine.sample(model, fcc, seed=-1)
    with pytest.raises(InvalidInputError, match="start"):
        engine.sample(model, "Al", seed=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="Cu"):
        engine.sample(model, Atoms("Cu", cell=[5, 5, 5], pbc=True), seed=0)
    with pytest.raises(InvalidInputError, match="model"):
        engine.sample(EMT(), fcc, seed=0)  # type: ignore[arg-type]
    cluster = Atoms("Al2", positions=[(0, 0, 0), (2.8, 0, 0)])
    with pytest.raises(InvalidInputError, match="npt"):
        engine.sample(model, cluster, seed=0, protocol=protocol(ensemble="npt"))
    with pytest.raises(InvalidInputError, match="protocol"):
        engine.sample(model, fcc, seed=0, protocol={"steps": 10})  # type: ignore[arg-type]


# -- a real committee ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ani():
    from alal.models.ani import AniModel
    from alal.testing.emt import emt_aluminium

    model = AniModel(n_members=3, hidden=(16, 16), max_epochs=2, progress=False)
    model.fit(emt_aluminium(6, seed=0, sizes=(8, 24)))
    return model


def test_ani_committee_run(ani):
    start = crystal("Al", "fcc", n_atoms=32)  # perfect fcc: zero forces by symmetry, a gentle start
    cold = protocol(steps=20, temperature_start_K=50.0, temperature_end_K=50.0, temperature_amplitude_K=0.0)
    result = AseEngine(**HUGE).sample(ani, start, seed=0, protocol=cold)
    assert result.verdict == "completed" and (result.steps, result.checks) == (20, 3), result.reason
    assert 0 < result.max_force_std_seen < math.inf
    strict = AseEngine(energy_lower=1e-9, energy_upper=1e3, force_lower=1e-9, force_upper=1e3)
    result = strict.sample(ani, start, seed=0, protocol=cold)
    assert result.verdict == "candidate" and result.candidates[0].info["step"] == 0  # the untrained start


def test_ani_refusing_coincident_atoms_is_a_verdict(ani):
    start = crystal("Al", "fcc", n_atoms=32)
    start.positions[1] = start.positions[0]  # the model raises for overlapping atoms
    result = AseEngine(**HUGE, min_distance=0.0).sample(ani, start, seed=0, protocol=protocol(steps=10))
    assert result.verdict == "unreliable" and "model failed" in result.reason
