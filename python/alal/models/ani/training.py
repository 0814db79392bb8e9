"""Training of the ``ani`` committee: all members in one batched network, each with its own
train/early-stopping split (a per-member mask on the shared minibatches), energy + force (+ stress)
loss, Adam with plateau halving, early stopping per member, then calibration on held-out data."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from ase import Atoms
from tqdm.auto import tqdm

from alal.errors import InvalidInputError
from alal.models.ani.committee import Committee, TorchBatch
from alal.plugins.model import Calibration, FitReport, Labels, Model, labels_of

if TYPE_CHECKING:
    from alal.models.ani.model import AniModel

__all__ = ["train_committee"]

log = logging.getLogger(__name__)


@dataclass
class _Data:
    """Training structures with cached features and labels."""

    structures: list[Atoms]
    features: list[np.ndarray]
    labels: list[Labels]

    def batch(self, model: AniModel, idx: np.ndarray) -> tuple[TorchBatch, dict[str, torch.Tensor]]:
        atoms = [self.structures[i] for i in idx]
        packed = model.descriptor.pack(atoms)
        tb = TorchBatch.build(model.descriptor, packed, np.concatenate([self.features[i] for i in idx]))
        labs = [self.labels[i] for i in idx]
        stress = np.array([np.zeros(6) if lab.stress is None else lab.stress for lab in labs])
        volume = np.abs(np.linalg.det(packed.cells))
        has_stress = np.array([lab.stress is not None for lab in labs]) & (volume > 1e-9)
        target = {
            "energy": torch.tensor([lab.energy for lab in labs], dtype=torch.float64),
            "forces": torch.from_numpy(np.concatenate([lab.forces for lab in labs])),
            "stress": torch.from_numpy(stress),
            "has_stress": torch.from_numpy(has_stress),
            "volume": torch.from_numpy(np.where(volume > 1e-9, volume, 1.0)),
        }
        return tb, target


_VOIGT = ([0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1])


def _errors(model: AniModel, tb: TorchBatch, target: dict[str, torch.Tensor], *, train: bool
            ) -> dict[str, torch.Tensor]:
    """Per member and structure: squared energy error per atom (eV²), summed squared force
    components ((eV/Å)²) and mean squared stress × V/N (eV²)."""
    c = model.config
    need_grad = c["force_weight"] > 0 or c["stress_weight"] > 0 or not train
    out: dict[str, torch.Tensor] = {}
    if need_grad:
        energies, grad_pos, grad_cells = model.committee.energies_and_gradients(
            tb, model.descriptor, create_graph=train)
        df = (-grad_pos - target["forces"]) ** 2  # (K, N, 3)
        k = df.shape[0]
        out["forces"] = df.new_zeros((k, tb.n_structures)).index_add(1, tb.structure, df.sum(2))
        if c["stress_weight"] > 0 and bool(target["has_stress"].any()):
            sigma = Committee.stress(tb, grad_pos, grad_cells)[:, :, _VOIGT[0], _VOIGT[1]]
            sigma = torch.nan_to_num(sigma)
            scale = (target["volume"] / tb.n_atoms).view(1, -1, 1)
            ds = ((sigma - target["stress"]) * scale) ** 2
            out["stress"] = ds.mean(2) * target["has_stress"]
    else:
        energies = model.committee.member_energies(tb, tb.features)
    out["energy"] = ((energies - target["energy"]) / tb.n_atoms) ** 2
    return out


def _member_losses(model: AniModel, err: dict[str, torch.Tensor], mask: torch.Tensor,
                   n_atoms: torch.Tensor, has_stress: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted loss ``(K,)`` of each member over the structures in its ``mask`` ``(K, B)``, and
    the unweighted mean squared errors."""
    c = model.config
    m = mask.to(torch.float64)
    n_struct = m.sum(1).clamp(min=1)
    mse = {"energy": (err["energy"] * m).sum(1) / n_struct}
    loss = c["energy_weight"] * mse["energy"]
    if "forces" in err:
        mse["forces"] = (err["forces"] * m).sum(1) / (3 * (m * n_atoms).sum(1)).clamp(min=1)
        loss = loss + c["force_weight"] * mse["forces"]
    if "stress" in err:
        ms = m * has_stress
        mse["stress"] = (err["stress"] * ms).sum(1) / ms.sum(1).clamp(min=1)
        loss = loss + c["stress_weight"] * mse["stress"]
    return loss, mse


