"""``alal eval``: every oracle value against an independent computation with EMT, the model side
end to end with a tiny committee, the report files, property selection and errors."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk, fcc100, fcc110, fcc111
from ase.calculators.emt import EMT
from ase.constraints import FixCartesian
from ase.eos import EquationOfState
from ase.geometry.rdf import get_rdf
from ase.optimize import FIRE

pytest.importorskip("torch")

from alal.cli import main as cli  # noqa: E402
from alal.config import parse_config, to_toml  # noqa: E402
from alal.errors import InvalidInputError  # noqa: E402
from alal.evaluation import QUICK, evaluate, select_properties  # noqa: E402
from alal.evaluation.properties import liquid, stability, test_set  # noqa: E402
from alal.evaluation.settings import parse_assignment  # noqa: E402
from alal.testing.emt import emt_aluminium  # noqa: E402

ALL = ["eos", "elastic", "vacancy", "interstitial", "surfaces", "stacking_fault", "phases", "phonons",
       "liquid", "stability", "test_set"]
TITLES = ["Equation of state", "Elastic constants", "Vacancy", "Self-interstitial", "Surface energies",
          "Stacking fault", "Phase energies", "Phonons", "Liquid RDF", "MD stability", "Test-set errors"]
EV_A2_TO_J_M2 = units._e * 1e20


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory with an EMT config and a tiny trained committee (3 members, 8×8, 3 epochs)."""
    from alal.models.ani import AniModel

    run = tmp_path_factory.mktemp("eval") / "run"
    (run / "models" / "gen-0000").mkdir(parents=True)
    cfg = parse_config({"run": {"elements": ["Al"]}, "oracle": {"name": "emt"},
                        "model": {"name": "ani", "params": {"n_members": 3, "hidden": [8, 8], "max_epochs": 3}}})
    (run / "config.toml").write_text(to_toml(cfg))
    frames = emt_aluminium(12, seed=1, sizes=(8, 24))
    model = AniModel(elements=("Al",), n_members=3, hidden=(8, 8), max_epochs=3, patience=2, progress=False,
                     n_threads=1)
    model.fit(frames[:9], frames[9:])
    model.save(run / "models" / "gen-0000" / "model.safetensors")
    return run


@pytest.fixture(scope="module")
def evaluated(tiny_run) -> dict:
    """``alal eval RUN --quick`` on the tiny run: the parsed eval.json."""
    assert cli(["eval", str(tiny_run), "--quick", "--no-progress"]) == 0
    return json.loads((tiny_run / "report" / "eval.json").read_text())


def oracle(data: dict, name: str) -> dict:
    out = data["properties"][name]
    assert not out["errors"], out["errors"]
    return out["oracle"]


