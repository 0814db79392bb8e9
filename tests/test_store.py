"""The dataset store: states, content-hash ids, exact labels, import/export, concurrent writers,
survival across kill -9, credentials. PostgreSQL runs only with ``ALAL_TEST_POSTGRES_URL`` set
(``export ALAL_TEST_POSTGRES_URL="$(bash .ci/postgres.sh)"``)."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from typing import Any

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from alal.errors import InvalidInputError, LabelError
from alal.plugins import Label, Labels
from alal.store import STATES, StateError, Store, StoreError, UnknownStructureError, mask_url, structure_id


def crystal(seed: int, n: int = 2, rattle: float = 0.05) -> Atoms:
    atoms = bulk("Al", cubic=True) * n
    atoms.rattle(rattle, seed=seed)
    return atoms


def fake_label(atoms: Atoms, seed: int, stress: bool = True) -> Label:
    rng = np.random.default_rng(seed)
    return Label(Labels(energy=float(rng.normal() - 3.4 * len(atoms)), forces=rng.normal(size=(len(atoms), 3)),
                        stress=rng.normal(size=6) * 1e-3 if stress else None),
                 seconds=0.25, info={"scf_iterations": 12})


def labelled_atoms(seed: int, *, n: int = 2) -> Atoms:
    atoms = crystal(seed, n)
    lab = fake_label(atoms, seed).labels
    atoms.calc = SinglePointCalculator(atoms, energy=lab.energy, forces=lab.forces, stress=lab.stress)
    return atoms


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "run")


# ------------------------------------------------------------------------- states and transitions

def test_states_and_transitions(store):
    a, b, c = crystal(1), crystal(2), crystal(3)
    ids = store.add_candidates([a, b, c], generation=0)
    assert store.counts() == {"candidate": 3, "queued": 0, "labelled": 0, "failed": 0}
    with pytest.raises(StateError, match="not queued"):
        store.record_label(ids[0], fake_label(a, 1), oracle="emt", settings_hash="h")
    store.queue(ids[:2])
    with pytest.raises(StateError, match="queued"):
        store.queue(ids[:1])
    # all or nothing: ids[2] stays a candidate when ids[0] cannot be queued
    with pytest.raises(StateError):
        store.queue([ids[2], ids[0]])
    assert store.get(ids[2]).info["state"] == "candidate"

    store.record_label(ids[0], fake_label(a, 1), oracle="emt", settings_hash="h")
    for bad in (lambda: store.record_label(ids[0], fake_label(a, 1), oracle="emt", settings_hash="h"),
                lambda: store.record_failure(ids[0], kind="calculation", reason="x"),
                lambda: store.queue([ids[0]], retry_failed=True)):
        with pytest.raises(StateError, match="labelled"):
            bad()
    store.record_failure(ids[1], kind="calculation", reason="SCF did not converge in 100 iterations")
    store.record_failure(ids[2], kind="unphysical", reason="atoms 0 and 3 are 0.4 Å apart")
    assert store.counts() == {"candidate": 0, "queued": 0, "labelled": 1, "failed": 2}
    with pytest.raises(StateError, match="failed"):
        store.queue([ids[1]])
    store.queue([ids[1]], retry_failed=True)
    assert store.get(ids[1]).info["state"] == "queued"

    with pytest.raises(UnknownStructureError, match="0000000000000000") as err:
        store.queue(["0000000000000000"])
    assert isinstance(err.value, KeyError)
    with pytest.raises(InvalidInputError, match="failure kind"):
        store.record_failure(ids[1], kind="oops", reason="x")
    with pytest.raises(InvalidInputError, match="generation"):
        store.add_candidates([crystal(9)], generation=-1)
    assert set(store.counts()) == set(STATES)


def test_failures_keep_reason_and_history(store):
    (sid,) = store.add_candidates([crystal(4)], generation=2)
    store.queue([sid])
    store.record_failure(sid, kind="lost", reason="worker 3 vanished after 600 s")
    atoms = store.get(sid)
    assert atoms.info["failure_kind"] == "lost"
    assert atoms.info["failure_reason"] == "worker 3 vanished after 600 s"
    store.queue([sid], retry_failed=True)
    store.record_failure(sid, kind="calculation", reason="SCF not converged")
    (failed,) = store.structures("failed")
    assert (failed.info["failure_kind"], failed.info["failure_reason"]) == ("calculation", "SCF not converged")
    reopened = Store(store.url, create=False)
    assert reopened.get(sid).info["failure_reason"] == "SCF not converged"


def test_requeue_unfinished_returns_only_queued(tmp_path):
    store = Store.open(tmp_path)
    ids = store.add_candidates([crystal(k) for k in range(5)], generation=1)
    store.queue(ids[:4])
    store.record_label(ids[0], fake_label(crystal(0), 0), oracle="emt", settings_hash="h")
    store.record_failure(ids[1], kind="calculation", reason="x")
    # a new process resumes the run
    resumed = Store.open(tmp_path, create=False)
    assert resumed.requeue_unfinished() == ids[2:4]
    assert resumed.get(ids[0]).info["state"] == "labelled"


# ------------------------------------------------------------------------- content-hash ids

def test_dedup_by_content_hash(store):
    base = bulk("Al", "fcc", a=4.05, cubic=True) * 2  # atom 0 sits on the cell's corner
    shifted = base.copy()
    shifted.positions += 2 * base.cell[0] - base.cell[2]  # a lattice translation: atom 0 on a face
    permuted = base[np.random.default_rng(0).permutation(len(base))]
    rattled = base.copy()
    rattled.rattle(1e-3, seed=1)
    ids = store.add_candidates([base, shifted, permuted, rattled], generation=0)
    assert ids[0] == ids[1] == ids[2] == structure_id(base)
    assert ids[3] != ids[0]
    assert len(ids[0]) == 16 and int(ids[0], 16) >= 0
    assert len(store) == 2

    # across states: a labelled structure added again keeps its row and its labels
    store.queue([ids[0]])
    store.record_label(ids[0], fake_label(base, 0), oracle="emt", settings_hash="h")
    assert store.add_candidates([shifted], generation=5) == [ids[0]]
    assert store.get(ids[0]).info["state"] == "labelled"
    assert store.get(ids[0]).info["generation"] == 0
    assert len(store) == 2

    # a slab: periodic in x and y only; translating along z is a different structure
    slab = fcc111("Al", size=(2, 2, 3), vacuum=5.0)
    slab.pbc = (True, True, False)
    along_x, along_z = slab.copy(), slab.copy()
    along_x.positions += slab.cell[0]
    along_z.positions += [0.0, 0.0, 0.5]
    assert structure_id(along_x) == structure_id(slab) != structure_id(along_z)
    # noise far below 1e-6 Å keeps the id of a structure whose coordinates sit on the grid
    noisy = base.copy()
    noisy.positions += np.random.default_rng(2).uniform(-1e-9, 1e-9, size=noisy.positions.shape)
    assert structure_id(noisy) == ids[0]


def test_candidates_keep_uncertainty_and_provenance(store):
    structures = [crystal(k) for k in range(3)]
    ids = store.add_candidates(structures, generation=3,
                               uncertainties=[{"max_force_std": 0.1 * k} for k in range(3)],
                               provenance={"builder": "fcc", "temperature_K": np.float64(900.0)})
    store.add_candidates([crystal(7)], generation=4, provenance=[{"builder": "liquid"}])
    got = store.structures("candidate", generation=3)
    assert [a.info["id"] for a in got] == ids
    assert [a.info["uncertainty"]["max_force_std"] for a in got] == [0.0, 0.1, 0.2]
    assert got[0].info["provenance"] == {"builder": "fcc", "temperature_K": 900.0}
    assert got[0].calc is None
    assert store.generations() == 4
    assert len(store.structures()) == 4
    with pytest.raises(InvalidInputError, match="uncertainties"):
        store.add_candidates(structures, generation=1, uncertainties=[{}])
    with pytest.raises(InvalidInputError, match="not a number"):
        store.add_candidates(structures[:1], generation=1, uncertainties=[{"max_force_std": "high"}])
    (sid,) = store.add_candidates([crystal(9)], generation=4, uncertainties=[{"energy_std_per_atom": None}])
    assert store.get(sid).info["uncertainty"] == {"energy_std_per_atom": None}
    bad = crystal(8)
    bad.positions[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="candidate 0"):
        store.add_candidates([bad], generation=1)


# ------------------------------------------------------------------------- labels

def core_round_trip(target: str | os.PathLike[str]) -> Store:
    """The store's core contract, run against SQLite and PostgreSQL."""
    store = Store(target)
    assert store.generations() == -1 and len(store) == 0
    periodic, isolated = crystal(11), molecule("H2O")
    isolated.center(vacuum=3.0)
    ids = store.add_candidates([periodic, isolated, periodic.copy()], generation=1,
                               uncertainties=[{"max_force_std": 0.3}, {"max_force_std": 0.2}, None],
                               provenance={"builder": "fcc"})
    assert ids[0] == ids[2] and len(store) == 2
    store.queue(ids[:2])
    label_p, label_i = fake_label(periodic, 1), fake_label(isolated, 2, stress=False)
    store.record_label(ids[0], label_p, oracle="emt", settings_hash="0123456789012345")
    store.record_label(ids[1], label_i, oracle="emt", settings_hash="abc")
    got = store.get(ids[0])
    assert got.get_potential_energy() == label_p.labels.energy
    assert np.array_equal(got.get_forces(), label_p.labels.forces)
    assert np.array_equal(got.get_stress(), label_p.labels.stress)
    assert np.array_equal(got.numbers, periodic.numbers) and np.array_equal(got.cell[:], periodic.cell[:])
    wrapped = periodic.copy()
    wrapped.wrap()
    assert np.allclose(got.positions, wrapped.positions, rtol=0, atol=1e-12)  # stored inside the cell
    info = got.info
    assert info["id"] == ids[0] and info["state"] == "labelled" and info["generation"] == 1
    assert info["oracle"] == "emt" and info["settings_hash"] == "0123456789012345"
    assert info["seconds"] == 0.25 and info["uncertainty"] == {"max_force_std": 0.3}
    assert set(info["versions"]) >= {"alal", "ase", "numpy"}
    mol = store.get(ids[1])
    assert np.array_equal(mol.get_forces(), label_i.labels.forces)
    assert "stress" not in mol.calc.results

    (cid,) = store.add_candidates([crystal(12)], generation=2)
    store.queue([cid])
    store.record_failure(cid, kind="calculation", reason="SCF failed")
    (qid,) = store.add_candidates([crystal(13)], generation=2)
    store.queue([qid])
    assert store.counts() == {"candidate": 0, "queued": 1, "labelled": 2, "failed": 1}
    assert store.generations() == 2 and len(store) == 4
    assert [a.info["id"] for a in store.labelled()] == ids[:2]
    assert store.get(cid).info["failure_reason"] == "SCF failed"
    assert store.requeue_unfinished() == [qid]
    with pytest.raises(StateError):
        store.record_label(ids[0], label_p, oracle="emt", settings_hash="x")
    # a second handle, as a resumed run opens it
    again = Store(target, create=False)
    assert np.array_equal(again.get(ids[0]).get_forces(), label_p.labels.forces)
    assert again.counts() == store.counts()
    return store


