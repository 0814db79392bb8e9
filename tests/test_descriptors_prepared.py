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


@pytest.mark.parametrize("params", [ani_al(("Al", "Cu")), ani_1x()], ids=["ani-al-2", "ani-1x"])
def test_many_cotangents_and_tangents_equal_one_at_a_time(params):
    """The committee products (m cotangents / tangents sharing the geometric terms) equal m
    single products, for several species and both ζ code paths."""
    species = params.species
    structures = [bulk("Al", "fcc", a=4.05).repeat(2), bulk("Cu", "bcc", a=2.9, cubic=True).repeat(2)]
    if "Cu" in species:
        structures[0].symbols[::3] = "Cu"
    else:
        structures = [bulk("C", "diamond", a=3.57), bulk("H", "sc", a=1.9).repeat(2)]
    for k, atoms in enumerate(structures):
        atoms.rattle(0.05, seed=k)
    desc = AniDescriptor(params)
    prepared = desc.prepare(desc.pack(structures))
    rng = np.random.default_rng(1)
    m, n, nf = 5, prepared.n_atoms, desc.n_features
    cot = rng.normal(size=(m, n, nf))
    tangents = rng.normal(size=(m, n, 3))
    cell_tangents = rng.normal(size=(m, 2, 3, 3))
    many = desc.vjp_many_prepared(prepared, cot)
    jvps = desc.jvp_many_prepared(prepared, tangents, cell_tangents)
    assert [a.shape for a in many] == [(m, n, 3), (m, 2, 3, 3), (m, 2, 3, 3)]
    assert jvps.shape == (m, n, nf)
    for k in range(m):
        for a, b in zip(many, desc.vjp_prepared(prepared, cot[k])):
            np.testing.assert_allclose(a[k], b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(jvps[k], desc.jvp_prepared(prepared, tangents[k], cell_tangents[k]),
                                   rtol=1e-12, atol=1e-12)
    with pytest.raises(InvalidInputError, match="cotangents"):
        desc.vjp_many_prepared(prepared, cot[0])
    with pytest.raises(InvalidInputError, match="cell_tangents"):
        desc.jvp_many_prepared(prepared, tangents, cell_tangents[:2])
    with pytest.raises(InvalidInputError):
        desc.vjp_many_prepared(prepared, np.zeros((0, n, nf)))
