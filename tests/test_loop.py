"""The active-learning loop end to end on tiny settings: EMT oracle, a small committee, short MD."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from alal.cli import main as cli  # noqa: E402
from alal.config import ConfigError, parse_config  # noqa: E402
from alal.loop import Run  # noqa: E402
from alal.store import Store  # noqa: E402

TINY = """
[run]
elements = ["Al"]
seed = 3
workers = 1

[oracle]
name = "emt"

[model]
name = "ani"
params = { n_members = 3, hidden = [16, 16], max_epochs = 4, patience = 2 }

[engine]
name = "ase"
params = { steps = 40, check_interval = 10, temperature_K = [300.0, 900.0], force_lower = 0.005, force_upper = 50.0, energy_lower = 0.0005, energy_upper = 5.0 }

[builders]
sizes = [8, 16]
kinds = { fcc = 1.0, random = 1.0 }

[loop]
max_generations = 2
initial_structures = 5
samplers = 2
batch_size = 2
oracle_budget = 40
validation_fraction = 0.2
"""


def _write(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_run_end_to_end_and_resume_is_a_no_op(tmp_path, capsys):
    config = _write(tmp_path)
    assert cli(["run", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "runs" / "tiny"
    assert "potential:" in out and str(run_dir) in out
    history = [json.loads(s) for s in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [h["generation"] for h in history] == [0, 1, 2]
    assert history[0]["initial"] and history[1]["samplers"] and "fit" in history[1]
    assert history[-1]["stop"] == "max_generations"
    store = Store.open(run_dir)
    counts = store.counts()
    assert counts["labelled"] >= 5 and counts.get("queued", 0) == 0
    assert (run_dir / "models" / "gen-0002" / "model.safetensors").is_file()
    assert (run_dir / "report" / "learning_curve.png").is_file()
    assert (run_dir / "report" / "parity.png").is_file()
    assert (run_dir / "report" / "sampling.png").is_file()
    assert len(history[1]["sampler_steps"]) == sum(history[1]["samplers"].values()) == 2
    # Running again changes nothing: the run is complete.
    before = store.counts()
    assert cli(["run", str(run_dir), "--no-progress"]) == 0
    assert Store.open(run_dir).counts() == before
    assert cli(["status", str(run_dir)]) == 0
    assert "generations completed: 2" in capsys.readouterr().out
    out_file = tmp_path / "data.extxyz"
    assert cli(["export", str(run_dir), str(out_file)]) == 0
    from ase.io import read

    assert len(read(out_file, ":")) == counts["labelled"]


def test_a_different_config_cannot_reuse_a_run_directory(tmp_path):
    config = _write(tmp_path)
    cfg = parse_config({"loop": {"batch_size": 2}}, check_plugins=False)
    Run(cfg, tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="another config"):
        Run(parse_config({"loop": {"batch_size": 3}}, check_plugins=False), tmp_path / "run", progress=False)
    assert config.is_file()


COUNTING_ORACLE = """
import os
from ase.calculators.emt import EMT
from alal.plugins import AseCalculatorOracle


class CountingEMT(AseCalculatorOracle):
    name = "counting-emt"

    def __init__(self, *, log: str = "", delay: float = 0.0) -> None:
        super().__init__(make_calculator=EMT, min_distance=1.5)
        self.log, self.delay = log, delay

    def calculate(self, atoms):
        import time
        time.sleep(self.delay)
        labels = super().calculate(atoms)
        with open(self.log, "a") as f:
            f.write(f"{atoms.get_chemical_formula()} {atoms.positions.sum():.8f}\\n")
        return labels
"""


def test_kill_minus_9_then_resume_loses_nothing(tmp_path):
    """A real `alal run` subprocess killed with SIGKILL while labelling, then resumed."""
    plugin = tmp_path / "plugin"
    info = plugin / "alal_counting-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: alal-counting\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[alal.oracles]\ncounting-emt = alal_counting:CountingEMT\n")
    (plugin / "alal_counting.py").write_text(COUNTING_ORACLE)
    calls = tmp_path / "calls.txt"
    text = TINY.replace('[oracle]\nname = "emt"',
                        f'[oracle]\nname = "counting-emt"\nparams = {{ log = "{calls}", delay = 0.4 }}')
    text = text.replace("initial_structures = 5", "initial_structures = 8")
    config = _write(tmp_path, text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "alal.cli", "run", str(config), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_dir = tmp_path / "runs" / "tiny"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a few labels are in, mid-way through the batch
        if calls.is_file() and len(calls.read_text().splitlines()) >= 3:
            break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    labelled_at_kill = Store.open(run_dir).counts().get("labelled", 0)
    assert 1 <= labelled_at_kill < 8
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    store = Store.open(run_dir)
    labelled = store.labelled()
    ids = [a.info["id"] for a in labelled]
    assert len(ids) == len(set(ids))  # no duplicate
    counts = store.counts()
    assert counts.get("queued", 0) == 0 and counts.get("candidate", 0) == 0
    lines = calls.read_text().splitlines()
    # Every label was computed once, except calls in flight at the kill (one worker: at most one).
    assert len(lines) - len(set(lines)) <= 1
    assert len(set(lines)) == counts["labelled"]


def test_dask_executor_runs_the_same_loop(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                                  dashboard_address=None) as cluster:
        address = cluster.scheduler_address.replace("tcp://", "dask://")
        text = TINY.replace("workers = 1", f'workers = 1\nexecutor = "{address}"').replace(
            "max_generations = 2", "max_generations = 1")
        config = _write(tmp_path, text)
        assert cli(["run", str(config), "--no-progress"]) == 0
    store = Store.open(tmp_path / "runs" / "tiny")
    assert store.counts()["labelled"] >= 5


FAILING_ORACLES = """
from ase.calculators.emt import EMT
from alal.errors import CalculationError, OracleSetupError
from alal.plugins import AseCalculatorOracle


