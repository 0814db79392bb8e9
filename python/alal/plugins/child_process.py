"""One oracle calculation in a child Python process, under a wall-time limit: a helper for oracle
plugins that drive a numerical code (the ``gpaw`` and ``pyscf`` plugins use it).

Why a child process: the limit must hold wherever the task runs (a worker process's main thread, a
Dask worker's thread) and even inside a long C or Fortran call, where a Python signal handler would
wait; the numerical libraries read their thread counts (``OMP_NUM_THREADS``...) once, at import,
so the child gets them in its environment before it imports anything; and a crash of the code
(a segfault, the kernel's out-of-memory killer) fails one label instead of the worker.

Its limits: the time counts from the start of the interpreter (about 1 s to import the DFT code)
and covers every retry recipe of the label; a killed calculation leaves nothing but the name of the
recipe it was running; on Linux the child dies with the process that started it.

The protocol: ``python -m <worker> request.json <parent pid>`` in a temporary directory; the
worker (the plugin's own module, which need not import alal) writes ``result.json`` there
(``{"status": "ok" | "calculation" | "setup", "reason": ...}``) and ``progress.json``
(``{"recipe": ...}``) as it goes, each by an atomic rename.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from alal.errors import CalculationError, OracleSetupError

__all__ = ["THREAD_VARIABLES", "run_child"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own session: its children go too
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return " | ".join(text.splitlines()[-lines:])


def _progress(tmp: Path) -> str:
    try:
        return str(json.loads((tmp / "progress.json").read_text()).get("recipe", ""))
    except (OSError, ValueError):
        return ""


def run_child(module: str, request: dict[str, Any], *, code: str, threads: int,
              max_seconds: float) -> dict[str, Any]:
    """Run ``module`` on ``request`` in a child process with ``threads`` threads per numerical
    library; the parsed ``result.json`` when its status is ``"ok"``.

    Raises:
        CalculationError: the calculation failed, the child died or ran past ``max_seconds``.
        OracleSetupError: the child reported a setup problem (code or data missing).
    """
    with tempfile.TemporaryDirectory(prefix=f"alal-{code}-") as name:
        tmp = Path(name)
        (tmp / "request.json").write_text(json.dumps(request))
        env = {**os.environ, **{v: str(threads) for v in THREAD_VARIABLES}}
        start = time.monotonic()
        with open(tmp / "output.txt", "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, str(tmp / "request.json"), str(os.getpid())],
                cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
            try:
                rc = proc.wait(timeout=max_seconds)
            except subprocess.TimeoutExpired:
                _kill(proc)
                recipe = _progress(tmp)
                during = f" during recipe {recipe!r}" if recipe else ""
                raise CalculationError(
                    f"{code} exceeded max_seconds={max_seconds:g}: killed after "
                    f"{time.monotonic() - start:.1f} s{during}") from None
            except BaseException:  # Ctrl-C, a cancelled task: leave no orphan computing
                _kill(proc)
                raise
        result_path = tmp / "result.json"
        if not result_path.is_file():
            how = f"was killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited with code {rc}"
            hint = " (out of memory?)" if rc == -signal.SIGKILL else ""
            raise CalculationError(f"the {code} process {how}{hint} without a result: "
                                   f"{_tail(tmp / 'output.txt')}")
        result: dict[str, Any] = json.loads(result_path.read_text())
    status = result.get("status")
    if status == "ok":
        return result
    reason = str(result.get("reason", "no reason given"))
    if status == "setup":
        raise OracleSetupError(reason)
    raise CalculationError(reason)
