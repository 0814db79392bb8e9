"""Select the properties, compute each with the model and with the oracle, assemble the comparison.

A property that fails on one side (a committee with no stable crystal, a relaxation that blows
up...) is recorded with its error message and the evaluation goes on; a property that does not
apply to the structure (an fcc stacking fault in bcc) is recorded as not applicable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ase import Atoms
from tqdm.auto import tqdm

from alal.errors import InvalidInputError
from alal.evaluation.common import CalcFactory, NotApplicableError, Quantity, Result, ground_structure
from alal.evaluation.properties import defects, elastic, eos, liquid, phases, phonons, stability, surfaces, test_set
from alal.evaluation.settings import PROPERTY_NAMES, EvalSettings

__all__ = ["PROPERTIES", "Evaluation", "Outcome", "PropertySpec", "Row", "evaluate", "select_properties"]

log = logging.getLogger(__name__)


class PropertySpec(NamedTuple):
    """A selectable property group: its function and result type."""

    name: str
    title: str
    compute: Callable[..., Result]
    result: type[Result]
    two_sided: bool = True
    """Computed with the model and with the oracle (the test set is computed once: its labels are
    the oracle's side)."""
    compare: Callable[[Any, Any], list[Quantity]] | None = None
    """Extra numbers computed from both sides (the RDF L2 difference)."""


def _rdf_compare(model: liquid.LiquidResult, oracle: liquid.LiquidResult) -> list[Quantity]:
    if len(model.r_A) != len(oracle.r_A):
        return []
    return [Quantity("liquid g(r) L2 difference", "", liquid.rdf_l2(model.r_A, model.g, oracle.g))]


PROPERTIES: dict[str, PropertySpec] = {spec.name: spec for spec in (
    PropertySpec("eos", "Equation of state", eos.compute, eos.EosResult),
    PropertySpec("elastic", "Elastic constants", elastic.compute, elastic.ElasticResult),
    PropertySpec("vacancy", "Vacancy", defects.vacancy, defects.DefectResult),
    PropertySpec("interstitial", "Self-interstitial", defects.interstitial, defects.DefectResult),
    PropertySpec("surfaces", "Surface energies", surfaces.surfaces, surfaces.SurfaceResult),
    PropertySpec("stacking_fault", "Stacking fault", surfaces.stacking_fault, surfaces.StackingFaultResult),
    PropertySpec("phases", "Phase energies", phases.compute, phases.PhaseResult),
    PropertySpec("phonons", "Phonons", phonons.compute, phonons.PhononResult),
    PropertySpec("liquid", "Liquid RDF", liquid.compute, liquid.LiquidResult, compare=_rdf_compare),
    PropertySpec("stability", "MD stability", stability.compute, stability.StabilityResult),
    PropertySpec("test_set", "Test-set errors", test_set.compute, test_set.TestSetResult, two_sided=False),
)}
"""Every property group, in report order."""
assert tuple(PROPERTIES) == PROPERTY_NAMES


def _names(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [s.strip() for s in items if s.strip()]


def select_properties(only: str | Sequence[str] | None = None, skip: str | Sequence[str] | None = None
                      ) -> list[str]:
    """The property names to compute, in report order: ``only`` (default all) less ``skip``;
    comma-separated strings or lists. An unknown name raises :class:`InvalidInputError` listing
    the valid ones."""
    wanted, skipped = _names(only), _names(skip)
    unknown = [n for n in wanted + skipped if n not in PROPERTIES]
    if unknown:
        raise InvalidInputError(f"unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} "
                                f"(valid: {', '.join(PROPERTIES)})")
    chosen = [n for n in PROPERTIES if (not wanted or n in wanted) and n not in skipped]
    if not chosen:
        raise InvalidInputError("--only/--skip leave no property to compute")
    return chosen


@dataclass
class Outcome:
    """One property group: the result of each side, or why there is none."""

    name: str
    model: Result | None = None
    oracle: Result | None = None
    errors: dict[str, str] = field(default_factory=dict)
    """Side (``model``, ``oracle``) → error message."""
    not_applicable: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    oracle_reused: bool = False
    extra: list[Quantity] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"title": PROPERTIES[self.name].title,
                "model": None if self.model is None else self.model.to_dict(),
                "oracle": None if self.oracle is None else self.oracle.to_dict(),
                "errors": dict(self.errors), "not_applicable": self.not_applicable,
                "seconds": dict(self.seconds), "oracle_reused": self.oracle_reused,
                "extra": [q._asdict() for q in self.extra]}


class Row(NamedTuple):
    """One line of the comparison table; ``error`` is model − oracle, ``relative_error`` that
    over |oracle| (``None`` where a side is missing or the oracle value is 0)."""

    property: str
    quantity: str
    unit: str
    model: float | None
    oracle: float | None
    error: float | None
    relative_error: float | None


@dataclass
class Evaluation:
    """All outcomes of one ``alal eval``."""

    element: str
    structure: str
    model: str
    """What was evaluated (a model file)."""
    oracle: str
    settings: EvalSettings
    outcomes: dict[str, Outcome]
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[Row]:
        """The comparison table of the two-sided properties."""
        rows: list[Row] = []
        for name, out in self.outcomes.items():
            spec = PROPERTIES[name]
            if not spec.two_sided:
                continue
            model = {(q.label, q.unit): q.value for q in (out.model.quantities() if out.model else [])}
            oracle = {(q.label, q.unit): q.value for q in (out.oracle.quantities() if out.oracle else [])}
            for key in list(dict.fromkeys([*oracle, *model])):
                m, o = model.get(key), oracle.get(key)
                err = None if m is None or o is None else m - o
                rel = None if err is None or o == 0 else err / abs(o)
                rows.append(Row(spec.title, key[0], key[1], m, o, err, rel))
            for q in out.extra:
                rows.append(Row(spec.title, q.label, q.unit, None, None, q.value, None))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"format": "alal-eval/1", "element": self.element, "structure": self.structure,
                "model": self.model, "oracle": self.oracle, "settings": self.settings.to_dict(),
                "seconds": self.seconds, "info": self.info,
                "properties": {n: o.to_dict() for n, o in self.outcomes.items()},
                "table": [r._asdict() for r in self.rows()]}