def test_core_round_trip_sqlite(tmp_path):
    assert not core_round_trip(tmp_path / "data.db").is_postgresql


def test_record_label_refuses_bad_labels(store):
    atoms = crystal(5)
    (sid,) = store.add_candidates([atoms], generation=0)
    store.queue([sid])
    label = fake_label(atoms, 5)
    label.labels.forces[2, 1] = np.nan
    with pytest.raises(LabelError, match=sid):
        store.record_label(sid, label, oracle="emt", settings_hash="h")
    short = Label(Labels(-1.0, np.zeros((3, 3)), None), 0.1)
    with pytest.raises(LabelError, match="shape"):
        store.record_label(sid, short, oracle="emt", settings_hash="h")
    assert store.get(sid).info["state"] == "queued"
    assert store.get(sid).calc is None


# ------------------------------------------------------------------------- import and export

def test_export_import_round_trip_through_extxyz(tmp_path, store):
    originals = [labelled_atoms(k, n=3) for k in range(3)]  # 108 atoms each, rattled
    ids = store.import_structures(originals, source="seed")
    assert store.counts()["labelled"] == 3
    assert [a.info["source"] for a in store.labelled()] == ["import"] * 3
    assert store.labelled()[0].info["provenance"] == {"dataset": "seed"}
    path = tmp_path / "data.xyz"
    assert store.export_extxyz(path) == 3
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]

    read = ase.io.read(path, ":")
    for original, sid, atoms in zip(originals, ids, read):
        assert atoms.info["alal"]["id"] == sid and atoms.info["alal"]["state"] == "labelled"
        assert atoms.get_potential_energy() == original.get_potential_energy()
        assert np.array_equal(atoms.get_stress(), original.get_stress())
        assert np.allclose(atoms.get_forces(), original.get_forces(), atol=1e-8, rtol=0)

    # the ids survive the file's 1e-8 Å rounding: 324 coordinates each, no re-labelled copy
    fresh = Store(tmp_path / "fresh.db")
    assert fresh.import_structures(path, source="exported") == ids
    assert fresh.labelled()[0].info["provenance"] == {"dataset": "exported", "file": "data.xyz"}
    assert store.import_structures(path, source="again") == ids
    assert len(store) == 3

    # candidates export without labels; an ASE database imports too
    store.add_candidates([crystal(30)], generation=1)
    assert store.export_extxyz(tmp_path / "cand.xyz", state="candidate") == 1
    assert ase.io.read(tmp_path / "cand.xyz").calc is None
    ase.io.write(tmp_path / "seed.db", originals)
    assert Store(tmp_path / "other.db").import_structures(tmp_path / "seed.db", source="db") == ids


