"""Typed settings: coercion, nested keys, checked overrides, config files, sweeps and seeds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest
import runner_toys  # noqa: F401  (registers toy-lsq)
from runner_toys import FitData, LsqConfig

from kinkgrad.runner import (
    ConfigError,
    Experiment,
    config_from_dict,
    config_to_dict,
    describe_settings,
    get_experiment,
    resolve_run,
    with_overrides,
)


def test_describe_settings_flattens_groups_with_types_defaults_and_help() -> None:
    infos = {info.key: info for info in describe_settings(LsqConfig)}
    assert list(infos)[-2:] == ["data.n", "data.noise"]
    assert infos["method"].type_name == "{gd, momentum}"
    assert infos["method"].choices == ("gd", "momentum")
    assert infos["tag"].type_name == "str | None"
    assert infos["dims"].type_name == "tuple[int, ...]"
    assert infos["data.n"].default == 32
    assert infos["steps"].help == "gradient steps"


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("steps", "12", 12),
        ("lr", "1e-3", 1e-3),
        ("verbose", "yes", True),
        ("verbose", "False", False),
        ("method", "momentum", "momentum"),
        ("tag", "none", None),
        ("tag", "hello", "hello"),
        ("dims", "4,5", (4, 5)),
        ("dims", "", ()),
        ("data.noise", "0.5", 0.5),
    ],
)
def test_text_values_are_coerced_to_the_field_type(key: str, text: str, expected: object) -> None:
    config = with_overrides(LsqConfig(), {key: text})
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    assert value == expected
    assert type(value) is type(expected)


def test_int_becomes_float_but_bool_is_not_an_int() -> None:
    assert with_overrides(LsqConfig(), {"lr": 1}).lr == 1.0
    with pytest.raises(ConfigError, match=r"'steps'.*True is not an int"):
        with_overrides(LsqConfig(), {"steps": True})


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("steps", "ten", r"bad value for 'steps' \(int\): 'ten' is not an int"),
        ("method", "adam", r"'adam' is not one of: gd, momentum"),
        ("verbose", "maybe", r"not a bool"),
        ("dims", "1,x", r"'x' is not an int"),
        ("lr", "-1", r"bad value for 'lr': lr must be positive"),
    ],
)
def test_bad_values_name_the_setting_and_what_is_valid(key: str, value: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        with_overrides(LsqConfig(), {key: value})


def test_unknown_key_lists_valid_keys_and_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        with_overrides(LsqConfig(), {"step": 3}, owner="experiment 'toy-lsq'")
    message = str(info.value)
    assert "unknown setting 'step' for experiment 'toy-lsq'" in message
    assert "did you mean 'steps'?" in message
    assert "valid settings: steps, lr, method, dims, tag, verbose, data.n, data.noise" in message


def test_group_key_is_not_a_value() -> None:
    with pytest.raises(ConfigError, match=r"'data' is a group of settings; set one of: data\.n, data\.noise"):
        with_overrides(LsqConfig(), {"data": "x"})
    with pytest.raises(ConfigError, match=r"unknown setting 'data\.size'.*valid settings"):
        with_overrides(LsqConfig(), {"data.size": 3})


def test_nested_mappings_and_round_trip_through_json() -> None:
    config = config_from_dict(LsqConfig, {"steps": 2, "data": {"n": 7}, "dims": [2, 1]})
    assert config.data == FitData(n=7) and config.dims == (2, 1)
    again = config_from_dict(LsqConfig, json.loads(json.dumps(config_to_dict(config))))
    assert again == config


def test_registration_rejects_bad_configs() -> None:
    @dataclass
    class Mutable:
        a: int = 1

    @dataclass(frozen=True)
    class NoDefault:
        a: int

    @dataclass(frozen=True)
    class BadType:
        a: list = field(default_factory=list)  # type: ignore[type-arg]

    @dataclass(frozen=True)
    class Reserved:
        seed: int = 0

    def run(config: object, seed: int) -> list[dict[str, int]]:
        return []

    for config, pattern in [
        (Mutable, "frozen"),
        (NoDefault, "no default"),
        (BadType, "unsupported type"),
        (Reserved, "reserved"),
    ]:
        with pytest.raises(TypeError, match=pattern):
            Experiment("bad", config, run)
    with pytest.raises(ValueError, match="lower case"):
        Experiment("Bad_Name", LsqConfig, run)
    with pytest.raises(ConfigError, match="unknown setting 'nope'"):
        Experiment("bad", LsqConfig, run, sweep={"nope": [1]})


def test_resolve_run_precedence_and_sweep_overrides(tmp_path) -> None:
    spec = resolve_run("toy-lsq")
    assert spec.sweep == (("lr", (0.1, 0.05)),) and spec.seeds == (0, 1)
    assert [t.key for t in spec.units()] == ["s0000-seed0", "s0000-seed1", "s0001-seed0", "s0001-seed1"]

    quick = resolve_run("toy-lsq", quick=True)
    assert quick.config.steps == 3 and quick.sweep == (("lr", (0.1,)),) and quick.seeds == (0,)

    fixed = resolve_run("toy-lsq", overrides=["lr=0.2", "data.n=8"], seeds=3)
    assert fixed.sweep == () and fixed.config.lr == 0.2 and fixed.config.data.n == 8
    assert fixed.seeds == (0, 1, 2) and len(fixed.units()) == 3

    swept = resolve_run("toy-lsq", sweep=["method=gd,momentum", "dims=2;3,1"])
    assert dict(swept.sweep) == {"lr": (0.1, 0.05), "method": ("gd", "momentum"), "dims": ((2,), (3, 1))}
    assert len(swept.settings()) == 8

    path = tmp_path / "run.toml"
    path.write_text("seeds = [4, 7]\n[config]\nsteps = 5\n[config.data]\nn = 9\n[sweep]\nlr = [0.3]\n")
    from_file = resolve_run("toy-lsq", config_file=path, overrides={"steps": "6"})
    assert from_file.config.steps == 6 and from_file.config.data.n == 9
    assert from_file.sweep == (("lr", (0.3,)),) and from_file.seeds == (4, 7)

    saved = tmp_path / "config.json"
    saved.write_text(json.dumps(from_file.to_json()))
    assert resolve_run("toy-lsq", config_file=saved).identity == from_file.identity


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"overrides": ["steps"]}, "--set expects KEY=VALUE, got 'steps'"),
        ({"sweep": ["lr=0.1,0.1"]}, "repeats a value"),
        ({"sweep": ["lr=0.1,-1"]}, "lr must be positive"),
        ({"sweep": ["lrate=1"]}, "unknown setting 'lrate'"),
        ({"seeds": 0}, "at least 1"),
    ],
)
def test_resolve_run_errors(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        resolve_run("toy-lsq", **kwargs)  # type: ignore[arg-type]


def test_config_file_errors(tmp_path) -> None:
    bad_key = tmp_path / "a.json"
    bad_key.write_text(json.dumps({"steps": 3}))
    with pytest.raises(ConfigError, match=r"unknown top-level keys \['steps'\].*put settings under 'config'"):
        resolve_run("toy-lsq", config_file=bad_key)
    other = tmp_path / "b.json"
    other.write_text(json.dumps({"experiment": "other"}))
    with pytest.raises(ConfigError, match="is for experiment 'other'"):
        resolve_run("toy-lsq", config_file=other)
    broken = tmp_path / "c.toml"
    broken.write_text("steps = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_run("toy-lsq", config_file=broken)
    with pytest.raises(ConfigError, match=r"must end in \.json or \.toml"):
        resolve_run("toy-lsq", config_file=__file__)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_run("toy-lsq", config_file=tmp_path / "missing.json")


def test_unknown_experiment_lists_available() -> None:
    with pytest.raises(
        ValueError, match=r"unknown experiment 'toy-lsp' \(did you mean 'toy-lsq'\?\); available:"
    ):
        get_experiment("toy-lsp")


def test_config_class_defined_in_a_function_resolves_nested_groups() -> None:
    @dataclass(frozen=True)
    class Inner:
        k: Literal["a", "b"] = "a"

    @dataclass(frozen=True)
    class Outer:
        inner: Inner = field(default_factory=Inner)

    assert with_overrides(Outer(), {"inner.k": "b"}).inner.k == "b"
