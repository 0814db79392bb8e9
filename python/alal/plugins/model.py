"""The contract of a committee model (``alal.models`` entry points), shared by every model plugin.

A model is an ensemble of ``n_members`` potentials trained on labelled structures. It predicts the
committee mean (energy in eV, forces in eV/Å, stress in eV/Å³) and the committee spread, rescaled
by a :class:`Calibration` fitted on held-out labels so that the spread is a predicted error.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from numpy.typing import NDArray

from alal.errors import InvalidInputError, LabelError

__all__ = ["Calibration", "FitReport", "Labels", "Model", "Prediction", "labels_of"]


@dataclass(frozen=True)
class Prediction:
    """Committee prediction for one structure.

    ``energy_std`` and ``forces_std`` are calibrated (multiplied by the model's
    :class:`Calibration` scales) unless the prediction was made with ``calibrated=False``.
    """

    energy: float
    """Committee mean of the total energy, eV."""
    forces: NDArray[np.float64]
    """Committee mean forces ``(n_atoms, 3)``, eV/Å."""
    stress: NDArray[np.float64] | None
    """Committee mean stress in Voigt order (xx, yy, zz, yz, xz, xy), eV/Å³; ``None`` without a
    3-D cell."""
    energy_std: float
    """Spread of the total energy over the committee, eV."""
    forces_std: NDArray[np.float64] | None
    """Per atom, the root-mean over the three components of the committee variance of the force,
    ``(n_atoms,)``, eV/Å; ``None`` when the prediction skipped the per-member forces."""
    member_energies: NDArray[np.float64]
    """Total energy of each member ``(n_members,)``, eV."""

    @property
    def n_atoms(self) -> int:
        return len(self.forces)

    @property
    def energy_std_per_atom(self) -> float:
        """``energy_std / n_atoms``, eV/atom."""
        return self.energy_std / max(self.n_atoms, 1)

    @property
    def max_force_std(self) -> float:
        """Largest per-atom force spread, eV/Å (0 for an empty structure, NaN when not computed)."""
        if self.forces_std is None:
            return float("nan")
        return float(self.forces_std.max()) if self.n_atoms else 0.0


@dataclass(frozen=True)
class Labels:
    """Reference labels of one structure, as an oracle gives them."""

    energy: float
    """Total energy, eV."""
    forces: NDArray[np.float64]
    """``(n_atoms, 3)``, eV/Å."""
    stress: NDArray[np.float64] | None
    """Voigt ``(6,)``, eV/Å³, when the oracle computed it."""


def labels_of(atoms: Atoms, where: str = "structure") -> Labels:
    """The energy, forces and (when present) stress stored on ``atoms.calc``, validated: shapes and
    finite values. Raises :class:`~alal.errors.LabelError` naming ``where`` otherwise."""
    calc = atoms.calc
    results = getattr(calc, "results", None) or {}
    if "energy" not in results or "forces" not in results:
        raise LabelError(f"{where} has no energy and forces labels (attach a SinglePointCalculator)")
    energy = float(results["energy"])
    forces = np.asarray(results["forces"], dtype=np.float64)
    if forces.shape != (len(atoms), 3):
        raise LabelError(f"{where}: forces have shape {forces.shape}, expected ({len(atoms)}, 3)")
    stress = results.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=np.float64)
        if stress.shape == (3, 3):
            stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        if stress.shape != (6,):
            raise LabelError(f"{where}: stress has shape {stress.shape}, expected (6,) or (3, 3)")
    if not np.isfinite(energy) or not np.isfinite(forces).all() or (
            stress is not None and not np.isfinite(stress).all()):
        raise LabelError(f"{where} has a non-finite label")
    return Labels(energy, forces, stress)


@dataclass(frozen=True)
class Calibration:
    """Scales that turn the raw committee spread into a predicted error (a Gaussian standard
    deviation): ``calibrated σ = scale · raw σ``.

    Fitted by maximising the Gaussian likelihood of held-out errors ``e`` given ``scale · σ``,
    whose closed form is ``scale² = mean(e² / σ²)``: energies per structure, forces per component
    (with the per-atom spread)."""

    energy_scale: float = 1.0
    force_scale: float = 1.0
    n_structures: int = 0
    """Held-out structures the scales were fitted on (0: not calibrated)."""
    n_atoms: int = 0

    @classmethod
    def fit(cls, predictions: Sequence[Prediction], labels: Sequence[Labels]) -> Calibration:
        """Scales from raw (uncalibrated) predictions and the labels of the same structures."""
        if len(predictions) != len(labels) or not predictions:
            raise InvalidInputError("calibration needs one label per prediction, and at least one")
        tiny = 1e-12
        e_err = np.array([p.energy - lab.energy for p, lab in zip(predictions, labels)])
        e_std = np.array([max(p.energy_std, tiny) for p in predictions])
        f_err = np.concatenate([(p.forces - lab.forces).ravel() for p, lab in zip(predictions, labels)])
        if any(p.forces_std is None for p in predictions):
            raise InvalidInputError("calibration needs predictions with forces_std")
        f_std = np.concatenate([np.repeat(np.maximum(p.forces_std, tiny), 3)
                                for p in predictions if p.forces_std is not None])
        energy_scale = float(np.sqrt(np.mean((e_err / e_std) ** 2)))
        force_scale = float(np.sqrt(np.mean((f_err / f_std) ** 2))) if f_err.size else 1.0
        return cls(energy_scale, force_scale, len(predictions), int(f_err.size // 3))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(**{k: data[k] for k in ("energy_scale", "force_scale", "n_structures", "n_atoms")})


@dataclass
class FitReport:
    """What a :meth:`Model.fit` did: sizes, epochs, errors per member and the learning curve."""

    n_train: int
    n_valid: int
    epochs: int
    seconds: float
    members: list[dict[str, Any]] = field(default_factory=list)
    """Per member: ``best_epoch``, ``valid_loss``, ``energy_rmse`` (eV/atom), ``force_rmse`` (eV/Å)
    on its own validation structures."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Per epoch: ``epoch``, ``learning_rate``, ``train_loss``, ``valid_loss`` (member means)."""
    calibration: Calibration | None = None
    valid_errors: dict[str, float] = field(default_factory=dict)
    """Committee-mean errors on the held-out set: ``energy_rmse`` (eV/atom), ``force_rmse`` (eV/Å)."""