# -- independent EMT references -----------------------------------------------------------------
def emt_energy(atoms: Atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = EMT()
    return float(atoms.get_potential_energy())


def _minimum_of(energy, lo: float, hi: float) -> tuple[float, float]:
    """(x, E) at the minimum of a smooth 1-D function: a grid, then a quartic fit near its minimum."""
    x = np.linspace(lo, hi, 41)
    e = np.array([energy(v) for v in x])
    k = int(np.clip(np.argmin(e), 4, len(x) - 5))
    p = np.polyfit(x[k - 4:k + 5], e[k - 4:k + 5], 4)
    fine = np.linspace(x[k - 4], x[k + 4], 4001)
    j = int(np.argmin(np.polyval(p, fine)))
    return float(fine[j]), float(np.polyval(p, fine[j]))


@functools.cache
def emt_fcc() -> tuple[float, float]:
    """EMT aluminium's fcc lattice constant (Å) and energy per atom (eV), by hand."""
    return _minimum_of(lambda a: emt_energy(bulk("Al", "fcc", a=a)), 3.9, 4.1)


def reported_fcc(data: dict) -> tuple[float, float]:
    """The oracle's lattice constant as alal eval found it (checked against :func:`emt_fcc` in
    the EOS test) and the energy per atom there, by hand: the structure tests start from it, as
    the fault energy, for one, changes by 0.07 mJ/m² between a = 3.99427 and 3.99438 Å."""
    a0 = data["properties"]["eos"]["oracle"]["lattice_constant_A"]
    return a0, emt_energy(bulk("Al", "fcc", a=a0))


# -- oracle values against independent computations ----------------------------------------------
def test_eos_oracle_matches_a_direct_fit(evaluated):
    eos = oracle(evaluated, "eos")
    a0, e0 = emt_fcc()
    assert eos["lattice_constant_A"] == pytest.approx(a0, abs=2e-3)
    volumes = np.linspace(0.94, 1.06, 15) * a0**3 / 4
    energies = [emt_energy(bulk("Al", "fcc", a=(4 * v) ** (1 / 3))) for v in volumes]
    v0, _, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    assert eos["volume_per_atom_A3"] == pytest.approx(v0, rel=2e-3)
    assert eos["bulk_modulus_GPa"] == pytest.approx(b / units.GPa, rel=0.02)
    isolated = Atoms("Al", positions=[[10, 10, 10]], cell=[20, 20, 20], pbc=False)
    assert eos["cohesive_energy_eV"] == pytest.approx(emt_energy(isolated) - e0, abs=1e-3)
    # EMT's aluminium (Jacobsen, Stoltze and Nørskov 1996): cohesive energy 3.28 eV, a0 ≈ 4.0 Å
    assert eos["cohesive_energy_eV"] == pytest.approx(3.28, abs=0.01)
    assert 3.98 < eos["lattice_constant_A"] < 4.01
    assert eos["isolated_atom_std_eV"] is None
    assert eos["fit_rms_meV"] < 0.05  # EMT is smooth: the fit leaves µeV
    model = evaluated["properties"]["eos"]["model"]
    assert model["isolated_atom_std_eV"] is not None and model["isolated_atom_std_eV"] >= 0


def test_elastic_constants_match_energy_second_derivatives(evaluated):
    c = oracle(evaluated, "elastic")["constants_GPa"]
    a0, _ = reported_fcc(evaluated)
    cell = bulk("Al", "fcc", a=a0, cubic=True)
    volume, h = cell.get_volume(), 0.004

    def energy(e: np.ndarray) -> float:
        strained = cell.copy()
        strained.set_cell(np.asarray(cell.cell) @ (np.eye(3) + e).T, scale_atoms=True)
        return emt_energy(strained)

    def unit(i: int, j: int) -> np.ndarray:
        e = np.zeros((3, 3))
        e[i, j] = e[j, i] = 1.0
        return e

    xx, yy, yz = unit(0, 0), unit(1, 1), unit(1, 2) / 2  # yz: engineering shear γ = 2ε_yz
    e0 = energy(0 * xx)
    c11 = (energy(h * xx) - 2 * e0 + energy(-h * xx)) / h**2 / volume
    c12 = (energy(h * (xx + yy)) - energy(h * (xx - yy)) - energy(h * (yy - xx)) + energy(-h * (xx + yy))) \
        / (4 * h**2) / volume
    c44 = (energy(h * yz) - 2 * e0 + energy(-h * yz)) / h**2 / volume
    for name, value in (("C11", c11), ("C12", c12), ("C44", c44)):
        assert c[name] == pytest.approx(value / units.GPa, rel=0.01), name
    # the bulk modulus two ways
    b = oracle(evaluated, "eos")["bulk_modulus_GPa"]
    assert (c["C11"] + 2 * c["C12"]) / 3 == pytest.approx(b, rel=0.03)
    row = [r for r in evaluated["table"] if r["quantity"] == "bulk modulus (C11 + 2 C12)/3"]
    assert row and row[0]["oracle"] == pytest.approx((c["C11"] + 2 * c["C12"]) / 3)


def _relaxed(atoms: Atoms, fmax: float = 0.002) -> float:
    atoms.calc = EMT()
    FIRE(atoms, logfile=None).run(fmax=fmax, steps=3000)
    return float(atoms.get_potential_energy())


def test_vacancy_and_interstitial_by_hand(evaluated):
    assert evaluated["settings"]["defect_atoms"] == 32
    a0, _ = reported_fcc(evaluated)
    perfect = bulk("Al", "fcc", a=a0, cubic=True).repeat(2)
    n, e_n = len(perfect), emt_energy(perfect)
    vacancy = perfect.copy()
    del vacancy[13]
    e_vac = _relaxed(vacancy) - (n - 1) / n * e_n
    assert oracle(evaluated, "vacancy")["formation_energy_eV"] == pytest.approx(e_vac, abs=1e-3)
    # a ⟨010⟩ dumbbell on another site: the same defect by cubic symmetry
    inter = perfect.copy()
    site = inter.positions[7].copy()
    inter.positions[7] = site + [0, a0 / 4, 0]
    inter += Atoms("Al", positions=[site - [0, a0 / 4, 0]])
    e_int = _relaxed(inter) - (n + 1) / n * e_n
    assert oracle(evaluated, "interstitial")["formation_energy_eV"] == pytest.approx(e_int, abs=1e-3)
    assert 0.5 < e_vac < 1.5 and e_int > e_vac


def test_surface_energies_by_hand(evaluated):
    s = oracle(evaluated, "surfaces")
    a0, e_bulk = reported_fcc(evaluated)
    layers = evaluated["settings"]["slab_layers"]
    for facet, build in (("100", fcc100), ("110", fcc110), ("111", fcc111)):
        slab = build("Al", (1, 1, layers), a=a0, vacuum=7.0)  # not periodic along z
        area = float(np.linalg.norm(np.cross(slab.cell[0], slab.cell[1])))
        gamma = (_relaxed(slab) - len(slab) * e_bulk) / (2 * area)
        assert s["energies_eV_A2"][facet] == pytest.approx(gamma, rel=5e-3), facet
        assert s["energies_J_m2"][facet] == pytest.approx(gamma * EV_A2_TO_J_M2, rel=5e-3), facet
    assert s["energies_J_m2"]["111"] < s["energies_J_m2"]["100"] < s["energies_J_m2"]["110"]


def test_stacking_fault_by_shifting_half_a_slab(evaluated):
    """A different construction: the top half of an 18-layer slab shifted by a/6⟨112⟩, relaxed
    along z; the surfaces cancel in the difference."""
    sf = oracle(evaluated, "stacking_fault")
    a0, _ = reported_fcc(evaluated)
    slab = fcc111("Al", (1, 1, 18), a=a0, vacuum=8.0)
    z = slab.positions[:, 2]
    order = np.argsort(z)
    shift = slab.positions[order[1]] - slab.positions[order[0]]
    shift[2] = 0.0
    faulted = slab.copy()
    faulted.positions[z > np.median(z)] += shift
    area = float(np.linalg.norm(np.cross(slab.cell[0], slab.cell[1])))
    to_mj = EV_A2_TO_J_M2 * 1e3
    assert sf["unrelaxed_mJ_m2"] == pytest.approx((emt_energy(faulted) - emt_energy(slab)) / area * to_mj, abs=1e-3)
    for atoms in (slab, faulted):
        atoms.set_constraint(FixCartesian(range(len(atoms)), mask=(True, True, False)))
    gamma = (_relaxed(faulted, 5e-4) - _relaxed(slab, 5e-4)) / area * to_mj
    assert sf["energy_mJ_m2"] == pytest.approx(gamma, abs=0.5)


def test_phase_energy_differences_by_hand(evaluated):
    from scipy.optimize import minimize

    delta = oracle(evaluated, "phases")["delta_eV"]
    _, e_fcc = emt_fcc()
    guesses = {"bcc": (2.9, 3.4), "sc": (2.4, 2.9), "diamond": (5.6, 6.6)}
    for structure, (lo, hi) in guesses.items():
        n = len(bulk("Al", structure, a=lo))
        _, e = _minimum_of(lambda a, s=structure, n=n: emt_energy(bulk("Al", s, a=a)) / n, lo, hi)
        assert delta[structure] == pytest.approx(e - e_fcc, abs=5e-4), structure
    best = minimize(lambda p: emt_energy(bulk("Al", "hcp", a=p[0], covera=p[1])) / 2, x0=[2.83, 1.60],
                    method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-8})
    assert delta["hcp"] == pytest.approx(best.fun - e_fcc, abs=5e-4)
    assert delta["sc"] > delta["bcc"] > 0 and delta["diamond"] > delta["sc"]