def _fit_scaling(committee: Committee, data: _Data, species: list[np.ndarray], n_el: int) -> None:
    """Feature standardisation per element, reference energies by least squares on composition,
    and the scale of the network outputs (spread of the residual energy per atom)."""
    counts = np.array([np.bincount(s, minlength=n_el) for s in species], dtype=np.float64)
    energies = np.array([lab.energy for lab in data.labels])
    e_ref = np.linalg.lstsq(counts, energies, rcond=None)[0]
    residual = (energies - counts @ e_ref) / counts.sum(1)
    feats = np.concatenate(data.features)
    spec = np.concatenate(species)
    mean = np.zeros((n_el, feats.shape[1]))
    inv_std = np.ones((n_el, feats.shape[1]))
    for e in range(n_el):
        x = feats[spec == e]
        if len(x):
            mean[e] = x.mean(0)
            std = x.std(0)
            # A feature that barely varies in the training set (perfect crystals, a shell no
            # training structure reaches) must not be blown up where another structure has it: its
            # scale is at least 10 % of its mean magnitude and 1 % of the features' overall RMS.
            rms = float(np.sqrt(np.mean(x**2))) or 1.0
            floor = np.maximum(0.1 * np.abs(x.mean(0)), 1e-2 * rms)
            inv_std[e] = 1.0 / np.maximum(std, floor)
        else:
            log.warning("element %d has no atom in the training set: its network stays untrained", e)
    with torch.no_grad():
        committee.feature_mean.copy_(torch.from_numpy(mean))
        committee.feature_inv_std.copy_(torch.from_numpy(inv_std))
        committee.reference_energies.copy_(torch.from_numpy(e_ref))
        committee.energy_scale.fill_(max(float(residual.std()), 1e-2))


def _warm_start(model: AniModel, warm: Model) -> None:
    from alal.models.ani.model import AniModel

    keys = ("elements", "hidden", "n_members", "dtype", "activation", "celu_alpha")
    if not isinstance(warm, AniModel) or any(warm.config[k] != model.config[k] for k in keys) \
            or warm.parameters != model.parameters:
        raise InvalidInputError(
            "warm_start must be an ani model with the same elements, descriptor, hidden layers, "
            "n_members, dtype, activation and celu_alpha")
    model.committee.load_state_dict(copy.deepcopy(warm.committee.state_dict()))