class Flaky(AseCalculatorOracle):
    name = "flaky"

    def __init__(self, *, min_distance: float = 1.5) -> None:
        super().__init__(make_calculator=EMT, min_distance=min_distance)

    def calculate(self, atoms):
        if len(atoms) % 2:
            raise CalculationError("SCF did not converge in 100 iterations")
        return super().calculate(atoms)


class Misconfigured(Flaky):
    name = "misconfigured"

    def calculate(self, atoms):
        raise OracleSetupError("pseudopotential Al.pbe.UPF not found in $ESPRESSO_PSEUDO")
"""


@pytest.fixture
def failing_oracles(tmp_path, monkeypatch):
    from alal.plugins import registry

    plugin = tmp_path / "plugin"
    info = plugin / "alal_failing-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: alal-failing\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[alal.oracles]\nflaky = alal_failing:Flaky\nmisconfigured = alal_failing:Misconfigured\n")
    (plugin / "alal_failing.py").write_text(FAILING_ORACLES)
    monkeypatch.syspath_prepend(str(plugin))  # spawned workers inherit sys.path
    registry._entry_points.cache_clear()
    registry.load_plugin.cache_clear()
    yield
    registry._entry_points.cache_clear()
    registry.load_plugin.cache_clear()


def test_failed_calculations_are_recorded_and_the_run_goes_on(tmp_path, failing_oracles):
    text = TINY.replace('[oracle]\nname = "emt"', '[oracle]\nname = "flaky"').replace(
        "kinds = { fcc = 1.0, random = 1.0 }", "kinds = { random = 1.0 }").replace(
        "max_generations = 2", "max_generations = 1").replace("initial_structures = 5", "initial_structures = 8")
    assert cli(["run", str(_write(tmp_path, text)), "--no-progress"]) == 0
    store = Store.open(tmp_path / "runs" / "tiny")
    failed = store.structures(state="failed")
    assert failed and all(len(a) % 2 for a in failed)
    assert all("SCF did not converge" in str(a.info.get("failure_reason", a.info)) for a in failed)
    assert store.counts()["labelled"] >= 1


def test_a_misconfigured_oracle_stops_the_run_with_its_message(tmp_path, failing_oracles, capsys):
    text = TINY.replace('[oracle]\nname = "emt"', '[oracle]\nname = "misconfigured"')
    assert cli(["run", str(_write(tmp_path, text)), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot run" in err and "Al.pbe.UPF" in err


def test_an_element_the_oracle_cannot_do_stops_the_run_before_any_work(tmp_path, capsys):
    text = TINY.replace('elements = ["Al"]', 'elements = ["Fe"]')
    assert cli(["run", str(_write(tmp_path, text)), "--no-progress"]) == 2
    assert "EMT has no parameters for Fe" in capsys.readouterr().err
    assert not any(Store.open(tmp_path / "runs" / "tiny").counts().values())


def test_labels_made_with_other_oracle_settings_are_not_trained_on(tmp_path, capsys):
    import numpy as np

    from alal.builders import crystal
    from alal.config import load_config
    from alal.oracles.emt import EmtOracle

    run = Run(load_config(_write(tmp_path)), tmp_path / "run", progress=False)
    atoms = crystal("Al", "fcc", n_atoms=8, rattle=0.05, rng=np.random.default_rng(0))
    (i,) = run.store.add_candidates([atoms], generation=0)
    run.store.queue([i])
    run.store.record_label(i, EmtOracle().label(atoms), oracle="emt", settings_hash="0123456789abcdef")
    assert cli(["run", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "mixes oracle settings" in err and "0123456789abcdef" in err and run.oracle.settings_hash in err


def test_seed_data_is_imported_instead_of_random_cells(tmp_path):
    from ase.io import write

    from alal.testing.emt import emt_aluminium

    write(tmp_path / "seed.extxyz", emt_aluminium(6, seed=4, sizes=(8, 16)))
    text = TINY.replace("max_generations = 2", 'max_generations = 1\nseed_data = ["seed.extxyz"]')
    assert cli(["run", str(_write(tmp_path, text)), "--no-progress"]) == 0
    store = Store.open(tmp_path / "runs" / "tiny")
    labelled = store.labelled()
    assert sum(a.info["source"] == "import" for a in labelled) == 6
    history = [json.loads(s) for s in (tmp_path / "runs" / "tiny" / "log.jsonl").read_text().splitlines()]
    assert history[0].get("imported") and history[0]["n_labelled"] == 6
