"""Bad input to the neighbour lists of :mod:`alal.neighbors`, and fork safety.

Every bad input must raise :class:`alal.errors.InvalidInputError` (also a ``ValueError`` and an
``AlalError``) with a message that names the problem, quickly: a search too large to finish is
refused up front rather than left to hang or exhaust memory.

Calls that could hang or exhaust memory if the library misbehaved run in a forked child with a
timeout (and an address-space limit), so that a regression fails the test instead of stalling or
killing the test session.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import warnings
from typing import Any, Callable

import numpy as np
import pytest
from ase import Atoms

import alal.neighbors as nb
from alal.errors import AlalError, InvalidInputError

CELL = np.eye(3) * 3.0
POSITIONS = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
H2 = Atoms("H2", positions=POSITIONS, cell=CELL, pbc=True)
P = nb.primitive_neighbor_list


def expect_invalid(call: Callable[[], Any], match: str) -> InvalidInputError:
    """Run ``call``; it must raise InvalidInputError whose message matches the regex ``match``."""
    try:
        with warnings.catch_warnings():
            # A lossy conversion that only warns (e.g. complex -> float) is not a refusal.
            warnings.simplefilter("error")
            result = call()
    except InvalidInputError as err:
        assert isinstance(err, ValueError) and isinstance(err, AlalError)
        assert re.search(match, str(err)), f"message {str(err)!r} does not name the problem ({match!r})"
        return err
    except BaseException as err:  # noqa: BLE001 - report what was raised instead
        pytest.fail(f"expected InvalidInputError matching {match!r}, got {type(err).__name__}: {err}")
    pytest.fail(f"expected InvalidInputError matching {match!r}, but the call returned {type(result).__name__}")


def test_error_hierarchy() -> None:
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(InvalidInputError, AlalError)
    assert issubclass(AlalError, Exception)


# --------------------------------------------------------------------------------------------------
# Positions

NAN_POS = np.array([[0.0, 0.0, np.nan], [1.0, 1.0, 1.0]])
INF_POS = np.array([[0.0, 0.0, 0.0], [1.0, np.inf, 1.0]])


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: P("ij", True, CELL, NAN_POS, 2.0), id="nan-periodic"),
        pytest.param(lambda: P("ij", True, CELL, INF_POS, 2.0), id="inf-periodic"),
        pytest.param(lambda: P("ij", False, np.zeros((3, 3)), NAN_POS, 2.0), id="nan-cluster"),
        pytest.param(lambda: P("ij", (True, False, True), CELL, -INF_POS, 2.0), id="-inf-mixed"),
        pytest.param(lambda: P("ij", True, CELL, NAN_POS, [1.0, 1.0]), id="nan-with-radii"),
        pytest.param(lambda: P("ij", True, CELL, NAN_POS, {("H", "H"): 1.0}, numbers=[1, 1]), id="nan-with-dict"),
        pytest.param(lambda: P("ij", True, CELL, NAN_POS, 0.0), id="nan-zero-cutoff"),
        pytest.param(lambda: nb.neighbor_list("ij", Atoms("H2", positions=NAN_POS), 2.0), id="nan-atoms"),
        pytest.param(lambda: nb.NeighborList(2.0).compute(INF_POS, CELL, True), id="inf-object"),
        pytest.param(lambda: P("ij", True, CELL, NAN_POS, 2.0, use_scaled_positions=True), id="nan-scaled"),
    ],
)
def test_non_finite_positions(call: Callable[[], Any]) -> None:
    expect_invalid(call, r"not finite")


@pytest.mark.parametrize("n_threads", [1, 2])
def test_non_finite_positions_of_a_large_structure_name_the_first_atom(n_threads: int) -> None:
    # Over 8192 atoms the check runs on the threads: still the first bad atom is named.
    positions = np.random.default_rng(0).uniform(0.0, 50.0, (20000, 3))
    positions[15000, 0] = np.inf
    positions[12345, 1] = np.nan
    err = expect_invalid(lambda: nb.NeighborList(3.0, n_threads=n_threads).compute(positions, np.eye(3) * 50.0, True), r"not finite")
    assert "atom 12345" in str(err), str(err)


def test_non_finite_positions_in_a_batch_name_the_structure() -> None:
    bad = H2.copy()
    bad.positions[1, 2] = np.nan
    err = expect_invalid(lambda: nb.neighbor_list_batch("ij", [H2, H2, bad], 2.0), r"not finite")
    # Like the singular-cell error of a batch ("structure 1: the cell is singular ..."), the message
    # must say which structure of the batch is bad.
    assert "structure 2" in str(err), f"the message does not say which structure is bad: {err}"


def test_positions_absurdly_far_outside_a_periodic_cell() -> None:
    expect_invalid(lambda: P("ij", True, np.eye(3), [[1e20, 0.0, 0.0]], 1.0), r"too far|cells away")


# --------------------------------------------------------------------------------------------------
# Singular cells along periodic directions


@pytest.mark.parametrize(
    ("pbc", "cell", "match"),
    [
        pytest.param(True, [[1, 0, 0], [2, 0, 0], [0, 0, 1]], r"singular", id="parallel"),
        pytest.param(True, [[1, 0, 0], [0, 0, 0], [0, 0, 1]], r"singular", id="zero-vector"),
        pytest.param(True, [[1, 0, 0], [0, 1, 0], [1, 1, 0]], r"singular", id="coplanar"),
        pytest.param(True, [[1, 0, 0], [0, 1, 0], [1, 1, 1e-14]], r"singular", id="nearly-coplanar"),
        pytest.param(True, np.zeros((3, 3)), r"singular", id="zero-cell"),
        pytest.param((True, True, False), [[1, 0, 0], [-3, 0, 0], [0, 0, 1]], r"parallel", id="2d-parallel"),
        pytest.param((True, True, False), [[1, 0, 0], [0, 0, 0], [0, 0, 1]], r"parallel or zero", id="2d-zero"),
        pytest.param((False, True, False), [[1, 0, 0], [0, 0, 0], [0, 0, 1]], r"zero", id="1d-zero"),
        pytest.param(True, [[np.nan, 0, 0], [0, 1, 0], [0, 0, 1]], r"not finite", id="nan-vector"),
        pytest.param((True, False, True), [[1, 0, 0], [0, 1, 0], [0, 0, np.inf]], r"not finite", id="inf-vector"),
    ],
)
def test_singular_cell_along_periodic_directions(pbc: Any, cell: Any, match: str) -> None:
    expect_invalid(lambda: P("ij", pbc, cell, POSITIONS, 2.0), r"cell" + r".*" + match + r"|" + match + r".*cell")
    expect_invalid(lambda: nb.NeighborList(2.0).compute(POSITIONS, cell, pbc), match)


def test_singular_cell_of_atoms_and_batches() -> None:
    expect_invalid(lambda: nb.neighbor_list("ij", Atoms("H2", positions=POSITIONS, pbc=True), 2.0), r"singular")
    bad = H2.copy()
    bad.cell[1] = bad.cell[0]
    err = expect_invalid(lambda: nb.neighbor_list_batch("ij", [H2, bad], 2.0), r"singular")
    assert "structure 1" in str(err)


def test_rows_along_non_periodic_directions_are_ignored() -> None:
    # Not an error: only periodic vectors must be independent.
    cell = [[3.0, 0, 0], [3.0, 0, 0], [0, 0, 0]]
    i, j = P("ij", (True, False, False), cell, POSITIONS, 2.0)
    assert len(i) == 2


# --------------------------------------------------------------------------------------------------
# Cutoffs


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: P("ij", True, CELL, POSITIONS, -1.0), id="negative"),
        pytest.param(lambda: P("ij", True, CELL, POSITIONS, np.nan), id="nan"),
        pytest.param(lambda: P("ij", True, CELL, POSITIONS, np.inf), id="inf"),
        pytest.param(lambda: P("ij", True, CELL, np.zeros((0, 3)), -1.0), id="negative-no-atoms"),
        pytest.param(lambda: nb.neighbor_list("ij", H2, -0.5), id="negative-atoms"),
        pytest.param(lambda: nb.NeighborList(-1.0), id="negative-object"),
        pytest.param(lambda: nb.NeighborList(np.nan), id="nan-object"),
        pytest.param(lambda: nb.NeighborList(np.inf), id="inf-object"),
        pytest.param(lambda: nb.neighbor_list_batch("ij", [H2], -1.0), id="negative-batch"),
        pytest.param(lambda: nb.neighbor_list_batch("ij", [H2], np.nan), id="nan-batch"),
    ],
)
def test_bad_cutoff(call: Callable[[], Any]) -> None:
    expect_invalid(call, r"cutoff")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: P("ij", True, CELL, POSITIONS, "abc"), id="string"),
        pytest.param(lambda: P("ij", True, CELL, POSITIONS, None), id="none"),
        pytest.param(lambda: nb.NeighborList("abc"), id="string-object"),
        pytest.param(lambda: nb.NeighborList(None), id="none-object"),  # type: ignore[arg-type]
        pytest.param(lambda: nb.neighbor_list_batch("ij", [H2], "abc"), id="string-batch"),  # type: ignore[arg-type]
        pytest.param(lambda: nb.neighbor_list_batch("ij", [H2], None), id="none-batch"),  # type: ignore[arg-type]
    ],
)
def test_cutoff_that_is_not_a_number(call: Callable[[], Any]) -> None:
    expect_invalid(call, r"cutoff")


@pytest.mark.parametrize(
    ("radii", "match"),
    [
        pytest.param([1.0, 1.0, 1.0], r"radii", id="too-many"),
        pytest.param([1.0], r"radii", id="too-few"),
        pytest.param([[1.0, 1.0]], r"radii", id="2d"),
        pytest.param([1.0, -1.0], r"radius", id="negative"),
        pytest.param([1.0, np.nan], r"radius", id="nan"),
        pytest.param([np.inf, 1.0], r"radius", id="inf"),
        pytest.param(["a", "b"], r"radii", id="strings"),
    ],
)
def test_bad_per_atom_radii(radii: Any, match: str) -> None:
    expect_invalid(lambda: P("ij", True, CELL, POSITIONS, radii), match)
    expect_invalid(lambda: nb.neighbor_list("ij", H2, radii), match)


@pytest.mark.parametrize(
    ("cutoff", "numbers", "match"),
    [
        pytest.param({("H", "H"): 2.0}, None, r"atomic numbers", id="no-numbers-symbols"),
        pytest.param({(1, 1): 2.0}, None, r"atomic numbers", id="no-numbers-numbers"),
        pytest.param({(1, 1): 2.0}, [1], r"atomic numbers", id="too-few-numbers"),
        pytest.param({(1, 1): -2.0}, [1, 1], r"cutoff of pair", id="negative"),
        pytest.param({("H", "H"): np.nan}, [1, 1], r"cutoff of pair", id="nan"),
        pytest.param({("H", "H"): "x"}, [1, 1], r"cutoff of pair|cutoff", id="not-a-number"),
        pytest.param({("Xx", "H"): 1.0}, [1, 1], r"unknown element 'Xx'", id="unknown-symbol"),
        pytest.param({1: 1.0}, [1, 1], r"element pairs", id="key-not-a-pair"),
        pytest.param({(1, 1, 1): 1.0}, [1, 1], r"element pairs", id="key-triple"),
    ],
)
def test_bad_element_pair_dict(cutoff: Any, numbers: Any, match: str) -> None:
    # ASE's primitive_neighbor_list silently falls back to max(cutoff.values()) for every pair
    # when the numbers are missing; alal refuses.
    expect_invalid(lambda: P("ij", True, CELL, POSITIONS, cutoff, numbers=numbers), match)


# --------------------------------------------------------------------------------------------------
# Shapes, dtypes, quantities, options


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(lambda: P("ij", True, CELL, np.zeros((4, 2)), 2.0), r"positions must have shape \(n, 3\)", id="positions-n2"),
        pytest.param(lambda: P("ij", True, CELL, np.zeros(3), 2.0), r"positions must have shape", id="positions-1d"),
        pytest.param(lambda: P("ij", True, CELL, np.zeros((2, 2, 3)), 2.0), r"positions must have shape", id="positions-3d"),
        pytest.param(lambda: P("ij", True, np.eye(3)[:2], POSITIONS, 2.0), r"cell must have shape \(3, 3\)", id="cell-23"),
        pytest.param(lambda: P("ij", True, np.ones(9), POSITIONS, 2.0), r"cell must have shape", id="cell-9"),
        pytest.param(lambda: P("ij", True, np.eye(4), POSITIONS, 2.0), r"cell must have shape", id="cell-44"),
        pytest.param(lambda: P("ij", [True, True], CELL, POSITIONS, 2.0), r"pbc", id="pbc-2"),
        pytest.param(lambda: nb.NeighborList(2.0).compute(np.zeros((3, 2)), CELL, True), r"points must have shape", id="points-n2"),
        pytest.param(lambda: nb.NeighborList(2.0).compute(POSITIONS, np.eye(3)[:2], True), r"box must have shape", id="box-23"),
        pytest.param(lambda: nb.NeighborList(2.0).compute(POSITIONS, CELL, [True, False]), r"periodic", id="periodic-2"),
    ],
)
def test_wrong_shapes(call: Callable[[], Any], match: str) -> None:
    expect_invalid(call, match)


@pytest.mark.parametrize(
    "positions",
    [
        pytest.param(np.array([["a", "b", "c"], ["d", "e", "f"]]), id="text"),
        pytest.param(np.array([[{}, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=object), id="object-dict"),
        pytest.param(POSITIONS + 1j, id="complex"),
        pytest.param(np.array([["2020-01-01"] * 3, ["2020-01-02"] * 3], dtype="datetime64[D]"), id="datetime64"),
        pytest.param(np.array([[0, 0, 0], [1, 1, 1]], dtype="timedelta64[s]"), id="timedelta64"),
        pytest.param(np.array([["0", "0", "0"], ["1", "1", "1"]]), id="numeric-text"),
        pytest.param(np.array([[b"0", b"0", b"0"], [b"1", b"1", b"1"]]), id="bytes"),
    ],
)
def test_positions_of_a_non_real_dtype(positions: np.ndarray) -> None:
    # Positions must be real numbers: text, dates and complex numbers are refused, not
    # reinterpreted (complex -> real silently drops the imaginary part, a date becomes a day count).
    expect_invalid(lambda: P("ij", True, CELL, positions, 2.0), r"positions")


@pytest.mark.parametrize(
    "cell",
    [
        pytest.param(np.array([["a"] * 3] * 3), id="text"),
        pytest.param(CELL + 0j, id="complex"),
    ],
)
def test_cell_of_a_non_real_dtype(cell: np.ndarray) -> None:
    expect_invalid(lambda: P("ij", True, cell, POSITIONS, 2.0), r"cell")


@pytest.mark.parametrize(
    ("quantities", "match"),
    [
        ("ijx", r"unknown quantities 'x'"),
        ("Dq", r"unknown quantities 'q'"),
        ("ijSDdXY", r"unknown quantities 'XY'"),
        ("", r"quantities"),
        (None, r"quantities"),
        (["i", "j"], r"quantities"),
    ],
)
def test_bad_quantities(quantities: Any, match: str) -> None:
    expect_invalid(lambda: P(quantities, True, CELL, POSITIONS, 2.0), match)
    expect_invalid(lambda: nb.neighbor_list(quantities, H2, 2.0), match)
    expect_invalid(lambda: nb.NeighborList(2.0).compute(POSITIONS, CELL, True, quantities), match)
    expect_invalid(lambda: nb.neighbor_list_batch(quantities, [H2], 2.0), match)


@pytest.mark.parametrize("n_threads", [0, -1, 1.5, True, "2"])
def test_bad_thread_count(n_threads: Any) -> None:
    expect_invalid(lambda: P("ij", True, CELL, POSITIONS, 2.0, n_threads=n_threads), r"n_threads")
    expect_invalid(lambda: nb.NeighborList(2.0, n_threads=n_threads), r"n_threads")
    expect_invalid(lambda: nb.neighbor_list_batch("ij", [H2], 2.0, n_threads=n_threads), r"n_threads")


def test_not_an_atoms_object() -> None:
    expect_invalid(lambda: nb.neighbor_list("ij", POSITIONS, 2.0), r"ase\.Atoms")  # type: ignore[arg-type]
    expect_invalid(lambda: nb.neighbor_list_batch("ij", [H2, POSITIONS], 2.0), r"structure 1.*ase\.Atoms")  # type: ignore[list-item]


# --------------------------------------------------------------------------------------------------
# Work in a forked child, with a timeout (and optionally an address-space limit)


def _fork() -> int:
    with warnings.catch_warnings():
        # Python >= 3.12 warns (DeprecationWarning) that fork() in a multi-threaded process may
        # deadlock the child. The threads are alal's own rayon workers, and a deadlock in the child
        # is exactly what these tests check for (under a timeout), so the warning is expected here.
        warnings.filterwarnings("ignore", message=r".*fork\(\).*", category=DeprecationWarning)
        return os.fork()


def _virtual_memory() -> int | None:
    """Current virtual size of this process (bytes), Linux only."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def run_in_child(
    call: Callable[[], Any], timeout: float, extra_memory: int | None = None
) -> tuple[str, dict[str, Any]]:
    """Run ``call`` in a forked child; return ``(outcome, details)``.

    ``outcome`` is ``"returned"``, ``"raised"`` (details: ``type``, ``bases``, ``message``,
    ``seconds``), ``"timeout"`` (the child was killed) or ``"died"`` (details: ``status``).
    ``extra_memory`` limits the child's address space to its current size plus that many bytes,
    so that a runaway allocation aborts the child instead of exhausting the machine's memory.
    """
    read_end, write_end = os.pipe()
    pid = _fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(read_end)
            if extra_memory is not None:
                import resource

                base = _virtual_memory()
                if base is not None:
                    limit = base + extra_memory
                    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            start = time.perf_counter()
            try:
                value = call()
                report: dict[str, Any] = {"outcome": "returned", "value": repr(value)[:500]}
            except BaseException as err:  # noqa: BLE001 - reported to the parent
                report = {
                    "outcome": "raised",
                    "type": type(err).__name__,
                    "bases": [c.__name__ for c in type(err).__mro__],
                    "message": str(err)[:2000],
                }
            report["seconds"] = time.perf_counter() - start
            os.write(write_end, json.dumps(report).encode())
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "timeout", {}
            time.sleep(0.01)
        data = b""
        while chunk := os.read(read_end, 65536):
            data += chunk
    finally:
        os.close(read_end)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and data:
        report = json.loads(data)
        return report.pop("outcome"), report
    detail = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit code {os.WEXITSTATUS(status)}"
    return "died", {"status": detail}


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def assert_refused_quickly(call: Callable[[], Any], what: str, timeout: float = 5.0, extra_memory: int | None = 2 << 30) -> None:
    outcome, details = run_in_child(call, timeout=timeout, extra_memory=extra_memory)
    assert outcome != "timeout", f"{what}: still running after {timeout} s instead of being refused"
    assert outcome != "died", f"{what}: the process died ({details['status']}; out of memory?) instead of raising"
    assert outcome == "raised", f"{what}: was not refused, returned {details.get('value')}"
    assert "InvalidInputError" in details["bases"], f"{what}: raised {details['type']}: {details['message']}"
    assert re.search(r"too large", details["message"]), f"{what}: message does not name the problem: {details['message']}"
    assert details["seconds"] < 2.0, f"{what}: took {details['seconds']:.1f} s to refuse"


