"""The dataset store of an active-learning run: every structure the loop considered, and its state.

One ASE database (:mod:`ase.db`): an SQLite file in the run directory (``run/data.db``) by default,
or a PostgreSQL server (``postgresql://user@host:port/db``; needs the ``ase-db-backends`` package).
The file stays a plain ASE database: ``ase db run/data.db state=labelled`` lists the labelled rows.

States: ``candidate → queued → labelled | failed``. A failed row keeps its failure kind
(:data:`FAILURE_KINDS`) and reason; ``queue(ids, retry_failed=True)`` sends it back to the oracle.
Imported seed data is ``labelled`` with source ``"import"``. A labelled row never changes again.

**Structure id.** Each row is keyed by a content hash (:func:`alal.structure_id.structure_id`),
kept in ASE's ``unique_id`` column (UNIQUE, indexed); see that module for what makes two structures
equal.

**Concurrency and durability.** Each call is one database transaction. Writers are serialised by
the database itself: SQLite's ``BEGIN IMMEDIATE`` (its locks die with the process), PostgreSQL's
transaction-scoped advisory lock. ASE's own lock file is not used: it is created with ``O_EXCL`` and
left behind by a process killed with ``kill -9``, after which every writer would wait forever, and it
does not cover a read-check-write sequence. A label is committed (and, for SQLite, fsync-ed by its
default ``synchronous=FULL``) before :meth:`Store.record_label` returns.

**Credentials.** A password in a PostgreSQL URL is masked (``***``) in :attr:`Store.url`, ``repr``,
errors and anything the store writes; better, leave it out of the URL and set ``PGPASSWORD``
(libpq reads it itself).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db.core import now
from ase.db.row import AtomsRow

from alal.errors import AlalError, InvalidInputError
from alal.plugins.model import labels_of
from alal.plugins.oracle import Label
from alal.structure_id import canonical, content_hash, structure_id

__all__ = ["FAILURE_KINDS", "STATES", "StateError", "Store", "StoreError", "UnknownStructureError",
           "mask_url", "structure_id"]

log = logging.getLogger(__name__)

STATES = ("candidate", "queued", "labelled", "failed")
FAILURE_KINDS = ("unphysical", "calculation", "setup", "lost")
_PG_PREFIXES = ("postgresql://", "postgres://")
_PG_LOCK_KEY = 0x616C616C  # "alal": the advisory lock that serialises writers on PostgreSQL
_CHUNK = 256  # structures per transaction: ASE commits by itself after 5000 statements


class StoreError(AlalError):
    """The dataset store cannot be opened, read or written (missing file, server unreachable,
    database locked for longer than the timeout, corrupt file)."""


class StateError(StoreError, ValueError):
    """A state transition that the store does not allow (e.g. labelling a row twice)."""


class UnknownStructureError(StoreError, KeyError):
    """No row has this structure id."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


