"""Neighbourhoods prepared once give the same results as the one-shot calls."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from alal.descriptors import AniDescriptor, ani_1x, ani_al
from alal.errors import InvalidInputError


def test_prepared_calls_equal_one_shot_calls():
    structures = [bulk("Al", "fcc", a=4.05).repeat(2), bulk("Al", "bcc", a=3.2, cubic=True).repeat(2)]
    for k, atoms in enumerate(structures):
        atoms.rattle(0.05, seed=k)
    desc = AniDescriptor(ani_al())
    batch = desc.pack(structures)
    prepared = desc.prepare(batch)
    assert (prepared.n_atoms, prepared.n_structures) == (len(batch.positions), 2)
    assert prepared.n_pairs > 0
    rng = np.random.default_rng(0)
    cot = rng.normal(size=(prepared.n_atoms, desc.n_features))
    tangent = rng.normal(size=(prepared.n_atoms, 3))
    cell_tangents = rng.normal(size=(2, 3, 3))
    np.testing.assert_array_equal(desc.forward_prepared(prepared), desc.forward_packed(batch))
    for a, b in zip(desc.vjp_prepared(prepared, cot), desc.vjp_packed(batch, cot)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(desc.jvp_prepared(prepared, tangent, cell_tangents),
                                  desc.jvp_packed(batch, tangent, cell_tangents))


def test_prepared_batch_of_another_descriptor_is_refused():
    atoms = bulk("Al", "fcc", a=4.05)
    desc = AniDescriptor(ani_al())
    other = AniDescriptor(ani_al(("Al", "Cu")))
    prepared = desc.prepare(desc.pack(atoms))
    with pytest.raises(InvalidInputError, match="other parameters"):
        other.forward_prepared(prepared)
    with pytest.raises(InvalidInputError, match="cotangent"):
        desc.vjp_prepared(prepared, np.zeros((2, desc.n_features)))
    assert ani_1x().n_features == 384