def _frozen_phonon(atoms: Atoms, signs: np.ndarray, direction: np.ndarray, u: float = 0.01) -> float:
    """Frequency (THz) of a commensurate mode: atom j displaced by u · signs[j] · direction."""
    def forces(sign: float) -> np.ndarray:
        moved = atoms.copy()
        moved.positions += sign * u * signs[:, None] * direction
        moved.calc = EMT()
        return moved.get_forces()

    f = (forces(1.0) - forces(-1.0)) / 2
    omega2 = -np.sum(f @ direction * signs) / (u * atoms.get_masses()[0] * len(atoms))
    return math.sqrt(omega2) * units.second / (2 * math.pi) / 1e12


def test_phonons_against_frozen_phonons_at_x_and_l(evaluated):
    ph = oracle(evaluated, "phonons")["frequencies_THz"]
    a0, _ = reported_fcc(evaluated)
    assert np.abs(ph["G"][:3]).max() < 0.05  # acoustic modes at Γ
    cubic = bulk("Al", "fcc", a=a0, cubic=True)  # X = 2π/a (0, 0, 1): layers z = 0 and a/2 in antiphase
    signs = np.where(np.isclose(cubic.get_scaled_positions()[:, 2], 0.0), 1.0, -1.0)
    ta, la = _frozen_phonon(cubic, signs, np.array([1.0, 0, 0])), _frozen_phonon(cubic, signs, np.array([0, 0, 1.0]))
    assert ph["X"] == pytest.approx([ta, ta, la], rel=0.01)
    stack = fcc111("Al", (1, 1, 6), a=a0, periodic=True)  # L along [111]: successive layers in antiphase
    signs = np.array([(-1.0) ** k for k in np.argsort(np.argsort(stack.positions[:, 2]))])
    ta, la = _frozen_phonon(stack, signs, np.array([1.0, 0, 0])), _frozen_phonon(stack, signs, np.array([0, 0, 1.0]))
    assert ph["L"] == pytest.approx([ta, ta, la], rel=0.01)
    assert 3 < ta < 5 and 7 < la < 10  # THz, EMT Al (experiment: 4.2 and 9.7 THz)