def test_import_refuses_bad_files_naming_them(tmp_path, store):
    frames = [labelled_atoms(k) for k in range(3)]
    frames[2].calc.results["forces"][1, 0] = np.nan
    bad = tmp_path / "nan_forces.xyz"
    ase.io.write(bad, frames, format="extxyz")
    with pytest.raises(LabelError, match=r"nan_forces\.xyz, structure 2 has a non-finite label"):
        store.import_structures(bad, source="seed")
    assert len(store) == 0  # refused whole: the two good frames are not in

    unlabelled = tmp_path / "unlabelled.xyz"
    ase.io.write(unlabelled, crystal(1), format="extxyz")
    with pytest.raises(LabelError, match="unlabelled.xyz, structure 0 has no energy"):
        store.import_structures(unlabelled, source="seed")
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("3\nnot an xyz file\nAl 0 0\n")
    with pytest.raises(InvalidInputError, match="garbage.xyz cannot be read"):
        store.import_structures(garbage, source="seed")
    with pytest.raises(InvalidInputError, match="missing.db: no such file"):
        store.import_structures(tmp_path / "missing.db", source="seed")
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(LabelError, match="imported structure 0"):
        store.import_structures([crystal(1)], source="seed")


# ------------------------------------------------------------------------- opening

def test_open_and_create(tmp_path):
    with pytest.raises(StoreError, match="create=False"):
        Store(tmp_path / "absent.db", create=False)
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "no" / "dir.db")
    store = Store.open(tmp_path / "run")
    assert (tmp_path / "run" / "data.db").is_file()
    assert repr(store) == f"Store({str(tmp_path / 'run' / 'data.db')!r})"
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="corrupt.db"):
        Store(corrupt)


