"""alal: active learning of machine-learned interatomic potentials.

The native core is exposed through :mod:`alal.neighbors` (neighbour lists) and
:mod:`alal.descriptors` (ANI-style descriptors with analytic gradients); :mod:`alal.autograd`
wraps the descriptors for torch. Importing :mod:`alal` imports neither torch nor any plugin.
"""

from __future__ import annotations

import os as _os

from alal import _core
from alal.errors import AlalError, InternalError, InvalidInputError, NumericalError

__version__: str = _core.__version__
__all__ = ["AlalError", "InternalError", "InvalidInputError", "NumericalError", "__version__"]

# rayon's thread pools do not survive fork(): a child would wait forever on threads that do not
# exist. The core keeps its own pools; the child forgets them and starts fresh ones.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_core._reset_after_fork)