def test_rdf_matches_ase_and_the_liquid_looks_liquid(evaluated):
    rng = np.random.default_rng(0)
    frames = [liquid.random_box("Al", 40, volume_per_atom=20.0, min_distance=2.2, rng=rng) for _ in range(3)]
    r, g = liquid.rdf(frames, 4.5, 45)
    expected = np.mean([get_rdf(f, 4.5, 45)[0] for f in frames], axis=0)
    assert np.allclose(g, expected, atol=1e-9)
    assert liquid.rdf_l2(r, g, g) == 0.0
    assert liquid.rdf_l2(r, g, g + 0.1) == pytest.approx(0.1)
    out = oracle(evaluated, "liquid")
    assert 2.5 < out["peak_position_A"] < 2.9 and out["peak_height"] > 1.5
    assert out["mean_temperature_K"] == pytest.approx(1200, rel=0.3)
    extra = evaluated["properties"]["liquid"]["extra"]
    assert extra[0]["label"] == "liquid g(r) L2 difference" and extra[0]["value"] > 0


def test_md_stability_numbers_follow_their_definitions(evaluated):
    out = oracle(evaluated, "stability")
    slope = np.polyfit(out["nve_time_ps"], out["nve_energy_eV_atom"], 1)[0]
    assert out["nve_drift_meV_atom_ps"] == pytest.approx(1e3 * slope)
    assert abs(out["nve_drift_meV_atom_ps"]) < 2.0  # EMT with 1 fs steps conserves energy
    assert out["stable"] and out["failure"] is None
    assert out["hot_completed_ps"] == pytest.approx(out["hot_requested_ps"])
    assert out["hot_min_distance_A"] == min(out["hot_min_distances_A"]) > 1.5


