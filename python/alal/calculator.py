"""ASE calculator over any committee model (:class:`alal.plugins.Model`).

Besides ``energy``, ``free_energy``, ``forces`` and ``stress`` it reports the committee's
calibrated disagreement: ``energy_std`` (eV), ``energy_std_per_atom`` (eV/atom), ``forces_std``
(per atom, eV/Å) and ``max_force_std`` (eV/Å), read with ``atoms.calc.results[...]`` or
``atoms.calc.get_property("forces_std", atoms)``. Stress is given for cells with a volume (any
periodicity: slabs with vacuum included) and refused for a structure without a cell.

The per-member forces behind ``forces_std`` cost as much again as the rest, so they are computed
only when ``forces_std`` or ``max_force_std`` is asked for (or with ``always_forces_std=True``):
an MD run that checks the spread every 50 steps pays for it once per 50 steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

if TYPE_CHECKING:
    from alal.plugins.model import Model

__all__ = ["CommitteeCalculator"]


class CommitteeCalculator(Calculator):
    """An ASE calculator that evaluates a committee model: mean prediction plus spread."""

    implemented_properties: ClassVar[list[str]] = [
        "energy", "free_energy", "forces", "stress",
        "energy_std", "energy_std_per_atom", "forces_std", "max_force_std",
    ]

    def __init__(self, model: Model, *, calibrated: bool = True, always_forces_std: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.calibrated = calibrated
        self.always_forces_std = always_forces_std

    def calculate(self, atoms: Atoms | None = None, properties: list[str] | None = None,
                  system_changes: list[str] = all_changes) -> None:
        properties = properties or ["energy"]
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None
        if "stress" in properties and abs(self.atoms.cell.volume) < 1e-9:
            raise PropertyNotImplementedError("stress needs a cell with a volume")
        members = self.always_forces_std or bool({"forces_std", "max_force_std"} & set(properties))
        p = self.model.predict([self.atoms], calibrated=self.calibrated, forces_std=members)[0]
        self.results = {
            "energy": p.energy,
            "free_energy": p.energy,
            "forces": p.forces,
            "energy_std": p.energy_std,
            "energy_std_per_atom": p.energy_std_per_atom,
            "member_energies": np.asarray(p.member_energies),
        }
        if p.forces_std is not None:
            self.results["forces_std"] = p.forces_std
            self.results["max_force_std"] = p.max_force_std
        if p.stress is not None:
            self.results["stress"] = p.stress
