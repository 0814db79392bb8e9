"""The ``ani`` model plugin: a committee of per-element networks over alal's ANI descriptors."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers

from alal.descriptors import AniDescriptor, AniParameters, ani_al, ani_al_smooth
from alal.errors import InvalidInputError, ModelFileError
from alal.models.ani.committee import Committee, TorchBatch
from alal.models.ani.network import ACTIVATIONS, CommitteeNetworks
from alal.plugins.model import Calibration, FitReport, Model, Prediction

__all__ = ["AniModel"]

_DESCRIPTOR_PRESETS = {"ani-al": ani_al, "ani-al-smooth": ani_al_smooth}
"""Named descriptors of the ``descriptor`` parameter, each a function of the elements."""

VOIGT = ([0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1])
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Set torch's intra-op threads to ``n`` for a block (only when it differs: switching costs ~1 ms)."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _chunks(structures: Sequence[Atoms], max_atoms: int) -> list[list[Atoms]]:
    out: list[list[Atoms]] = [[]]
    n = 0
    for atoms in structures:
        if out[-1] and n + len(atoms) > max_atoms:
            out.append([])
            n = 0
        out[-1].append(atoms)
        n += len(atoms)
    return [c for c in out if c]


class AniModel(Model):
    """Committee of ``n_members`` ANI networks (one per element), trained on energies and forces.

    Energies in eV, forces in eV/Å, stress in eV/Å³. Every parameter is keyword-only so that a
    config section ``{name = "ani", params = {...}}`` maps onto it; see :meth:`fit` for training.

    Args:
        elements: chemical symbols, in the order of the descriptor's species.
        descriptor: ``"ani-al"`` (ANI-Al's constants for ``elements``, 96 features per element
            pair set), ``"ani-al-smooth"`` (the same with 12 wider radial Gaussians, see
            :func:`~alal.descriptors.ani_al_smooth`) or a dict of
            :class:`~alal.descriptors.AniParameters` fields.
        hidden: hidden layer widths (ANI-Al: 96, 96, 64), then one output.
        activation: hidden-layer activation: ``"celu"`` (ANI's, with ``celu_alpha``), ``"silu"``,
            ``"softplus"`` or ``"tanh"``. CELU's second derivative jumps where a unit switches,
            which makes the energy's curvature (elastic constants, bulk modulus) bumpy on the
            perfect crystal; the smooth ones do not.
        celu_alpha: α of the CELU activation.
        n_members: committee size K.
        seed: seeds every member's initial weights (``seed + k``), its split and the batches.
        valid_fraction: share of the training structures each member keeps for early stopping.
        calibration_fraction: share held out from all members to calibrate the spread when
            :meth:`fit` gets no ``valid`` set.
        energy_weight, force_weight, stress_weight: loss weights on the energy per atom (eV²),
            force components ((eV/Å)²) and stress × volume per atom (eV²).
        learning_rate, lr_factor, lr_patience, min_learning_rate: Adam and its plateau halving.
        batch_size: structures per optimiser step.
        max_epochs, patience: epoch limit and early stopping (epochs without improvement).
        dtype: ``"float32"`` or ``"float64"`` for the networks (descriptors are always float64).
        n_threads: descriptor threads (``None``: all cores).
        torch_threads: torch intra-op threads for the networks while this model computes (``None``:
            leave torch's setting alone). 1 by default: the per-atom networks are small, and
            torch's OpenMP threads slow training down several-fold when the cores are shared.
        progress: show a progress bar while training.
    """

    name = "ani"

    def __init__(
        self, *, elements: Sequence[str] = ("Al",), descriptor: str | dict[str, Any] = "ani-al",
        hidden: Sequence[int] = (96, 96, 64), activation: str = "celu", celu_alpha: float = 0.1,
        n_members: int = 8,
        seed: int = 0, valid_fraction: float = 0.1, calibration_fraction: float = 0.1,
        energy_weight: float = 1.0, force_weight: float = 0.05, stress_weight: float = 0.0,
        learning_rate: float = 1e-3, lr_factor: float = 0.5, lr_patience: int = 10,
        min_learning_rate: float = 1e-5, batch_size: int = 4, max_epochs: int = 300,
        patience: int = 40, dtype: str = "float32", n_threads: int | None = None,
        torch_threads: int | None = 1, progress: bool = True,
    ) -> None:
        self.config: dict[str, Any] = {
            "elements": list(elements), "descriptor": descriptor, "hidden": list(hidden),
            "activation": activation, "celu_alpha": celu_alpha, "n_members": n_members, "seed": seed,
            "valid_fraction": valid_fraction, "calibration_fraction": calibration_fraction,
            "energy_weight": energy_weight, "force_weight": force_weight,
            "stress_weight": stress_weight, "learning_rate": learning_rate,
            "lr_factor": lr_factor, "lr_patience": lr_patience,
            "min_learning_rate": min_learning_rate, "batch_size": batch_size,
            "max_epochs": max_epochs, "patience": patience, "dtype": dtype,
        }
        self._check_config()
        self.n_threads = n_threads
        if torch_threads is not None and (isinstance(torch_threads, bool) or not isinstance(torch_threads, int)
                                          or torch_threads < 1):
            raise InvalidInputError(f"torch_threads must be a positive integer or None, got {torch_threads!r}")
        self.torch_threads = torch_threads
        self.progress = progress
        self.parameters = self._descriptor_parameters(descriptor, tuple(elements))
        self.descriptor = AniDescriptor(self.parameters, n_threads=n_threads)
        networks = CommitteeNetworks(
            len(elements), n_members, self.descriptor.n_features, hidden, celu_alpha,
            seeds=[seed + k for k in range(n_members)], dtype=_DTYPES[dtype], activation=activation)
        self.committee = Committee(networks, self.descriptor.n_features)
        self.calibration = Calibration()
        self.trained = False

    # -- configuration ------------------------------------------------------------------------
    def _check_config(self) -> None:
        c = self.config
        if not c["elements"] or any(e not in atomic_numbers for e in c["elements"]):
            raise InvalidInputError(f"elements: unknown chemical symbol(s) in {c['elements']}")
        if len(set(c["elements"])) != len(c["elements"]):
            raise InvalidInputError(f"elements: duplicates in {c['elements']}")
        for key in ("n_members", "batch_size", "max_epochs", "patience", "lr_patience"):
            if isinstance(c[key], bool) or not isinstance(c[key], int) or c[key] < 1:
                raise InvalidInputError(f"{key} must be a positive integer, got {c[key]!r}")
        if not c["hidden"] or any(not isinstance(h, int) or h < 1 for h in c["hidden"]):
            raise InvalidInputError(f"hidden must be positive layer widths, got {c['hidden']!r}")
        for key in ("celu_alpha", "learning_rate", "min_learning_rate"):
            if not (isinstance(c[key], (int, float)) and c[key] > 0):
                raise InvalidInputError(f"{key} must be a positive number, got {c[key]!r}")
        for key in ("energy_weight", "force_weight", "stress_weight"):
            if not (isinstance(c[key], (int, float)) and c[key] >= 0):
                raise InvalidInputError(f"{key} must be a non-negative number, got {c[key]!r}")
        for key in ("valid_fraction", "calibration_fraction", "lr_factor"):
            if not (isinstance(c[key], (int, float)) and 0 <= c[key] < 1):
                raise InvalidInputError(f"{key} must be in [0, 1), got {c[key]!r}")
        if c["activation"] not in ACTIVATIONS:
            raise InvalidInputError(f"activation must be one of {list(ACTIVATIONS)}, got {c['activation']!r}")
        if c["dtype"] not in _DTYPES:
            raise InvalidInputError(f"dtype must be one of {sorted(_DTYPES)}, got {c['dtype']!r}")

    @staticmethod
    def _descriptor_parameters(descriptor: str | dict[str, Any], elements: tuple[str, ...]) -> AniParameters:
        if isinstance(descriptor, str) and descriptor in _DESCRIPTOR_PRESETS:
            return _DESCRIPTOR_PRESETS[descriptor](elements)
        if isinstance(descriptor, dict):
            params = AniParameters.from_dict({"species": list(elements), **descriptor})
            if tuple(params.species) != elements:
                raise InvalidInputError(
                    f"descriptor.species {params.species} must equal elements {elements}")
            return params
        names = ", ".join(repr(n) for n in _DESCRIPTOR_PRESETS)
        raise InvalidInputError(f"descriptor must be one of {names} or a dict of AniParameters, got {descriptor!r}")

    @property
    def n_members(self) -> int:
        return int(self.config["n_members"])

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(self.config["elements"])

    def __repr__(self) -> str:
        state = "trained" if self.trained else "untrained"
        return (f"AniModel(elements={self.elements}, n_members={self.n_members}, "
                f"hidden={self.config['hidden']}, {state})")

    # -- prediction ---------------------------------------------------------------------------
    def predict(self, structures: Sequence[Atoms] | Atoms, *, calibrated: bool = True,
                forces_std: bool = True, max_atoms_per_batch: int = 4096) -> list[Prediction]:
        """Committee mean and spread of energy (eV), forces (eV/Å) and stress (eV/Å³) for each
        structure; structures are evaluated in batches of up to ``max_atoms_per_batch`` atoms.

        ``forces_std=False`` skips the per-member forces (``Prediction.forces_std`` is then
        ``None``): one vector–Jacobian product instead of ``n_members``, about twice as fast."""
        if isinstance(structures, Atoms):
            structures = [structures]
        with _torch_threads(self.torch_threads):
            return self._predict(list(structures), calibrated, forces_std, max_atoms_per_batch)

    def _predict(self, structures: list[Atoms], calibrated: bool, forces_std: bool,
                 max_atoms_per_batch: int) -> list[Prediction]:
        out: list[Prediction] = []
        cal = self.calibration if calibrated else Calibration()
        for chunk in _chunks(list(structures), max_atoms_per_batch):
            batch = TorchBatch.build(self.descriptor, self.descriptor.pack(chunk))
            with torch.no_grad():
                energies, grad_pos, grad_cells = self.committee.energies_and_gradients(
                    batch, self.descriptor, create_graph=False, members=forces_std)
                stress = Committee.stress(batch, grad_pos, grad_cells)
            e = energies.detach().numpy()
            forces = -grad_pos.detach().numpy()
            start = 0
            for b, atoms in enumerate(chunk):
                n = len(atoms)
                f = forces[:, start:start + n]
                start += n
                s = stress[:, b].detach().numpy()
                out.append(Prediction(
                    energy=float(e[:, b].mean()),
                    forces=f.mean(axis=0),
                    stress=None if not np.isfinite(s).all() else s.mean(axis=0)[VOIGT],
                    energy_std=float(e[:, b].std()) * cal.energy_scale,
                    forces_std=(np.sqrt(f.var(axis=0).mean(axis=1)) * cal.force_scale
                                if forces_std else None),
                    member_energies=e[:, b].copy(),
                ))
        return out

    # -- training -----------------------------------------------------------------------------
    def fit(self, train: Sequence[Atoms], valid: Sequence[Atoms] | None = None, *,
            warm_start: Model | None = None) -> FitReport:
        """Train the committee on labelled structures (energy, forces, optionally stress on
        ``atoms.calc``), then calibrate its spread on ``valid`` or, without it, on a
        ``calibration_fraction`` of ``train`` held out from every member.

        ``warm_start``: an :class:`AniModel` with the same elements, descriptor and layers whose
        weights, feature scaling and reference energies are the starting point (fine-tuning)."""
        from alal.models.ani.training import train_committee

        with _torch_threads(self.torch_threads):
            return train_committee(self, list(train), None if valid is None else list(valid), warm_start)

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights (safetensors) and metadata (JSON header) to one file, atomically."""
        from alal import __version__
        from alal.models.file_format import write_model_file

        tensors = {k: v.detach().cpu().numpy() for k, v in self.committee.state_dict().items()}
        header = {
            "model": self.name, "config": self.config, "descriptor": self.parameters.to_dict(),
            "calibration": self.calibration.to_dict(), "trained": self.trained,
            "versions": {"alal": __version__, "torch": torch.__version__},
        }
        write_model_file(path, tensors, header)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, n_threads: int | None = None) -> AniModel:
        """Read a model written by :meth:`save`."""
        from alal.models.file_format import read_model_file

        tensors, header = read_model_file(path)
        if header.get("model") != cls.name:
            raise ModelFileError(f"{path}: holds a {header.get('model')!r} model, not {cls.name!r}")
        try:
            config = dict(header["config"])
            config["descriptor"] = {k: v for k, v in header["descriptor"].items() if k != "species"}
            model = cls(**config, n_threads=n_threads, progress=False)
            state = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
            model.committee.load_state_dict(state, strict=True)
            model.calibration = Calibration.from_dict(header["calibration"])
            model.trained = bool(header.get("trained", True))
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            if isinstance(err, ModelFileError):
                raise
            raise ModelFileError(f"{path}: inconsistent ani model file ({err})") from err
        return model