@needs_fork
@pytest.mark.parametrize(
    ("call", "what"),
    [
        pytest.param(lambda: P("ij", True, np.eye(3), [[0.0, 0.0, 0.0]], 1e4), "cutoff 1e4 Å, 1 Å cell", id="function"),
        pytest.param(lambda: P("ij", True, np.eye(3), POSITIONS * 0.3, 1e4, n_threads=2), "2 atoms, 2 threads", id="two-atoms"),
        pytest.param(lambda: nb.NeighborList(1e4).compute([[0.5, 0.5, 0.5]], np.eye(3), True), "NeighborList", id="object"),
        pytest.param(
            lambda: nb.neighbor_list_batch("ij", [Atoms("H", cell=np.eye(3), pbc=True)], 1e4), "batch", id="batch"
        ),
        pytest.param(lambda: P("ij", True, np.eye(3), [[0.0, 0.0, 0.0]], [5e3]), "radii 5e3 Å", id="radii"),
        pytest.param(
            lambda: P("ij", True, np.eye(3), [[0.0, 0.0, 0.0]], {("H", "H"): 1e4}, numbers=[1]), "dict 1e4 Å", id="dict"
        ),
    ],
)
def test_absurd_cutoff_in_a_tiny_periodic_cell_is_refused_quickly(call: Callable[[], Any], what: str) -> None:
    assert_refused_quickly(call, what)


