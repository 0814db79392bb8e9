"""alal-pyscf: PySCF (Kohn–Sham DFT, periodic or molecular) as an alal oracle, registered as
``pyscf`` in the ``alal.oracles`` entry-point group.

Importing this package imports neither PySCF nor alal: the child process that runs PySCF starts as
``python -m alal_pyscf._worker``. The oracle is :class:`alal_pyscf.oracle.PyscfOracle`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["PyscfOracle", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "PyscfOracle":
        from alal_pyscf.oracle import PyscfOracle

        return PyscfOracle
    raise AttributeError(f"module 'alal_pyscf' has no attribute {name!r}")
