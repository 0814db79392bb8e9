"""The active-learning loop: generations of train → sample → select → label, durable and exact to
resume.

Generation 0 is the initial data set (random starting cells, labelled as they are). Generation
``g ≥ 1``: train the committee on everything labelled so far (fine-tuned from ``g − 1``), calibrate
it on held-out labels, run the samplers, select a batch among their candidates, label it (each
label committed the moment it arrives) and append one JSON line to ``log.jsonl``. A run killed at
any point resumes where it stopped: a trained committee is reloaded rather than retrained, a batch
already selected is finished (its unfinished oracle calls re-queued) rather than sampled again.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import inspect
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from tqdm.auto import tqdm

from alal.config import Config, ConfigError, load_config, to_dict, to_toml
from alal.errors import OracleSetupError
from alal.executor import make_executor
from alal.plugins import Model, load_model, model_class, oracle_class
from alal.selection import select_batch
from alal.starts import draw_starts
from alal.store import Store
from alal.tasks import label_task, sample_task

__all__ = ["Run", "RunSummary", "resolve_run"]

log = logging.getLogger(__name__)

# Settings that do not change results and may differ when a run is resumed (the directory too: the
# same run may be reached by another path, or have been moved).
_RUNTIME_KEYS = {("run", "workers"), ("run", "executor"), ("run", "directory")}


def holdout_split(data: list[Atoms], fraction: float) -> tuple[list[Atoms], list[Atoms]]:
    """(train, validation) by the content hash in ``atoms.info["id"]``: about ``fraction`` of the
    structures are held out, each always on the same side; at least one when there are more than
    four and ``fraction > 0``."""
    train, valid = [], []
    for atoms in data:
        u = int(str(atoms.info["id"])[:8], 16) / 16**8
        (valid if u < fraction else train).append(atoms)
    if not valid and len(train) > 4 and fraction > 0:
        valid.append(train.pop())
    return train, valid


@dataclass
class RunSummary:
    """Where a finished (or stopped) run left its results."""

    directory: Path
    generations: int
    labelled: int
    failed: int
    stop_reason: str
    model_path: Path | None
    valid_force_rmse: float | None = None
    valid_energy_rmse: float | None = None
    report: list[Path] = field(default_factory=list)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _comparable(cfg: Config) -> dict[str, Any]:
    data = to_dict(cfg)
    for section, key in _RUNTIME_KEYS:
        data[section].pop(key, None)
    return data


def resolve_run(target: str | Path) -> tuple[Config, Path]:
    """The config and run directory of ``alal run TARGET``: a config file (its run directory is
    ``run.directory`` or ``runs/<file stem>`` beside it) or an existing run directory."""
    target = Path(target)
    if target.is_dir():
        frozen = target / "config.toml"
        if not frozen.is_file():
            raise ConfigError(f"{target}: not a run directory (no config.toml)")
        return load_config(frozen), target
    cfg = load_config(target)
    directory = Path(cfg.run.directory) if cfg.run.directory else target.parent / "runs" / target.stem
    if not directory.is_absolute() and cfg.run.directory:
        directory = target.parent / directory
    return cfg, directory


def _provenance(atoms: Atoms, protocol: Any) -> dict[str, Any]:
    """What the store keeps of where a structure came from: its builder, the sampling protocol
    (``"initial"`` for the seed set) and whether it started as a cold (unrattled) cell."""
    return {"builder": atoms.info.get("builder"), "protocol": protocol, "cold": bool(atoms.info.get("cold", False))}


def _plugin_kwargs(cls: type, wanted: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` plus those of ``wanted`` the plugin accepts and the user did not set."""
    accepted = inspect.signature(cls.__init__).parameters
    return {**{k: v for k, v in wanted.items() if k in accepted and k not in params}, **params}


def new_model(config: Config, progress: bool = False) -> Model:
    """An untrained model of ``config.model`` for the run's elements and seed (``config.model``'s
    own parameters win)."""
    cls = model_class(config.model.name)
    wanted = {"elements": tuple(config.run.elements), "seed": config.run.seed, "progress": progress}
    return cls(**_plugin_kwargs(cls, wanted, dict(config.model.params)))