@needs_fork
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="address-space limit needs Linux /proc")
def test_cutoff_that_would_exhaust_memory_is_refused() -> None:
    # A 1 000 Å cutoff in a 1 Å cubic cell: about 4.2e9 pairs, at least 67 GB for i and j alone.
    # The search must be refused up front; the child's address space is limited to 2 GiB more than
    # it starts with, so that a runaway allocation aborts the child, not the test machine.
    assert_refused_quickly(lambda: P("ij", True, np.eye(3), [[0.0, 0.0, 0.0]], 1e3), "cutoff 1e3 Å, 1 Å cell", timeout=30.0)


# --------------------------------------------------------------------------------------------------
# Fork safety


def _parallel_system() -> tuple[np.ndarray, np.ndarray]:
    # Enough atoms for the core to split the work between threads.
    rng = np.random.default_rng(11)
    cell = np.array([[10.0, 0.0, 0.0], [2.0, 9.0, 0.0], [-1.0, 1.0, 11.0]])
    return rng.uniform(0.0, 1.0, (500, 3)) @ cell, cell


@needs_fork
@pytest.mark.parametrize("entry", ["function", "object", "batch"])
def test_parallel_neighbor_list_after_fork(entry: str) -> None:
    positions, cell = _parallel_system()
    atoms = Atoms("C500", positions=positions, cell=cell, pbc=True)

    def compute() -> list[np.ndarray]:
        if entry == "function":
            return list(P("ijSd", True, cell, positions, 3.0, n_threads=2))
        if entry == "object":
            return list(nb.NeighborList(3.0, n_threads=2).compute(positions, cell, True, "ijSd"))
        return list(nb.neighbor_list_batch("ijSd", [atoms, atoms], 3.0, n_threads=2)[1])

    expected = compute()  # starts the 2-thread pool in this (parent) process
    assert len(expected[0]) > 1000
    # Also the default pool (all threads), so that more than one pool exists before the fork.
    P("ij", True, cell, positions, 3.0)

    def in_child() -> bool:
        got = compute()
        return all(np.array_equal(a, b) for a, b in zip(got, expected))

    outcome, details = run_in_child(in_child, timeout=30.0)
    assert outcome != "timeout", f"the child hung in a parallel neighbour list after fork() ({entry})"
    assert outcome == "returned", f"the child failed: {outcome} {details}"
    assert details["value"] == "True", "the child computed a different neighbour list"

    # The parent's pools still work after the fork.
    again = compute()
    for a, b in zip(again, expected):
        np.testing.assert_array_equal(a, b)


@needs_fork
def test_parallel_neighbor_list_in_a_grandchild() -> None:
    positions, cell = _parallel_system()
    expected = P("ij", True, cell, positions, 3.0, n_threads=2)

    def child() -> str:
        P("ij", True, cell, positions, 3.0, n_threads=2)
        outcome, details = run_in_child(lambda: len(P("ij", True, cell, positions, 3.0, n_threads=2)[0]), timeout=20.0)
        return f"{outcome} {details.get('value')}"

    outcome, details = run_in_child(child, timeout=40.0)
    assert outcome == "returned", f"the child failed: {outcome} {details}"
    assert details["value"] == repr(f"returned {len(expected[0])}"), f"the grandchild failed: {details['value']}"
