"""ASE calculator over any committee model (:class:`alal.plugins.Model`).

Besides ``energy``, ``free_energy``, ``forces`` and ``stress`` it reports the committee's
calibrated disagreement: ``energy_std`` (eV), ``energy_std_per_atom`` (eV/atom), ``forces_std``
(per atom, eV/Å) and ``max_force_std`` (eV/Å), read with ``atoms.calc.results[...]`` or
``atoms.calc.get_property("forces_std", atoms)``. Stress is given for cells with a volume (any
periodicity: slabs with vacuum included) and refused for a structure without a cell.
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

    def __init__(self, model: Model, *, calibrated: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.calibrated = calibrated

    def calculate(self, atoms: Atoms | None = None, properties: list[str] | None = None,
                  system_changes: list[str] = all_changes) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        assert self.atoms is not None
        if "stress" in (properties or []) and abs(self.atoms.cell.volume) < 1e-9:
            raise PropertyNotImplementedError("stress needs a cell with a volume")
        p = self.model.predict([self.atoms], calibrated=self.calibrated)[0]
        self.results = {
            "energy": p.energy,
            "free_energy": p.energy,
            "forces": p.forces,
            "energy_std": p.energy_std,
            "energy_std_per_atom": p.energy_std_per_atom,
            "forces_std": p.forces_std,
            "max_force_std": p.max_force_std,
            "member_energies": np.asarray(p.member_energies),
        }
        if p.stress is not None:
            self.results["stress"] = p.stress