def _splits(n: int, n_members: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-member boolean masks ``(K, n)``: training and early-stopping structures."""
    train = np.ones((n_members, n), dtype=bool)
    n_valid = int(round(fraction * n)) if n >= 2 else 0
    if fraction > 0 and n >= 2:
        n_valid = max(1, min(n_valid, n - 1))
    for k in range(n_members):
        perm = np.random.default_rng([seed, k]).permutation(n)
        train[k, perm[:n_valid]] = False
    return train, ~train


def _evaluate(model: AniModel, data: _Data, idx: np.ndarray, mask: np.ndarray, batch_size: int
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per member loss and mean squared errors on the structures ``idx`` selected by ``mask``."""
    k = model.n_members
    sums: dict[str, np.ndarray] = {}
    weights: dict[str, np.ndarray] = {}
    loss_sum, loss_w = np.zeros(k), np.zeros(k)
    for start in range(0, len(idx), batch_size):
        chunk = idx[start:start + batch_size]
        tb, target = data.batch(model, chunk)
        m = torch.from_numpy(mask[:, chunk])
        err = _errors(model, tb, target, train=False)
        loss, mse = _member_losses(model, {key: v.detach() for key, v in err.items()}, m, tb.n_atoms,
                                   target["has_stress"])
        w = m.sum(1).numpy().astype(float)
        loss_sum += loss.numpy() * w
        loss_w += w
        for key, v in mse.items():
            sums[key] = sums.get(key, 0) + v.numpy() * w
            weights[key] = weights.get(key, 0) + w
    mse_out = {key: sums[key] / np.maximum(weights[key], 1) for key in sums}
    return loss_sum / np.maximum(loss_w, 1), mse_out


def train_committee(model: AniModel, train: list[Atoms], valid: list[Atoms] | None,
                    warm_start: Model | None) -> FitReport:
    t0 = time.perf_counter()
    c = model.config
    if not train:
        raise InvalidInputError("fit needs at least one labelled training structure")
    for k, atoms in enumerate(train):
        labels_of(atoms, f"training structure {k}")
    rng = np.random.default_rng(c["seed"])
    if valid is None and len(train) >= 10 and c["calibration_fraction"] > 0:
        perm = rng.permutation(len(train))
        n_cal = max(1, int(round(c["calibration_fraction"] * len(train))))
        valid = [train[i] for i in perm[:n_cal]]
        train = [train[i] for i in sorted(perm[n_cal:])]
    valid_labels = [labels_of(a, f"validation structure {k}") for k, a in enumerate(valid or [])]

    desc = model.descriptor
    species = [desc.parameters.species_indices(a.numbers) for a in train]
    data = _Data(train, desc.compute_batch(train), [labels_of(a) for a in train])
    if warm_start is not None:
        _warm_start(model, warm_start)
    else:
        _fit_scaling(model.committee, data, species, len(model.elements))

    k, n = model.n_members, len(train)
    train_mask, valid_mask = _splits(n, k, c["valid_fraction"], c["seed"])
    has_valid = valid_mask.any(1)
    valid_idx = np.flatnonzero(valid_mask.any(0))
    nets = model.committee.networks
    opt = torch.optim.Adam(nets.parameters(), lr=c["learning_rate"])
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=c["lr_factor"], patience=c["lr_patience"])
    best = copy.deepcopy(nets)
    best_loss = np.full(k, np.inf)
    best_epoch = np.zeros(k, dtype=int)
    best_mse: dict[str, np.ndarray] = {}
    history: list[dict[str, float]] = []
    bs = c["batch_size"]
    bar = tqdm(range(c["max_epochs"]), desc=f"training {k} members", unit="epoch",
               disable=None if model.progress else True, leave=False)
    epoch = 0
    for epoch in bar:
        order = rng.permutation(n)
        train_loss = 0.0
        for start in range(0, n, bs):
            chunk = order[start:start + bs]
            tb, target = data.batch(model, chunk)
            err = _errors(model, tb, target, train=True)
            loss, _ = _member_losses(model, err, torch.from_numpy(train_mask[:, chunk]), tb.n_atoms,
                                     target["has_stress"])
            total = loss.sum()
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            train_loss += total.item() * len(chunk) / (n * k)
        if len(valid_idx):
            val_loss, mse = _evaluate(model, data, valid_idx, valid_mask, bs)
            val_loss = np.where(has_valid, val_loss, train_loss)
        else:
            val_loss, mse = np.full(k, train_loss), {}
        improved = val_loss < best_loss
        for m in np.flatnonzero(improved):
            best.copy_member(nets, int(m))
            best_loss[m], best_epoch[m] = val_loss[m], epoch
            for key, v in mse.items():
                best_mse.setdefault(key, np.full(k, np.nan))[m] = v[m]
        lr = opt.param_groups[0]["lr"]
        history.append({"epoch": epoch, "learning_rate": lr, "train_loss": train_loss,
                        "valid_loss": float(val_loss.mean())})
        bar.set_postfix(train=f"{train_loss:.3g}", valid=f"{val_loss.mean():.3g}", lr=f"{lr:.2g}")
        sched.step(float(val_loss.mean()))
        if (epoch - best_epoch > c["patience"]).all() or lr < c["min_learning_rate"]:
            break
    bar.close()
    for m in range(k):
        nets.copy_member(best, m)
    model.trained = True

    members = []
    for m in range(k):
        info = {"member": m, "best_epoch": int(best_epoch[m]), "valid_loss": float(best_loss[m]),
                "n_train": int(train_mask[m].sum()), "n_valid": int(valid_mask[m].sum())}
        if "energy" in best_mse:
            info["energy_rmse"] = float(np.sqrt(best_mse["energy"][m]))
        if "forces" in best_mse:
            info["force_rmse"] = float(np.sqrt(best_mse["forces"][m]))
        members.append(info)
        log.info("member %d: best epoch %d, valid loss %.4g, energy RMSE %.2f meV/atom, force RMSE %.3f eV/Å",
                 m, info["best_epoch"], info["valid_loss"], 1e3 * info.get("energy_rmse", np.nan),
                 info.get("force_rmse", np.nan))
    report = FitReport(n_train=n, n_valid=len(valid or []), epochs=epoch + 1,
                       seconds=time.perf_counter() - t0, members=members, history=history)
    if valid:
        preds = model.predict(valid, calibrated=False)
        model.calibration = Calibration.fit(preds, valid_labels)
        report.calibration = model.calibration
        report.valid_errors = {
            "energy_rmse": float(np.sqrt(np.mean([((p.energy - lab.energy) / p.n_atoms) ** 2
                                                  for p, lab in zip(preds, valid_labels)]))),
            "force_rmse": float(np.sqrt(np.mean(np.concatenate(
                [((p.forces - lab.forces) ** 2).ravel() for p, lab in zip(preds, valid_labels)])))),
        }
    else:
        log.warning("no held-out structures: the committee spread is not calibrated")
    return report