def test_a_stale_ase_lock_file_does_not_block(tmp_path):
    # ASE's lock file (O_EXCL) survives a kill -9 of its holder; the store does not use it.
    path = tmp_path / "data.db"
    path.with_name("data.db.lock").write_text("")
    store = Store(path, timeout=5)
    (sid,) = store.add_candidates([crystal(1)], generation=0)
    store.queue([sid])
    assert store.counts()["queued"] == 1


# ------------------------------------------------------------------------- several processes

def _writer(path: str, worker: int, n_own: int, n_shared: int, barrier: Any, results: Any) -> None:
    """One process of the concurrency test: adds the shared structures and its own, labels its own,
    races the others for the shared ones; sends back the ids it labelled."""
    store = Store(path)
    shared = [crystal(1000 + k) for k in range(n_shared)]
    own = [crystal(100 * worker + k) for k in range(n_own)]
    barrier.wait(timeout=60)  # start together
    done = []
    for k, atoms in enumerate(own + shared):
        (sid,) = store.add_candidates([atoms], generation=worker)
        try:
            store.queue([sid])
        except StateError:
            continue  # another process got it first
        store.record_label(sid, fake_label(atoms, k), oracle=f"w{worker}", settings_hash="h")
        done.append(sid)
        time.sleep(0.01)  # the oracle's work, during which the others write
    results.put(done)


def run_writers(target: str, n_workers: int = 3, n_own: int = 8, n_shared: int = 8) -> list[str]:
    """Runs :func:`_writer` in ``n_workers`` spawned processes at once; checks that every structure
    was labelled exactly once and returns the labelled ids."""
    Store(target)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(n_workers), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(target, w, n_own, n_shared, barrier, results))
             for w in range(n_workers)]
    for proc in procs:
        proc.start()
    done: list[list[str]] = []
    deadline = time.monotonic() + 120
    while len(done) < n_workers and time.monotonic() < deadline:
        try:
            done.append(results.get(timeout=0.5))
        except queue.Empty:
            crashed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not crashed, f"a writer failed (exit codes {crashed})"
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    results.close()
    results.join_thread()
    store = Store(target)
    labelled = [sid for ids in done for sid in ids]
    assert len(labelled) == len(set(labelled)) == n_workers * n_own + n_shared
    assert store.counts() == {"candidate": 0, "queued": 0, "labelled": len(labelled), "failed": 0}
    assert len(store) == len(labelled)
    assert sorted(a.info["id"] for a in store.labelled()) == sorted(labelled)
    return labelled


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "data.db")
    labelled = run_writers(path)
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT COUNT(DISTINCT unique_id) FROM systems").fetchone()[0] == len(labelled)
    con.close()


