"""The ``emt`` oracle: ASE's effective-medium theory (Al, Cu, Ag, Au, Ni, Pd, Pt; H, C, N, O
roughly). Milliseconds per structure, exact and deterministic: the default for tests, the quick
start and honest regression tests of the whole loop."""

from __future__ import annotations

from typing import Any

from ase.calculators.emt import EMT, parameters

from alal.errors import OracleSetupError
from alal.plugins.oracle import AseCalculatorOracle

__all__ = ["EmtOracle"]


class EmtOracle(AseCalculatorOracle):
    """ASE's EMT calculator as an oracle.

    Args:
        stress: label 3-D periodic cells with the stress too.
        min_distance: refuse structures with atoms closer than this (Å).
    """

    name = "emt"

    def __init__(self, *, stress: bool = True, min_distance: float = 1.5) -> None:
        super().__init__(make_calculator=EMT, stress=stress, min_distance=min_distance)

    def settings(self) -> dict[str, Any]:
        return {"stress": self.stress, "calculator": "ase.calculators.emt.EMT"}

    def check_elements(self, symbols: list[str]) -> None:
        """Raise :class:`OracleSetupError` for elements EMT has no parameters for."""
        missing = sorted(set(symbols) - set(parameters))
        if missing:
            raise OracleSetupError(f"EMT has no parameters for {', '.join(missing)} (it knows {sorted(parameters)})")