def _reusable(previous: dict[str, Any] | None, element: str, structure: str, settings: EvalSettings,
              oracle: str) -> dict[str, Any]:
    """The oracle results of a previous ``eval.json`` made with the same element, structure,
    oracle and settings; anything else is an error (its numbers would not be comparable)."""
    if previous is None:
        return {}
    same = (previous.get("element") == element and previous.get("structure") == structure
            and previous.get("oracle") == oracle and previous.get("settings") == settings.to_dict())
    if not same:
        raise InvalidInputError("the previous eval.json was made with another element, structure, oracle or "
                                "settings: its oracle results cannot be reused")
    return {name: data["oracle"] for name, data in previous.get("properties", {}).items()
            if data.get("oracle") is not None}


def evaluate(model_factory: CalcFactory, oracle_factory: CalcFactory, element: str,
             settings: EvalSettings | None = None, *, properties: Sequence[str] | None = None,
             test_frames: Callable[[], tuple[Sequence[Atoms], str]] | None = None,
             previous: dict[str, Any] | None = None, model_label: str = "model",
             oracle_label: str = "oracle", progress: bool = True) -> Evaluation:
    """Compute ``properties`` (default: all) with both calculators.

    Args:
        model_factory, oracle_factory: callables returning a fresh ASE calculator.
        element: the chemical symbol of the crystals.
        settings: sizes and lengths (default :class:`EvalSettings`).
        test_frames: called once when the test set is selected: ``(labelled frames, source)``.
        previous: a previous ``eval.json`` (parsed) whose oracle side is reused where it has one
            (for an expensive oracle); it must come from the same settings.
        progress: a progress bar over the properties.
    """
    settings = settings or EvalSettings()
    names = list(properties) if properties is not None else list(PROPERTIES)
    select_properties(names)
    structure = ground_structure(element, settings.structure)
    reuse = _reusable(previous, element, structure, settings, oracle_label)
    start = time.perf_counter()
    tasks = [(n, side) for n in names for side in (("model", "oracle") if PROPERTIES[n].two_sided else ("model",))]
    outcomes = {n: Outcome(n) for n in names}
    info: dict[str, Any] = {}
    frames: tuple[Sequence[Atoms], str] | None = None
    if "test_set" in names and test_frames is not None:  # first: a bad test file fails before hours of MD
        frames = test_frames()
        info["test_set"] = {"source": frames[1], "n_structures": len(frames[0])}
    bar = tqdm(tasks, desc="alal eval", unit="step", disable=None if progress else True, leave=False)
    for name, side in bar:
        spec, out = PROPERTIES[name], outcomes[name]
        bar.set_description(f"{name} ({side})")
        if out.not_applicable:
            continue
        if side == "oracle" and name in reuse:
            out.oracle = spec.result.from_dict(reuse[name])
            out.oracle_reused = True
            continue
        extra: tuple[Any, ...] = ()
        if name == "test_set":
            if frames is None:
                out.errors[side] = "no test set was given"
                continue
            extra = (frames[0], frames[1])
        t0 = time.perf_counter()
        factory = model_factory if side == "model" else oracle_factory
        try:
            result = spec.compute(factory, element, settings, *extra)
        except NotApplicableError as err:
            out.not_applicable = str(err)
            continue
        except Exception as err:  # noqa: BLE001 - a poor potential may fail anywhere; report and go on
            log.warning("%s (%s) failed: %s: %s", name, side, type(err).__name__, err,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            out.errors[side] = f"{type(err).__name__}: {err}"
            continue
        finally:
            out.seconds[side] = time.perf_counter() - t0
        setattr(out, side, result)
        log.info("%s (%s): %.1f s", name, side, out.seconds[side])
    bar.close()
    for out in outcomes.values():
        spec = PROPERTIES[out.name]
        if spec.compare is not None and out.model is not None and out.oracle is not None:
            out.extra = spec.compare(out.model, out.oracle)
    return Evaluation(element, structure, model_label, oracle_label, settings, outcomes,
                      time.perf_counter() - start, info)


def outcome_from_dict(name: str, data: dict[str, Any]) -> Outcome:
    """An :class:`Outcome` read back from ``eval.json``."""
    spec = PROPERTIES[name]
    return Outcome(name, None if data.get("model") is None else spec.result.from_dict(data["model"]),
                   None if data.get("oracle") is None else spec.result.from_dict(data["oracle"]),
                   dict(data.get("errors", {})), data.get("not_applicable"), dict(data.get("seconds", {})),
                   bool(data.get("oracle_reused", False)), [Quantity(**q) for q in data.get("extra", [])])


def evaluation_from_dict(data: dict[str, Any]) -> Evaluation:
    """An :class:`Evaluation` read back from ``eval.json`` (to redraw its report)."""
    names = {f for f in EvalSettings.__dataclass_fields__}
    settings = EvalSettings(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in data["settings"].items() if k in names})
    outcomes = {n: outcome_from_dict(n, d) for n, d in data["properties"].items() if n in PROPERTIES}
    return Evaluation(data["element"], data["structure"], data["model"], data["oracle"], settings, outcomes,
                      float(data.get("seconds", 0.0)), dict(data.get("info", {})))