def mask_url(url: str) -> str:
    """``url`` with any password (in the user part or a ``password=`` parameter) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets_of(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [parts.password or ""]
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() == "password"]
    found = [s for s in found if s]
    return sorted({*found, *(unquote(s) for s in found)}, key=len, reverse=True)


# ----------------------------------------------------------------------------------- helpers

def _jsonable(value: Any, what: str) -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays converted); refuses what is not."""
    def convert(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
        raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")
    try:
        return json.loads(json.dumps(value, default=convert, allow_nan=True))
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{what}: {err}") from err


def _per_structure(value: Any, n: int, what: str) -> list[dict[str, Any]]:
    if value is None:
        return [{} for _ in range(n)]
    if isinstance(value, Mapping):
        return [_jsonable(dict(value), what)] * n
    items = list(value)
    if len(items) != n:
        raise InvalidInputError(f"{what}: {len(items)} entries for {n} structures")
    out = []
    for k, item in enumerate(items):
        if item is not None and not isinstance(item, Mapping):
            raise InvalidInputError(f"{what}[{k}] is a {type(item).__name__}, not a dict")
        out.append(_jsonable(dict(item or {}), f"{what}[{k}]"))
    return out


def _versions() -> dict[str, str]:
    import ase

    import alal

    return {"alal": alal.__version__, "ase": ase.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _is_db_error(err: BaseException) -> bool:
    return isinstance(err, (sqlite3.Error, OSError)) or type(err).__module__.startswith("psycopg2")


# ----------------------------------------------------------------------------------- the store

class Store:
    """The durable dataset store of a run.

    Args:
        url_or_path: an SQLite file (any suffix; ``.db`` by convention) or a PostgreSQL URL
            ``postgresql://user[:password]@host[:port]/database`` (the password may instead come
            from ``PGPASSWORD``).
        create: create the database when missing; with ``False`` a missing store is an error.
        timeout: how long a call waits for another process's write to finish, s.
    """

    def __init__(self, url_or_path: str | os.PathLike[str], *, create: bool = True,
                 timeout: float = 120.0) -> None:
        import ase.db

        target = os.fspath(url_or_path)
        self.is_postgresql = target.startswith(_PG_PREFIXES)
        self._secrets = _secrets_of(target) if self.is_postgresql else []
        self.url = mask_url(target) if self.is_postgresql else os.path.abspath(target)
        """Where the store is: the SQLite file's absolute path, or the URL with the password masked."""
        self._timeout = float(timeout)
        if self.is_postgresql:
            try:
                self._db = ase.db.connect(target, type="postgresql")
            except ImportError as err:
                raise StoreError("a PostgreSQL store needs the ase-db-backends package "
                                 "(pip install ase-db-backends)") from err
            if not create and not self._pg_has_tables():
                raise StoreError(f"no dataset store at {self.url} (create=False)")
        else:
            if not os.path.exists(self.url):
                if not create:
                    raise StoreError(f"no dataset store at {self.url} (create=False)")
                if not os.path.isdir(os.path.dirname(self.url)):
                    raise StoreError(f"cannot create {self.url}: its directory does not exist")
            self._db = ase.db.connect(self.url, type="db", use_lock_file=False, append=True)
        with self._transaction(write=True) as db:
            db.count()  # creates the tables of a new store; serialised with the other writers

    @classmethod
    def open(cls, run_dir: str | os.PathLike[str], *, create: bool = True) -> Store:
        """The SQLite store ``run_dir/data.db`` (the directory is created when ``create``)."""
        if create:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        return cls(Path(run_dir) / "data.db", create=create)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # ------------------------------------------------------------------ transactions

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _db_error(self, err: BaseException) -> StoreError:
        return StoreError(self._mask(f"dataset store {self.url}: {type(err).__name__}: {err}"))

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Any]:
        """One database transaction; writers hold the database's write lock from the start, so a
        read-check-write sequence is atomic. Commits on success, rolls back on any exception."""
        db = self._db
        failure: BaseException | None = None
        try:
            with db:  # ASE: one connection for the block, committed and closed on exit
                raw = getattr(db.connection, "con", db.connection)  # PostgreSQL: ASE wraps it
                try:
                    self._begin(raw, write)
                    yield db
                except BaseException as err:  # noqa: BLE001 - re-raised below
                    failure = err
                    # ASE's PostgreSQL wrapper has no rollback(): roll back on the raw connection
                    # and let ``with db`` exit without an exception.
                    with contextlib.suppress(Exception):
                        raw.rollback()
        except Exception as err:
            failure = failure or err  # closing after a failure failed too: report the first
        finally:
            if db.connection is not None:  # a failed commit leaves ASE's connection open
                with contextlib.suppress(Exception):
                    db.connection.close()
                db.connection = None
        if failure is not None:
            if isinstance(failure, AlalError) or not _is_db_error(failure):
                raise failure
            raise self._db_error(failure) from (None if self._secrets else failure)

    def _begin(self, raw: Any, write: bool) -> None:
        ms = int(self._timeout * 1000)
        if self.is_postgresql:
            cur = raw.cursor()
            if write:  # READ COMMITTED: each statement sees what was committed before the lock
                cur.execute(f"SET LOCAL lock_timeout = {ms}")
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
            else:  # one snapshot for all the queries of the block
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.close()
        else:
            raw.execute(f"PRAGMA busy_timeout = {ms}")
            raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _pg_has_tables(self) -> bool:
        with self._transaction(write=False) as db:
            cur = db.connection.con.cursor()
            cur.execute("SELECT to_regclass('systems') IS NOT NULL")
            return bool(cur.fetchone()[0])

    @staticmethod
    def _row(db: Any, sid: str, *, include_data: bool = True) -> Any:
        rows = list(db.select([("unique_id", "=", sid)], limit=1, include_data=include_data))
        return rows[0] if rows else None

    def _existing(self, db: Any, sid: str) -> Any:
        row = self._row(db, sid)
        if row is None:
            raise UnknownStructureError(f"no structure with id {sid!r} in {self.url}")
        return row

    @staticmethod
    def _insert(db: Any, atoms: Atoms, sid: str, kvp: dict[str, Any], data: dict[str, Any]) -> None:
        row = AtomsRow(atoms)
        row.unique_id = sid  # the content hash is the row's ASE unique_id (a UNIQUE column)
        row.ctime = now()  # ASE's time unit (years since 2000), as db.write(atoms) sets it
        row.user = os.getenv("USER")
        db.write(row, key_value_pairs=kvp, data=data)

    # ------------------------------------------------------------------ writing

    def add_candidates(self, structures: Sequence[Atoms], *, generation: int,
                       uncertainties: Sequence[Mapping[str, float] | None] | None = None,
                       provenance: Sequence[Mapping[str, Any] | None] | Mapping[str, Any] | None = None,
                       ) -> list[str]:
        """Add structures in state ``candidate`` and return their ids, in order. A structure already
        in the store (in any state) keeps its row: its id is returned and nothing changes.

        Args:
            structures: the candidates (their positions are stored wrapped into the cell; only
                numbers, positions, cell and pbc are kept).
            generation: the active-learning generation that found them (≥ 0).
            uncertainties: per structure, the uncertainty that selected it (e.g.
                ``{"energy_std_per_atom": 0.004, "max_force_std": 0.21}``, eV/atom, eV/Å; a value
                may be ``None`` when not computed).
            provenance: per structure, or one dict for all: builder, protocol, temperature (K)...
        """
        if not isinstance(generation, (int, np.integer)) or isinstance(generation, bool) or generation < 0:
            raise InvalidInputError(f"generation must be a non-negative integer, got {generation!r}")
        structures = list(structures)
        n = len(structures)
        uncs = _per_structure(uncertainties, n, "uncertainties")
        provs = _per_structure(provenance, n, "provenance")
        for k, unc in enumerate(uncs):
            for key, value in unc.items():
                if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                    raise InvalidInputError(f"uncertainties[{k}][{key!r}] is not a number: {value!r}")
        canon = [canonical(a, f"candidate {k}") for k, a in enumerate(structures)]
        items = [(a, content_hash(a), unc, prov) for a, unc, prov in zip(canon, uncs, provs)]
        for chunk in _chunks(items):
            with self._transaction(write=True) as db:
                for atoms, sid, unc, prov in chunk:
                    if self._row(db, sid, include_data=False) is None:
                        self._insert(db, atoms, sid,
                                     {"state": "candidate", "generation": int(generation), "source": "sampler"},
                                     {"uncertainty": unc, "provenance": prov})
        return [sid for _, sid, _, _ in items]

    def queue(self, ids: Iterable[str], *, retry_failed: bool = False) -> None:
        """``candidate → queued`` for each id (all or none). With ``retry_failed``, failed rows may be
        queued again (their failure stays in the history)."""
        ids = list(dict.fromkeys(ids))
        allowed = ("candidate", "failed") if retry_failed else ("candidate",)
        with self._transaction(write=True) as db:
            for sid in ids:
                row = self._existing(db, sid)
                if row.state not in allowed:
                    raise StateError(f"cannot queue {sid}: it is {row.state}")
                db.update(row.id, delete_keys=["failure_kind"], state="queued")

    def record_label(self, id: str, label: Label, *, oracle: str, settings_hash: str) -> None:
        """``queued → labelled``: store the oracle's energy (eV), forces (eV/Å), stress (Voigt,
        eV/Å³, when computed), its wall time (s), the oracle's name and settings hash, and the
        code versions. Committed to disk before it returns. A labelled row is never relabelled.

        Raises:
            StateError: the row is not queued. LabelError: non-finite or mis-shaped labels.
        """
        if not isinstance(label, Label):
            raise InvalidInputError(f"label must be an alal.plugins.Label, got {type(label).__name__}")
        if not isinstance(oracle, str) or not oracle:
            raise InvalidInputError(f"oracle must be the oracle's name, got {oracle!r}")
        if not isinstance(settings_hash, str):
            raise InvalidInputError(f"settings_hash must be a string, got {settings_hash!r}")
        labels = label.labels
        info = _jsonable(dict(label.info), f"the label info of {id}")
        with self._transaction(write=True) as db:
            row = self._existing(db, id)
            if row.state != "queued":
                raise StateError(f"cannot record a label for {id}: it is {row.state}, not queued")
            atoms = row.toatoms()
            atoms.calc = SinglePointCalculator(atoms, energy=labels.energy, forces=labels.forces,
                                               stress=labels.stress)
            checked = labels_of(atoms, f"the label of {id}")
            atoms.calc = SinglePointCalculator(atoms, energy=checked.energy, forces=checked.forces,
                                               stress=checked.stress)
            new = AtomsRow(atoms)
            new.unique_id, new.ctime, new.user = row.unique_id, row.ctime, row.get("user")
            new.calculator = oracle.lower()
            data = dict(row.data)
            data["label"] = {"oracle": oracle, "settings_hash": settings_hash,
                             "seconds": float(label.seconds), "info": info,
                             "versions": _versions(), "time": time.time()}
            kvp = {**row.key_value_pairs, "state": "labelled"}
            kvp.pop("failure_kind", None)
            db.write(new, key_value_pairs=kvp, data=data, id=row.id)

    def record_failure(self, id: str, *, kind: str, reason: str) -> None:
        """``candidate | queued → failed`` with the failure ``kind`` (one of :data:`FAILURE_KINDS`)
        and a human-readable ``reason``; earlier failures of the row are kept in its history."""
        if kind not in FAILURE_KINDS:
            raise InvalidInputError(f"failure kind must be one of {FAILURE_KINDS}, got {kind!r}")
        reason = self._mask(str(reason))
        with self._transaction(write=True) as db:
            row = self._existing(db, id)
            if row.state not in ("candidate", "queued"):
                raise StateError(f"cannot record a failure for {id}: it is {row.state}")
            failure = {"kind": kind, "reason": reason, "time": time.time()}
            history = list(row.data.get("failures", [])) + [failure]
            db.update(row.id, state="failed", failure_kind=kind,
                      data={"failure": failure, "failures": history})

    def requeue_unfinished(self) -> list[str]:
        """The ids of rows left ``queued`` (their oracle call was interrupted), to submit again on
        resume. They stay queued; labelled rows are never returned."""
        with self._transaction(write=False) as db:
            ids = [row.unique_id for row in db.select(state="queued", sort="id", include_data=False)]
        if ids:
            log.info("%d queued structures of %s to submit again", len(ids), self.url)
        return ids

    def import_structures(self, path_or_atoms: str | os.PathLike[str] | Atoms | Sequence[Atoms], *,
                          source: str) -> list[str]:
        """Add labelled seed data (state ``labelled``, source ``"import"``) and return the ids.

        Args:
            path_or_atoms: an extxyz file or any file ASE reads (an ASE database, a trajectory...),
                or labelled ``Atoms`` (a single one or a list), each with a calculator holding energy
                (eV), forces (eV/Å) and optionally stress (eV/Å³).
            source: where the data comes from (a data set's name, a reference), kept in the rows'
                provenance as ``dataset``.

        Every structure is validated (labels present, finite, of the right shapes) before anything
        is written: a bad file is refused whole, with its name and the reason
        (:class:`~alal.errors.InvalidInputError`, :class:`~alal.errors.LabelError`). Structures
        already in the store keep their row.
        """
        if not isinstance(source, str) or not source:
            raise InvalidInputError(f"source must be a non-empty string, got {source!r}")
        if isinstance(path_or_atoms, (str, os.PathLike)):
            name = os.fspath(path_or_atoms)
            images = self._read(name)
            where = f"{name}, structure {{}}"
            prov = {"dataset": source, "file": os.path.basename(name)}
        else:
            images = [path_or_atoms] if isinstance(path_or_atoms, Atoms) else list(path_or_atoms)
            where = "imported structure {}"
            prov = {"dataset": source}
        items = []
        for k, atoms in enumerate(images):
            canon = canonical(atoms, where.format(k))
            labels = labels_of(atoms, where.format(k))
            canon.calc = SinglePointCalculator(canon, energy=labels.energy, forces=labels.forces,
                                               stress=labels.stress)
            items.append((canon, content_hash(canon)))
        label = {"oracle": None, "settings_hash": None, "seconds": None, "info": {},
                 "versions": _versions(), "time": time.time()}
        new = 0
        for chunk in _chunks(items):
            with self._transaction(write=True) as db:
                for atoms, sid in chunk:
                    if self._row(db, sid, include_data=False) is None:
                        self._insert(db, atoms, sid,
                                     {"state": "labelled", "generation": 0, "source": "import"},
                                     {"uncertainty": {}, "provenance": prov, "label": label})
                        new += 1
        log.info("imported %d structures (%d new) from %s into %s", len(items), new,
                 prov.get("file", "a list"), self.url)
        return [sid for _, sid in items]

    @staticmethod
    def _read(name: str) -> list[Atoms]:
        import ase.io

        if not os.path.isfile(name):
            raise InvalidInputError(f"{name}: no such file")  # ase.io.read would create a .db
        try:
            images = ase.io.read(name, index=":")
        except Exception as err:  # noqa: BLE001 - any reader may fail in its own way
            raise InvalidInputError(f"{name} cannot be read: {type(err).__name__}: {err}") from err
        images = [images] if isinstance(images, Atoms) else list(images)
        if not images:
            raise InvalidInputError(f"{name} holds no structure")
        return images

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _to_atoms(row: Any) -> Atoms:
        atoms = row.toatoms()  # labelled rows: a SinglePointCalculator with energy, forces, stress
        data = row.data
        state = row.state
        info: dict[str, Any] = {"id": row.unique_id, "state": state, "generation": int(row.generation),
                                "source": row.source, "uncertainty": dict(data.get("uncertainty", {})),
                                "provenance": dict(data.get("provenance", {}))}
        if state == "labelled":
            lab = data.get("label", {})
            info.update({k: lab.get(k) for k in ("oracle", "settings_hash", "seconds", "versions")})
        if state == "failed":
            failure = data.get("failure", {})
            info.update(failure_kind=failure.get("kind"), failure_reason=failure.get("reason"))
        atoms.info = info
        return atoms

    def structures(self, state: str | None = None, generation: int | None = None) -> list[Atoms]:
        """The structures in ``state`` (all when ``None``), optionally of one ``generation``, in the
        order they were added. Labelled ones carry their labels (``get_potential_energy()`` in eV,
        ``get_forces()`` in eV/Å, ``get_stress()`` in eV/Å³); ``atoms.info`` holds ``id``,
        ``state``, ``generation``, ``source``, ``uncertainty``, ``provenance``, and for labelled
        rows ``oracle``, ``settings_hash``, ``seconds``, ``versions``, for failed rows
        ``failure_kind`` and ``failure_reason``."""
        query: dict[str, Any] = {}
        if state is not None:
            if state not in STATES:
                raise InvalidInputError(f"state must be one of {STATES}, got {state!r}")
            query["state"] = state
        if generation is not None:
            query["generation"] = int(generation)
        with self._transaction(write=False) as db:
            return [self._to_atoms(row) for row in db.select(sort="id", **query)]

    def labelled(self) -> list[Atoms]:
        """The labelled structures (the training data), with their labels attached."""
        return self.structures("labelled")

    def get(self, id: str) -> Atoms:
        """The structure with this id (see :meth:`structures` for what it carries)."""
        with self._transaction(write=False) as db:
            return self._to_atoms(self._existing(db, id))

    def __contains__(self, id: object) -> bool:
        if not isinstance(id, str):
            return False
        with self._transaction(write=False) as db:
            return self._row(db, id, include_data=False) is not None

    def counts(self) -> dict[str, int]:
        """Number of rows in each state (every state present, zeros included)."""
        with self._transaction(write=False) as db:
            return {state: db.count(state=state) for state in STATES}

    def generations(self) -> int:
        """The highest generation seen (-1 for an empty store)."""
        with self._transaction(write=False) as db:
            rows = list(db.select("generation", sort="-generation", limit=1, include_data=False))
        return int(rows[0].generation) if rows else -1

    def __len__(self) -> int:
        with self._transaction(write=False) as db:
            return db.count()

    # ------------------------------------------------------------------ export

    def export_extxyz(self, path: str | os.PathLike[str], *, state: str = "labelled") -> int:
        """Write the structures in ``state`` to an extended XYZ file and return how many.

        Energy, forces and stress are written as ASE writes calculator results, so that
        ``ase.io.read(path, ":")`` gives them back (positions and forces to 1e-8 as the format
        keeps them; energy and stress exactly). The store's fields go, as one JSON dict, into
        ``info["alal"]`` (``id``, ``state``, ``generation``, ...): a dict keeps strings as strings,
        where the extxyz reader would turn an id such as ``"0123456789012345"`` into a number.
        The file is written under a temporary name and renamed into place.
        """
        import ase.io

        images = self.structures(state)
        for atoms in images:
            atoms.info = {"alal": _jsonable(atoms.info, "info")}
        target = os.path.abspath(os.fspath(path))
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.",
                                   suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                ase.io.write(handle, images, format="extxyz")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(os.path.dirname(target), os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return len(images)
