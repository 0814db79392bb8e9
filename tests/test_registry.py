"""Plugin discovery with fake third-party distributions installed into a temporary path."""

from __future__ import annotations

import textwrap
import warnings

import pytest

from alal.errors import PluginError
from alal.plugins import registry


def _install(root, dist: str, module: str, source: str, entries: dict[str, dict[str, str]]) -> None:
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = []
    for group, eps in entries.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def fresh_registry(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._entry_points.cache_clear()
    registry.load_plugin.cache_clear()
    yield tmp_path
    registry._entry_points.cache_clear()
    registry.load_plugin.cache_clear()


ORACLE = """
    from alal.plugins import AseCalculatorOracle
    from ase.calculators.emt import EMT

    class LJOracle(AseCalculatorOracle):
        name = "lj"

        def __init__(self, *, min_distance: float = 1.0) -> None:
            super().__init__(make_calculator=EMT, min_distance=min_distance)
"""


def test_third_party_plugin_is_found_without_touching_alal(fresh_registry):
    _install(fresh_registry, "alal_fake", "alal_fake_oracle", ORACLE,
             {"alal.oracles": {"lj": "alal_fake_oracle:LJOracle"}})
    from alal.plugins import available, oracle_class

    assert "lj" in available("oracles") and "emt" in available("oracles")
    assert oracle_class("lj").name == "lj"
    from alal.config import parse_config

    cfg = parse_config({"oracle": {"name": "lj", "params": {"min_distance": 1.2}}}, check_plugins=False)
    assert cfg.oracle.name == "lj"


def test_broken_and_duplicate_plugins(fresh_registry):
    _install(fresh_registry, "alal_broken", "alal_broken_mod", "raise ImportError('missing libfoo')",
             {"alal.oracles": {"broken": "alal_broken_mod:Oracle"}})
    _install(fresh_registry, "alal_dup", "alal_dup_mod", ORACLE,
             {"alal.oracles": {"emt": "alal_dup_mod:LJOracle"}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = registry.available("oracles")
    assert "broken" in names  # listing does not import anything
    assert any("two oracles plugins are named 'emt'" in str(w.message) for w in caught)
    with pytest.raises(PluginError, match="missing libfoo"):
        registry.load_plugin("oracles", "broken")
    with pytest.raises(PluginError, match=r"installed: .*emt"):
        registry.load_plugin("oracles", "nope")