class Model(abc.ABC):
    """Base class of committee models. Subclasses take keyword-only constructor parameters, so that
    a config section ``{name = "...", params = {...}}`` maps onto the constructor."""

    name: ClassVar[str]
    """Entry-point name of the plugin (e.g. ``"ani"``)."""

    calibration: Calibration = Calibration()

    @property
    @abc.abstractmethod
    def n_members(self) -> int:
        """Committee size."""

    @property
    @abc.abstractmethod
    def elements(self) -> tuple[str, ...]:
        """Chemical symbols the model knows."""

    @abc.abstractmethod
    def fit(self, train: Sequence[Atoms], valid: Sequence[Atoms] | None = None, *,
            warm_start: Model | None = None) -> FitReport:
        """Train every member on labelled ``train`` structures (each member draws its own
        train/early-stopping split from them), then calibrate the spread on ``valid`` (held out
        from every member). ``warm_start``: a trained model of the same kind to fine-tune."""

    @abc.abstractmethod
    def predict(self, structures: Sequence[Atoms], *, calibrated: bool = True,
                forces_std: bool = True) -> list[Prediction]:
        """Committee mean and spread for each structure; ``forces_std=False`` may skip the
        per-member forces (then ``Prediction.forces_std`` is ``None``)."""

    @abc.abstractmethod
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to ``path`` without pickle (atomically: a temporary name, then a rename)."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | os.PathLike[str], *, n_threads: int | None = None) -> Model:
        """Read a model written by :meth:`save`; a corrupt or unknown file raises
        :class:`~alal.errors.ModelFileError`. ``n_threads``: threads for its computations
        (``None``: all cores)."""

    def calibrate(self, structures: Sequence[Atoms]) -> Calibration:
        """Fit and store the :class:`Calibration` on labelled structures the members never saw."""
        labels = [labels_of(a, f"calibration structure {k}") for k, a in enumerate(structures)]
        self.calibration = Calibration.fit(self.predict(structures, calibrated=False), labels)
        return self.calibration

    def calculator(self, **kwargs: Any) -> Calculator:
        """An ASE calculator: ``energy``, ``free_energy``, ``forces``, ``stress``, plus
        ``energy_std`` (eV), ``forces_std`` (per atom, eV/Å) and ``max_force_std`` (eV/Å)."""
        from alal.calculator import CommitteeCalculator

        return CommitteeCalculator(self, **kwargs)
