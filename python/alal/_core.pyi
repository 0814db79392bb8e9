"""Type stubs of the native module ``alal._core`` (Rust, pyo3). Use the documented wrappers in
:mod:`alal.neighbors` and :mod:`alal.descriptors` rather than these functions directly."""

import numpy as np
from numpy.typing import NDArray

__version__: str

_Pairs = tuple[
    NDArray[np.int64],  # i
    NDArray[np.int64],  # j
    NDArray[np.int32],  # S (n, 3), or (0, 3) if not requested
    NDArray[np.float64],  # D (n, 3), Å, or (0, 3)
    NDArray[np.float64],  # d (n,), Å, or (0,)
]

def neighbor_list(
    positions: NDArray[np.float64],
    cell: NDArray[np.float64],
    pbc: tuple[bool, bool, bool],
    cutoff: float,
    *,
    radii: NDArray[np.float64] | None = None,
    species: NDArray[np.int64] | None = None,
    table: NDArray[np.float64] | None = None,
    full_list: bool = True,
    self_interaction: bool = False,
    shifts: bool = True,
    vectors: bool = True,
    distances: bool = True,
    n_threads: int = 0,
) -> _Pairs: ...
def neighbor_list_batch(
    positions: list[NDArray[np.float64]],
    cells: list[NDArray[np.float64]],
    pbcs: list[tuple[bool, bool, bool]],
    cutoff: float,
    *,
    full_list: bool = True,
    self_interaction: bool = False,
    shifts: bool = True,
    vectors: bool = True,
    distances: bool = True,
    n_threads: int = 0,
) -> list[_Pairs]: ...
def default_threads() -> int: ...
def _reset_after_fork() -> None: ...

class PreparedBatch:
    """Neighbourhoods of a batch, found once for several descriptor calls."""

    @property
    def n_atoms(self) -> int: ...
    @property
    def n_structures(self) -> int: ...
    @property
    def n_pairs(self) -> int: ...

class AniDescriptor:
    def __init__(
        self,
        *,
        n_species: int,
        radial_cutoff: float,
        radial_eta: float,
        radial_shifts: list[float],
        radial_scale: float,
        angular_cutoff: float,
        angular_eta: float,
        angular_zeta: float,
        angular_shifts: list[float],
        angle_sections: list[float],
        cos_scale: float,
    ) -> None: ...
    @property
    def n_features(self) -> int: ...
    def prepare(
        self,
        positions: NDArray[np.float64],
        cells: NDArray[np.float64],
        pbc: NDArray[np.bool_],
        species: NDArray[np.int64],
        counts: NDArray[np.int64],
        n_threads: int = 0,
    ) -> PreparedBatch: ...
    def forward_prepared(self, prepared: PreparedBatch, n_threads: int = 0) -> NDArray[np.float64]: ...
    def vjp_prepared(
        self, prepared: PreparedBatch, cotangent: NDArray[np.float64], n_threads: int = 0
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]: ...
    def jvp_prepared(
        self,
        prepared: PreparedBatch,
        tangent: NDArray[np.float64],
        cell_tangents: NDArray[np.float64] | None = None,
        n_threads: int = 0,
    ) -> NDArray[np.float64]: ...
    def vjp_many_prepared(
        self, prepared: PreparedBatch, cotangents: NDArray[np.float64], n_threads: int = 0
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]: ...
    def jvp_many_prepared(
        self,
        prepared: PreparedBatch,
        tangents: NDArray[np.float64],
        cell_tangents: NDArray[np.float64] | None = None,
        n_threads: int = 0,
    ) -> NDArray[np.float64]: ...
    def jacobian(
        self,
        positions: NDArray[np.float64],
        cell: NDArray[np.float64],
        pbc: tuple[bool, bool, bool],
        species: NDArray[np.int64],
        max_bytes: int,
        n_threads: int = 0,
    ) -> NDArray[np.float64]: ...
