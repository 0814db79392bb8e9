"""Run configs: defaults, validation errors that name the key path, the frozen copy."""

from __future__ import annotations

import tomllib

import pytest

from alal.config import ConfigError, load_config, parse_config, to_toml
from alal.examples import example_names, example_path


def test_example_config_loads_and_round_trips(tmp_path):
    assert "aluminium" in example_names()
    cfg = load_config(example_path("aluminium"))
    assert cfg.oracle.name == "emt" and cfg.model.params["n_members"] == 8
    frozen = tmp_path / "config.toml"
    frozen.write_text(to_toml(cfg))
    assert load_config(frozen) == cfg
    assert tomllib.loads(to_toml(parse_config({})))["loop"]["batch_size"] > 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"loop": {"batch_sise": 4}}, "loop.batch_sise: unknown key"),
        ({"loop": {"batch_size": "eight"}}, "loop.batch_size: expected an integer"),
        ({"loop": {"batch_size": 0}}, "loop.batch_size: must be positive"),
        ({"loop": {"validation_fraction": 1.5}}, "loop.validation_fraction"),
        ({"run": {"elements": ["Al", "Xq"]}}, "run.elements: unknown element 'Xq'"),
        ({"run": {"executor": "slurm"}}, "run.executor"),
        ({"builders": {"sizes": [64, 16]}}, "builders.sizes"),
        ({"builders": {"kinds": {"fcc": 1.0, "quasicrystal": 1.0}}}, "builders.kinds.quasicrystal"),
        ({"builders": {"volume_per_atom": [10.0]}}, "builders.volume_per_atom: expected 2 values"),
        ({"builders": {"cold_fraction": 1.5}}, "builders.cold_fraction: must be in"),
        ({"model": {"name": "nope"}}, "model.name: no model plugin named 'nope'"),
        ({"model": {"name": "ani", "params": {"n_member": 4}}}, "model.params.n_member: not a parameter"),
        ({"oracle": {"name": "emt", "params": {"xc": "PBE"}}}, "oracle.params.xc"),
        ({"extra": {}}, "extra: unknown key"),
    ],
)
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(data)


def test_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[loop\nbatch_size = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[loop]\nbatch_size = 'x'\n")
    with pytest.raises(ConfigError, match=r"wrong.toml: loop.batch_size"):
        load_config(wrong)