class SpringEMT(EMT):
    """EMT plus a stiff spring pulling atoms 0 and 1 together: a potential that collapses."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, ["energy", "forces"], system_changes)
        if len(self.atoms) < 2:
            return
        d = self.atoms.get_distance(0, 1, mic=True, vector=True)
        k = 40.0  # eV/Å²
        self.results["energy"] += 0.5 * k * float(d @ d)
        self.results["free_energy"] = self.results["energy"]
        self.results["forces"] = self.results["forces"].copy()
        self.results["forces"][0] += k * d
        self.results["forces"][1] -= k * d


def test_a_collapse_in_the_hot_run_is_caught():
    settings = QUICK.replace(hot_ps=0.2, nve_ps=0.02)
    result = stability.compute(SpringEMT, "Al", settings)
    assert not result.stable and "apart" in result.failure
    assert result.hot_min_distance_A < settings.min_distance
    assert result.hot_completed_ps < settings.hot_ps


def test_test_set_errors_and_calibration(evaluated, tiny_run):
    from alal.plugins import labels_of, load_model

    frames = emt_aluminium(7, seed=9001, sizes=(8, 32))
    exact = test_set.compute(EMT, "Al", QUICK, frames)
    assert exact.energy_rmse_meV_atom < 1e-9 and exact.force_rmse_eV_A < 1e-9 and exact.stress_rmse_GPa < 1e-9
    assert exact.calibration_fraction is None
    got = evaluated["properties"]["test_set"]["model"]
    assert got["n_structures"] == 7
    model = load_model(tiny_run / "models" / "gen-0000" / "model.safetensors")
    preds = model.predict(frames)
    labels = [labels_of(f) for f in frames]
    de = [1e3 * (p.energy - lab.energy) / len(f) for p, lab, f in zip(preds, labels, frames)]
    assert got["energy_rmse_meV_atom"] == pytest.approx(float(np.sqrt(np.mean(np.square(de)))), rel=1e-5)
    err = np.concatenate([(p.forces - lab.forces).ravel() for p, lab in zip(preds, labels)])
    sigma = np.concatenate([np.repeat(p.forces_std, 3) for p in preds])
    assert got["force_rmse_eV_A"] == pytest.approx(float(np.sqrt(np.mean(err**2))), rel=1e-5)
    assert got["coverage_1sigma"] == pytest.approx(float(np.mean(np.abs(err) <= sigma)), abs=1e-9)
    k = np.asarray(got["calibration_k"])
    assert got["calibration_fraction"][int(np.argmin(np.abs(k - 2)))] == pytest.approx(got["coverage_2sigma"])
    assert list(test_set.gaussian_fraction([1.0, 2.0])) == pytest.approx([0.6827, 0.9545], abs=1e-4)


# -- the model side, the report, the command ------------------------------------------------------
def test_report_has_every_section_for_both_sides(evaluated, tiny_run):
    report = tiny_run / "report"
    md, page = (report / "eval.md").read_text(), (report / "eval.html").read_text()
    for title in TITLES:
        assert f"## {title}" in md and f"<h2>{title}</h2>" in page
    assert "| property | quantity | unit | model | oracle |" in md
    for png in ("eos", "phonons", "rdf", "stability", "parity", "calibration"):
        assert (report / f"{png}.png").stat().st_size > 1000
        assert f"({png}.png)" in md
    assert page.count("data:image/png;base64,") == 6 and "src='eos.png'" not in page
    assert list(evaluated["properties"]) == ALL
    for name in ALL:
        out = evaluated["properties"][name]
        assert out["model"] is not None and not out["errors"], (name, out["errors"])
        assert (out["oracle"] is None) == (name == "test_set")
    rows = evaluated["table"]
    assert {r["property"] for r in rows} == set(TITLES) - {"Test-set errors"}
    for r in rows:
        if r["model"] is not None and r["oracle"] is not None:
            assert r["error"] == pytest.approx(r["model"] - r["oracle"])


def test_only_skip_and_unknown_names(tiny_run, tmp_path, capsys):
    assert select_properties("eos,elastic") == ["eos", "elastic"]
    assert select_properties(skip=["phonons", "stability"]) == [n for n in ALL if n not in ("phonons", "stability")]
    with pytest.raises(InvalidInputError, match="unknown property phonon .*valid: eos, elastic"):
        select_properties("phonon")
    with pytest.raises(InvalidInputError, match="no property"):
        select_properties("eos", "eos")
    assert cli(["eval", str(tiny_run), "--skip", "eos,bogus"]) == 2
    assert "unknown property bogus" in capsys.readouterr().err
    out = tmp_path / "out"
    assert cli(["eval", str(tiny_run), "--quick", "--only", "eos,phases", "--json", "--no-progress",
                "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["properties"]) == ["eos", "phases"]
    assert printed == json.loads((out / "eval.json").read_text())
    assert "## Phonons" not in (out / "eval.md").read_text()
    # reusing the oracle side of that eval.json
    again = tmp_path / "again"
    assert cli(["eval", str(tiny_run), "--quick", "--only", "eos", "--no-progress", "--output", str(again),
                "--oracle-results", str(out / "eval.json")]) == 0
    reused = json.loads((again / "eval.json").read_text())["properties"]["eos"]
    assert reused["oracle_reused"] and reused["oracle"] == printed["properties"]["eos"]["oracle"]
    assert cli(["eval", str(tiny_run), "--quick", "--only", "eos", "--set", "eos_points=9", "--output",
                str(again), "--oracle-results", str(out / "eval.json")]) == 2
    assert "cannot be reused" in capsys.readouterr().err


def test_targets_and_their_errors(tiny_run, tmp_path, capsys):
    assert cli(["eval", str(tmp_path / "nothing")]) == 2
    assert "no such run directory or model file" in capsys.readouterr().err
    assert cli(["eval", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    model = tmp_path / "model.safetensors"
    model.write_bytes((tiny_run / "models" / "gen-0000" / "model.safetensors").read_bytes())
    assert cli(["eval", str(model), "--only", "eos"]) == 2
    assert "--oracle" in capsys.readouterr().err
    assert cli(["eval", str(model), "--oracle", "emt", "--quick", "--only", "eos", "--no-progress"]) == 0
    assert (tmp_path / "report" / "eval.md").is_file()
    assert cli(["eval", str(model), "--oracle", "emt", "--element", "Cu", "--only", "eos"]) == 2
    assert "not Cu" in capsys.readouterr().err
    assert cli(["eval", str(tiny_run), "--generation", "7", "--only", "eos"]) == 2
    assert "generation 7" in capsys.readouterr().err
    assert cli(["eval", str(tiny_run), "--set", "nonsense=1", "--only", "eos"]) == 2
    assert "unknown setting 'nonsense'" in capsys.readouterr().err


def test_a_given_test_set_file(tiny_run, tmp_path, capsys):
    from ase.io import write

    frames = emt_aluminium(3, seed=5, sizes=(8, 16))
    write(tmp_path / "test.extxyz", frames)
    bare = [Atoms(f.numbers, positions=f.positions, cell=f.cell, pbc=True) for f in frames[:2]]
    write(tmp_path / "bare.extxyz", bare)  # no labels: alal eval labels them with the oracle
    for name, n_new in (("test.extxyz", 0), ("bare.extxyz", 2)):
        out = tmp_path / name.split(".")[0]
        assert cli(["eval", str(tiny_run), "--only", "test_set", "--test-set", str(tmp_path / name), "--json",
                    "--no-progress", "--output", str(out)]) == 0
        got = json.loads(capsys.readouterr().out)["properties"]["test_set"]["model"]
        assert got["n_structures"] == len(frames if n_new == 0 else bare)
        assert f"{n_new} labelled now by emt" in got["source"]
    assert cli(["eval", str(tiny_run), "--only", "test_set", "--test-set", str(tmp_path / "missing.extxyz")]) == 2
    assert "cannot read the test set" in capsys.readouterr().err


def test_settings_parse_and_validate():
    assert parse_assignment("slab_size=3,2") == ("slab_size", (3, 2))
    assert parse_assignment("structure=none") == ("structure", None)
    assert parse_assignment("elastic_relax_internal=true") == ("elastic_relax_internal", True)
    assert parse_assignment("hot_ps=1.5") == ("hot_ps", 1.5)
    with pytest.raises(InvalidInputError, match="defect_atoms"):
        parse_assignment("defect_atoms=many")
    with pytest.raises(InvalidInputError, match="positive integer"):
        QUICK.replace(defect_atoms=0)


def test_a_property_that_does_not_apply_and_a_failing_side_are_reported():
    """bcc has no fcc stacking fault; a calculator that raises fails its side only."""
    class Broken(EMT):
        def calculate(self, *args, **kwargs):
            raise RuntimeError("this potential is broken")

    ev = evaluate(EMT, EMT, "Al", QUICK.replace(structure="bcc", stacking_fault_layers=6),
                  properties=["stacking_fault"], progress=False)
    assert "fcc" in ev.outcomes["stacking_fault"].not_applicable
    ev = evaluate(Broken, EMT, "Al", QUICK, properties=["eos"], progress=False)
    out = ev.outcomes["eos"]
    assert out.model is None and "broken" in out.errors["model"] and out.oracle is not None
    assert [r.model for r in ev.rows()] == [None] * len(ev.rows())