_KILL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from ase.build import bulk
    from alal.plugins import Label, Labels
    from alal.store import Store

    store = Store(sys.argv[1])
    for k in range(10_000):
        atoms = bulk("Al", cubic=True) * 2
        atoms.rattle(0.05, seed=k)
        (sid,) = store.add_candidates([atoms], generation=0)
        store.queue([sid])
        forces = np.full((len(atoms), 3), float(k))
        store.record_label(sid, Label(Labels(-float(k), forces, np.full(6, k * 1e-3)), 0.0),
                           oracle="emt", settings_hash="h")
        print(sid, k, flush=True)
""")


def test_labels_survive_kill_9(tmp_path):
    path = tmp_path / "data.db"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True)
    recorded = []
    try:
        deadline = time.monotonic() + 60
        while len(recorded) < 12 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            recorded.append(line.split())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert len(recorded) >= 12, "the writer did not start"
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    store = Store(path)
    for sid, k in recorded:
        atoms = store.get(sid)
        assert atoms.info["state"] == "labelled"
        assert atoms.get_potential_energy() == -float(k)
        assert np.all(atoms.get_forces() == float(k))
    # the store stays writable: no lock was left behind by the killed process
    (sid,) = store.add_candidates([crystal(99)], generation=1)
    store.queue([sid])
    assert sid in store.requeue_unfinished()


# ------------------------------------------------------------------------- credentials

def test_password_masking():
    assert mask_url("postgresql://alal:s3cret@db.example:5432/runs") == "postgresql://alal:***@db.example:5432/runs"
    assert mask_url("postgresql://alal@db:5432/runs") == "postgresql://alal@db:5432/runs"
    assert "p%40ss" not in mask_url("postgres://u:p%40ss@h/d")
    masked = mask_url("postgresql://h/d?user=u&password=hunter2&sslmode=require")
    assert "hunter2" not in masked and "sslmode=require" in masked

    # an unreachable server (port 1 on loopback): the error names the URL, masked
    for url in ("postgresql://alal:s3cr%40t@127.0.0.1:1/alal", "postgresql://127.0.0.1:1/alal?password=s3cr%40t"):
        with pytest.raises(StoreError) as err:
            Store(url)
        text = f"{err.value} {err.value!r} {err.value.__cause__!r}"
        assert "s3cr" not in text, text


# ------------------------------------------------------------------------- PostgreSQL

@pytest.fixture
def postgres_url():
    url = os.environ.get("ALAL_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("ALAL_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against "
                    "(export ALAL_TEST_POSTGRES_URL=\"$(bash .ci/postgres.sh)\")")
    import psycopg2  # the server is configured: a missing driver is a failure, not a skip

    schema = f"alal_test_{uuid.uuid4().hex[:12]}"  # each test in its own schema
    con = psycopg2.connect(url)
    con.autocommit = True
    con.cursor().execute(f"CREATE SCHEMA {schema}")
    try:
        yield url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        con.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
        con.close()


def test_core_round_trip_postgresql(postgres_url, tmp_path):
    store = core_round_trip(postgres_url)
    assert store.is_postgresql
    path = tmp_path / "pg.xyz"
    assert store.export_extxyz(path) == 2
    assert Store(tmp_path / "copy.db").import_structures(path, source="pg") == [
        a.info["id"] for a in store.labelled()]


def test_postgresql_keeps_the_password_out(postgres_url):
    from urllib.parse import urlsplit

    password = urlsplit(postgres_url).password
    store = Store(postgres_url)
    if password:
        assert password not in repr(store) and password not in store.url
        (sid,) = store.add_candidates([crystal(1)], generation=0)
        store.record_failure(sid, kind="setup", reason=f"could not reach {postgres_url}")
        assert password not in store.get(sid).info["failure_reason"]
        wrong = postgres_url.replace(f":{password}@", ":wrong-password@")
        with pytest.raises(StoreError, match="password authentication failed") as err:
            Store(wrong)
        assert "wrong-password" not in str(err.value)


def test_concurrent_writers_postgresql(postgres_url):
    run_writers(postgres_url)