class Run:
    """One active-learning run in its directory (``config.toml``, ``data.db``, ``models/``,
    ``log.jsonl``, ``report/``)."""

    def __init__(self, config: Config, directory: str | Path, *, progress: bool = True,
                 config_path: str | Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.directory = Path(directory)
        self.progress = progress
        self.directory.mkdir(parents=True, exist_ok=True)
        frozen = self.directory / "config.toml"
        if frozen.is_file():
            previous = load_config(frozen)
            if _comparable(previous) != _comparable(config):
                raise ConfigError(
                    f"{self.directory} was started with another config ({frozen}); resume it with "
                    f"`alal run {self.directory}` or choose a new run directory")
        _write_atomic(frozen, to_toml(config))
        self.store = Store.open(self.directory)
        self.oracle_name = config.oracle.name
        self.oracle_params = dict(config.oracle.params)
        self.oracle = oracle_class(self.oracle_name)(**self.oracle_params)

    # -- paths ---------------------------------------------------------------------------------
    def model_path(self, generation: int) -> Path:
        return self.directory / "models" / f"gen-{generation:04d}" / "model.safetensors"

    @property
    def log_path(self) -> Path:
        return self.directory / "log.jsonl"

    def history(self) -> list[dict[str, Any]]:
        """The JSON lines of ``log.jsonl`` (one per completed generation)."""
        if not self.log_path.is_file():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def _append_log(self, entry: dict[str, Any]) -> None:
        with self.log_path.open("a") as f:
            f.write(json.dumps(entry, default=float) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- pieces --------------------------------------------------------------------------------
    def _seed(self, *parts: int) -> int:
        blob = json.dumps([self.config.run.seed, *parts]).encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")

    def _oracle_calls(self) -> int:
        """Oracle calls so far (labels and failures; imported seed data excluded)."""
        counts = self.store.counts()
        imported = sum(1 for a in self.store.labelled() if a.info.get("source") == "import")
        return counts.get("labelled", 0) + counts.get("failed", 0) - imported

    def _oracle_hours(self) -> float:
        """Oracle CPU time so far, hours."""
        from alal.executor import threads_per_worker

        seconds = sum(float(a.info.get("seconds") or 0.0) for a in self.store.labelled())
        return seconds * threads_per_worker(self.config.run.workers) / 3600.0

    def _budget_left(self) -> int:
        """Oracle calls still allowed (0 when the count or the CPU-time budget is spent)."""
        loop = self.config.loop
        if loop.oracle_budget_hours > 0 and self._oracle_hours() >= loop.oracle_budget_hours:
            return 0
        return max(loop.oracle_budget - self._oracle_calls(), 0)

    def _label(self, pool: cf.Executor, items: list[tuple[str, Atoms]], what: str) -> Counter[str]:
        """Label ``(id, atoms)`` in parallel, committing each result as it arrives."""
        outcome: Counter[str] = Counter()
        futures = [pool.submit(label_task, self.oracle_name, self.oracle_params, i, a) for i, a in items]
        bar = tqdm(total=len(futures), desc=what, unit="label", disable=None if self.progress else True,
                   leave=False)
        try:
            for fut in cf.as_completed(futures):
                res = fut.result()
                if res.failure is None:
                    self.store.record_label(res.id, res.label, oracle=self.oracle_name,
                                            settings_hash=self.oracle.settings_hash)
                    outcome["labelled"] += 1
                elif res.failure == "setup":
                    for other in futures:
                        other.cancel()
                    raise OracleSetupError(f"the {self.oracle_name} oracle cannot run: {res.reason}")
                else:
                    self.store.record_failure(res.id, kind=res.failure, reason=res.reason)
                    outcome[f"failed_{res.failure}"] += 1
                    log.warning("structure %s not labelled (%s): %s", res.id, res.failure, res.reason)
                bar.update()
        finally:
            bar.close()
        return outcome

    def _queue_new(self, ids: list[str]) -> list[str]:
        """Queue the structures not seen before (a duplicate of a queued or labelled one keeps its
        state and is not labelled twice)."""
        new = list(dict.fromkeys(i for i in ids if self.store.get(i).info["state"] == "candidate"))
        if new:
            self.store.queue(new)
        return new

    def _finish_unfinished(self, pool: cf.Executor) -> Counter[str]:
        """Oracle calls interrupted by a kill, and selected candidates not yet queued."""
        ids = list(self.store.requeue_unfinished())
        pending = self.store.structures(state="candidate")
        if pending:
            new = [a.info["id"] for a in pending]
            self.store.queue(new)
            ids += new
        if not ids:
            return Counter()
        log.info("resuming: %d unfinished oracle call(s) re-queued", len(ids))
        return self._label(pool, [(i, self.store.get(i)) for i in ids], "resuming labels")

    def _import_seed_data(self) -> None:
        base = Path(self.config_path).parent if self.config_path else Path.cwd()
        for name in self.config.loop.seed_data:
            path = Path(name) if Path(name).is_absolute() else base / name
            ids = self.store.import_structures(path, source=path.name)
            log.info("imported %d labelled structures from %s", len(ids), path)

    def _initial_data(self, pool: cf.Executor) -> None:
        cfg = self.config
        starts = draw_starts(cfg.builders, tuple(cfg.run.elements), cfg.loop.initial_structures, self._seed(0))
        ids = self.store.add_candidates(starts, generation=0, uncertainties=None,
                                        provenance=[_provenance(a, "initial") for a in starts])
        ids = self._queue_new(ids)
        counts = self._label(pool, [(i, self.store.get(i)) for i in ids], "initial labels")
        self._append_log({"generation": 0, "initial": True, "labels": dict(counts),
                          "n_labelled": len(self.store.labelled())})

    def _split(self, data: list[Atoms]) -> tuple[list[Atoms], list[Atoms]]:
        """Held-out validation by content hash: a structure stays on its side for the whole run."""
        return holdout_split(data, self.config.loop.validation_fraction)

    def _check_one_oracle_setting(self, labelled: list[Atoms]) -> None:
        """Refuse to train on labels made with other oracle settings than this run's (a changed
        k-point rule or cutoff shifts energies by more than the errors aimed at). Imported seed
        data carry no settings and are the user's explicit choice."""
        mine = (self.oracle_name, self.oracle.settings_hash)
        other = Counter((a.info.get("oracle"), a.info.get("settings_hash")) for a in labelled
                        if a.info.get("settings_hash") is not None
                        and (a.info.get("oracle"), a.info.get("settings_hash")) != mine)
        if other:
            found = ", ".join(f"{n} labelled by {o} with settings {h}" for (o, h), n in other.items())
            raise OracleSetupError(
                f"the data set mixes oracle settings: {found}, but this run's {mine[0]} oracle has "
                f"settings {mine[1]}; labels made with different settings cannot train one potential "
                f"(start a new run directory, or export the data and relabel it)")

    def _train(self, generation: int) -> tuple[Model, dict[str, Any]]:
        path = self.model_path(generation)
        if path.is_file():
            log.info("generation %d: committee already trained, loading %s", generation, path)
            info_path = path.with_name("fit.json")
            info = json.loads(info_path.read_text()) if info_path.is_file() else {}
            return load_model(path), info
        cfg = self.config
        labelled = self.store.labelled()
        self._check_one_oracle_setting(labelled)
        train, valid = self._split(labelled)
        model = new_model(cfg, progress=self.progress)
        previous = self.model_path(generation - 1)
        warm = load_model(previous) if cfg.loop.fine_tune and previous.is_file() else None
        t0 = time.perf_counter()
        report = model.fit(train, valid or None, warm_start=warm)
        info = {"n_train": report.n_train, "n_valid": report.n_valid, "epochs": report.epochs,
                "seconds": time.perf_counter() - t0, "valid_errors": report.valid_errors,
                "calibration": None if report.calibration is None else report.calibration.to_dict(),
                "history": report.history}
        model.save(path)
        _write_atomic(path.with_name("fit.json"), json.dumps(info, default=float))
        return model, info

    def _sample(self, pool: cf.Executor, generation: int) -> list[Any]:
        cfg = self.config
        path = str(self.model_path(generation))
        starts = draw_starts(cfg.builders, tuple(cfg.run.elements), cfg.loop.samplers, self._seed(generation, 1))
        futures = [pool.submit(sample_task, path, cfg.engine.name, dict(cfg.engine.params), start,
                               self._seed(generation, 2, k)) for k, start in enumerate(starts)]
        results = []
        bar = tqdm(total=len(futures), desc=f"gen {generation}: sampling", unit="traj",
                   disable=None if self.progress else True, leave=False)
        for fut, start in zip(futures, starts):
            res = fut.result()
            for c in res.candidates:
                c.info.setdefault("builder", start.info.get("builder"))
            results.append(res)
            bar.update()
        bar.close()
        return results

    def _select(self, model: Model, candidates: list[Atoms], n: int) -> list[Atoms]:
        if not candidates or n <= 0:
            return []
        from alal.descriptors import AniDescriptor, ani_al

        desc = AniDescriptor(ani_al(tuple(self.config.run.elements)))
        mean = lambda structures: np.array([f.mean(0) for f in desc.compute_batch(structures)])  # noqa: E731
        labelled = self.store.labelled()
        picked = select_batch(
            [c.info.get("force_std_max", 0.0) for c in candidates], [len(c) for c in candidates],
            mean(candidates), n, existing=mean(labelled) if labelled else None,
            cost_exponent=self.config.selection.cost_exponent, diversity=self.config.selection.diversity)
        return [candidates[i] for i in picked]

    # -- the loop ------------------------------------------------------------------------------
    def execute(self) -> RunSummary:
        """Run (or resume) until converged, out of budget or out of generations."""
        cfg = self.config
        history = self.history()
        stop_reason = "max_generations"
        model_path: Path | None = None
        last: dict[str, Any] = {}
        # A misconfigured oracle (missing code or data, an element it cannot do) stops the run
        # here, before anything is sampled or labelled.
        self.oracle.check_setup()
        self.oracle.check_elements(list(cfg.run.elements))
        with make_executor(cfg.run.executor, cfg.run.workers) as pool:
            self._finish_unfinished(pool)
            if not history:
                if not self.store.labelled() and cfg.loop.seed_data:
                    self._import_seed_data()
                if not self.store.labelled():
                    self._initial_data(pool)
                else:
                    self._append_log({"generation": 0, "initial": True, "imported": True,
                                      "n_labelled": len(self.store.labelled())})
                history = self.history()
            for generation in range(len(history), cfg.loop.max_generations + 1):
                t0 = time.perf_counter()
                model, fit = self._train(generation)
                model_path = self.model_path(generation)
                errors = fit.get("valid_errors", {})
                entry: dict[str, Any] = {"generation": generation, "n_labelled": len(self.store.labelled()),
                                         "fit": {k: v for k, v in fit.items() if k != "history"},
                                         "seconds": {"train": time.perf_counter() - t0}}
                last = entry
                remaining = self._budget_left()
                if generation == cfg.loop.max_generations or remaining <= 0:
                    stop_reason = "max_generations" if remaining > 0 else "oracle_budget"
                    entry["stop"] = stop_reason
                    self._append_log(entry)
                    break
                done = self.store.structures(generation=generation)
                if done:  # resumed after this generation's batch was selected
                    entry["resumed"] = True
                    counts = self._label(pool, [(a.info["id"], a) for a in done if a.info["state"] != "labelled"
                                                and a.info["state"] != "failed"], "labels")
                else:
                    t1 = time.perf_counter()
                    results = self._sample(pool, generation)
                    verdicts = Counter(r.verdict for r in results)
                    completion = verdicts.get("completed", 0) / max(len(results), 1)
                    entry["samplers"] = dict(verdicts)
                    entry["sampler_steps"] = [int(r.steps) for r in results]
                    entry["completion_fraction"] = completion
                    entry["seconds"]["sample"] = time.perf_counter() - t1
                    force_rmse = errors.get("force_rmse")
                    if (force_rmse is not None and force_rmse < cfg.loop.target_force_rmse
                            and completion >= cfg.loop.completion_fraction):
                        stop_reason = "converged"
                        entry["stop"] = stop_reason
                        self._append_log(entry)
                        break
                    candidates = [c for r in results for c in r.candidates]
                    chosen = self._select(model, candidates, min(cfg.loop.batch_size, remaining))
                    entry["candidates"], entry["selected"] = len(candidates), len(chosen)
                    ids = self.store.add_candidates(
                        chosen, generation=generation,
                        uncertainties=[{k: c.info.get(k) for k in ("energy_std_per_atom", "force_std_mean",
                                                                     "force_std_max")} for c in chosen],
                        provenance=[_provenance(c, c.info.get("protocol")) for c in chosen])
                    ids = self._queue_new(ids)
                    t2 = time.perf_counter()
                    counts = self._label(pool, [(i, self.store.get(i)) for i in ids], f"gen {generation}: labels")
                    entry["seconds"]["label"] = time.perf_counter() - t2
                entry["labels"] = dict(counts)
                self._append_log(entry)
                self._plot()
        self._plot()
        counts = self.store.counts()
        errors = last.get("fit", {}).get("valid_errors", {})
        return RunSummary(self.directory, len(self.history()) - 1, counts.get("labelled", 0),
                          counts.get("failed", 0), stop_reason, model_path,
                          errors.get("force_rmse"), errors.get("energy_rmse"),
                          sorted((self.directory / "report").glob("*.png")))

    def _plot(self) -> None:
        try:
            from alal.report import write_report
        except ImportError:  # pragma: no cover - matplotlib missing
            return
        write_report(self)
