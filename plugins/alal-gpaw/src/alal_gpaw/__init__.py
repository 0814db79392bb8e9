"""alal-gpaw: GPAW (plane-wave PAW DFT) as an alal oracle, registered as ``gpaw`` in the
``alal.oracles`` entry-point group.

Importing this package imports neither GPAW nor alal: the child process that runs GPAW starts as
``python -m alal_gpaw._worker``. The oracle is :class:`alal_gpaw.oracle.GpawOracle`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["GpawOracle", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "GpawOracle":
        from alal_gpaw.oracle import GpawOracle

        return GpawOracle
    raise AttributeError(f"module 'alal_gpaw' has no attribute {name!r}")
