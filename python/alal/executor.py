"""Where sampling and labelling tasks run: a local process pool (default) or a Dask cluster.

Both are ``concurrent.futures`` executors, so the loop submits and collects the same way. Local
workers are started with ``spawn`` (never ``fork``: torch and the Rust core keep thread pools that
do not survive a fork) and run one thread each for the descriptor and torch, so ``workers``
processes share the cores without oversubscribing them.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from alal.errors import InvalidInputError

__all__ = ["make_executor", "worker_threads"]

_THREADS_ENV = "ALAL_WORKER_THREADS"


def threads_per_worker(workers: int) -> int:
    """Threads each of ``workers`` local processes gets (the cores shared out, at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


def worker_threads() -> int | None:
    """Threads a task may use inside a worker (None outside workers: all cores)."""
    value = os.environ.get(_THREADS_ENV)
    return int(value) if value else None


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when the run's main process dies (even by
    ``kill -9``), so no orphan keeps computing labels nobody will record."""
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except OSError:  # pragma: no cover - another libc
        pass
    if os.getppid() == 1:  # the parent already died before prctl took effect
        os._exit(1)


def _init_worker(threads: int) -> None:
    _die_with_parent()
    os.environ[_THREADS_ENV] = str(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency of the model, not of oracles
        pass


@contextmanager
def make_executor(spec: str, workers: int) -> Iterator[cf.Executor]:
    """An executor for ``spec``: ``"local"`` (``workers`` processes) or ``"dask://host:port"``
    (``"tcp://..."`` works too) for a running Dask scheduler."""
    if spec == "local":
        threads = threads_per_worker(workers)
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                    initargs=(threads,)) as pool:
            yield pool
        return
    if spec.startswith(("dask://", "tcp://")):
        try:
            from distributed import Client
        except ImportError as err:
            raise InvalidInputError("run.executor: Dask needs `pip install 'alal[dask]'`") from err
        address = "tcp://" + spec.split("://", 1)[1]
        with Client(address) as client:
            yield client.get_executor()
        return
    raise InvalidInputError(f"run.executor: 'local' or 'dask://host:port', got {spec!r}")
