"""Independent NumPy reference of the ANI descriptor, for tests only.

Written from the formulas (torchani conventions), not from the Rust code, and deliberately simple:
ASE's neighbour list for the pairs, a Python loop over the central atoms and a vectorised sum over
the neighbour pairs of each atom. Meant for small systems (a few dozen atoms).

For atom ``i`` with neighbours ``j`` (pair vectors ``D_ij``, distances ``r_ij``)::

    fc(r, Rc)            = ½ cos(π r / Rc) + ½            (r < Rc, else 0)
    G_rad[s, Rs]         = radial_scale · Σ_{j ∈ s} exp(−η_R (r_ij − Rs)²) fc(r_ij, Rc_R)
    θ_ijk                = acos(cos_scale · D_ij·D_ik / (r_ij r_ik))
    G_ang[(s,t), Rs, θs] = 2 Σ_{j<k, {s_j, s_k} = {s, t}} ((1 + cos(θ_ijk − θs)) / 2)^ζ
                             · exp(−η_A ((r_ij + r_ik)/2 − Rs)²) fc(r_ij, Rc_A) fc(r_ik, Rc_A)

The sum ``j < k`` runs over unordered pairs of distinct neighbours (periodic images count as
distinct neighbours). Feature layout: radial blocks ``[s][Rs]``, then angular blocks
``[(s, t) in upper-triangle order (0,0), (0,1), …, (1,1), …][Rs][θs]``.
"""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from alal.descriptors import AniParameters

__all__ = ["cosine_cutoff", "reference_features", "species_pair_index"]


def cosine_cutoff(r: np.ndarray, rc: float) -> np.ndarray:
    """``½ cos(π r / rc) + ½`` inside the cutoff, 0 outside."""
    r = np.asarray(r, dtype=np.float64)
    return np.where(r < rc, 0.5 * np.cos(np.pi * r / rc) + 0.5, 0.0)


def species_pair_index(n_species: int) -> np.ndarray:
    """``(n_species, n_species)`` table of the unordered species pair's block, in the order
    ``itertools.combinations_with_replacement`` yields them (the upper triangle, row by row)."""
    table = np.full((n_species, n_species), -1, dtype=np.int64)
    for k, (s, t) in enumerate(itertools.combinations_with_replacement(range(n_species), 2)):
        table[s, t] = table[t, s] = k
    return table


def reference_features(atoms: Atoms, params: AniParameters) -> np.ndarray:
    """Features ``(n_atoms, n_features)`` of ``atoms`` under ``params``."""
    species_of = {symbol: k for k, symbol in enumerate(params.species)}
    species = np.array([species_of[symbol] for symbol in atoms.get_chemical_symbols()], dtype=np.int64)
    n_species = len(params.species)

    radial_shifts = np.asarray(params.radial_shifts)
    angular_shifts = np.asarray(params.angular_shifts)
    sections = np.asarray(params.angle_sections)
    n_rad = len(radial_shifts)
    n_ang = len(angular_shifts) * len(sections)
    pair_block = species_pair_index(n_species)
    n_pairs = n_species * (n_species + 1) // 2
    n_features = n_species * n_rad + n_pairs * n_ang

    first, second, vectors = neighbor_list("ijD", atoms, max(params.radial_cutoff, params.angular_cutoff))
    out = np.zeros((len(atoms), n_features))
    for i in range(len(atoms)):
        mine = first == i
        nb_species = species[second[mine]]
        nb_vectors = vectors[mine]
        nb_r = np.linalg.norm(nb_vectors, axis=1)

        # Radial part: one Gaussian per shift, summed per neighbour species.
        inside = nb_r < params.radial_cutoff
        terms = (
            params.radial_scale
            * np.exp(-params.radial_eta * (nb_r[inside, None] - radial_shifts[None, :]) ** 2)
            * cosine_cutoff(nb_r[inside], params.radial_cutoff)[:, None]
        )
        for s in range(n_species):
            out[i, s * n_rad:(s + 1) * n_rad] = terms[nb_species[inside] == s].sum(axis=0)

        # Angular part: every unordered pair (j, k), j < k, of neighbours inside the angular cutoff.
        inside = nb_r < params.angular_cutoff
        s_a, v_a, r_a = nb_species[inside], nb_vectors[inside], nb_r[inside]
        fc_a = cosine_cutoff(r_a, params.angular_cutoff)
        j, k = np.triu_indices(len(r_a), k=1)
        if len(j) == 0:
            continue
        cos = np.einsum("pc,pc->p", v_a[j], v_a[k]) / (r_a[j] * r_a[k])
        theta = np.arccos(params.cos_scale * cos)
        angle = ((1.0 + np.cos(theta[:, None] - sections[None, :])) / 2.0) ** params.angular_zeta
        mean_r = 0.5 * (r_a[j] + r_a[k])
        radial = np.exp(-params.angular_eta * (mean_r[:, None] - angular_shifts[None, :]) ** 2)
        # (pairs, Rs, θs), flattened with θs fastest.
        terms = 2.0 * (radial[:, :, None] * angle[:, None, :]) * (fc_a[j] * fc_a[k])[:, None, None]
        terms = terms.reshape(len(j), n_ang)
        blocks = pair_block[s_a[j], s_a[k]]
        start = n_species * n_rad
        for b in range(n_pairs):
            out[i, start + b * n_ang:start + (b + 1) * n_ang] = terms[blocks == b].sum(axis=0)
    return out
