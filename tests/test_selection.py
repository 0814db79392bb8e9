"""Batch selection: uncertainty per cost, diversity, duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from alal.errors import InvalidInputError
from alal.selection import select_batch


def test_uncertainty_per_cost_without_diversity():
    u = [0.1, 0.5, 0.3, 0.5]
    sizes = [10, 10, 10, 20]  # the last is as uncertain as the second but 8x dearer
    x = np.eye(4)
    assert select_batch(u, sizes, x, 2, diversity=0.0) == [1, 2]
    assert select_batch(u, sizes, x, 2, diversity=0.0, cost_exponent=0.0) in ([1, 3], [3, 1])


def test_diversity_spreads_the_batch():
    rng = np.random.default_rng(0)
    cluster = rng.normal(0, 0.01, size=(5, 3))  # five near-duplicates
    far = np.array([[5.0, 0, 0], [0, 5.0, 0]])
    x = np.vstack([cluster, far])
    u = np.array([1.0] * 5 + [0.8, 0.8])
    sizes = np.full(7, 32)
    picked = select_batch(u, sizes, x, 3, diversity=1.0)
    assert sum(i < 5 for i in picked) == 1 and {5, 6} <= set(picked)
    assert sum(i < 5 for i in select_batch(u, sizes, x, 3, diversity=0.0)) == 3
    # Existing data near the far points pushes the choice back to the cluster first.
    near = select_batch(u, sizes, x, 1, existing=far, diversity=1.0)
    assert near[0] < 5


def test_limits_and_errors():
    assert select_batch([], [], np.zeros((0, 2)), 3) == []
    assert len(select_batch([1, 2], [4, 4], np.eye(2), 5)) == 2
    with pytest.raises(InvalidInputError):
        select_batch([np.nan], [4], np.zeros((1, 2)), 1)
    with pytest.raises(InvalidInputError):
        select_batch([1.0], [4, 5], np.zeros((1, 2)), 1)
