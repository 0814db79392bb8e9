"""alal.plugins.child_process: an oracle calculation in a child process under a wall-time limit."""

from __future__ import annotations

import textwrap
import time

import pytest

from alal.errors import CalculationError, OracleSetupError
from alal.plugins.child_process import run_child

WORKER = '''
import json, os, sys, time
from pathlib import Path

request = json.loads(Path(sys.argv[1]).read_text())
out = Path(sys.argv[1]).with_name("result.json")
what = request["what"]
(Path(sys.argv[1]).with_name("progress.json")).write_text(json.dumps({"recipe": "first"}))
if what == "ok":
    out.write_text(json.dumps({"status": "ok", "threads": os.environ["OMP_NUM_THREADS"],
                               "parent": sys.argv[2]}))
elif what in ("setup", "calculation"):
    out.write_text(json.dumps({"status": what, "reason": f"{what} went wrong"}))
elif what == "sleep":
    time.sleep(60)
elif what == "crash":
    print("the code printed this before dying")
    os.abort()
'''


@pytest.fixture
def worker(tmp_path, monkeypatch):
    (tmp_path / "alal_test_worker.py").write_text(textwrap.dedent(WORKER))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return "alal_test_worker"


def test_a_result_comes_back_with_the_threads_set(worker):
    result = run_child(worker, {"what": "ok"}, code="test", threads=3, max_seconds=60)
    assert result["status"] == "ok" and result["threads"] == "3"


@pytest.mark.parametrize(("what", "error"), [("setup", OracleSetupError), ("calculation", CalculationError)])
def test_reported_failures_keep_their_kind_and_reason(worker, what, error):
    with pytest.raises(error, match=f"{what} went wrong"):
        run_child(worker, {"what": what}, code="test", threads=1, max_seconds=60)


def test_past_the_wall_time_limit_the_child_is_killed(worker):
    start = time.monotonic()
    with pytest.raises(CalculationError, match=r"exceeded max_seconds=1.*during recipe 'first'"):
        run_child(worker, {"what": "sleep"}, code="test", threads=1, max_seconds=1)
    assert time.monotonic() - start < 20


def test_a_crash_fails_the_label_with_what_the_code_printed(worker):
    with pytest.raises(CalculationError, match=r"killed by SIGABRT.*printed this before dying"):
        run_child(worker, {"what": "crash"}, code="test", threads=1, max_seconds=60)
