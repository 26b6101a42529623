"""One source for options: every config field is reachable from the YAML, the CLI and the
notebook, with the same name, type, default and help."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from auditkit.audits import REGISTRY, build_config, config_model
from auditkit.cli import build_parser, run_overrides
from auditkit.errors import InputError
from auditkit.notebook_runner.params import notebook_parameters
from auditkit.options import Option, audit_options, check_unique, model_options, to_overrides
from auditkit.resources import notebook

ROOT = Path(__file__).resolve().parents[1]


def _leaf_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for name, info in model.model_fields.items():
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            out |= _leaf_paths(nested, (*prefix, name))
        else:
            out.add((*prefix, name))
    return out


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_config_field_is_an_option(key: str) -> None:
    test = REGISTRY[key]
    others = {k for k in REGISTRY if k != key}
    fields = {p for p in _leaf_paths(config_model()) if p[0] not in others}
    options = {o.path for o in audit_options(key, test.settings_model)}
    assert options == fields


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_option_is_a_cli_flag_with_help(key: str) -> None:
    test = REGISTRY[key]
    run = build_parser(key)._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    flags = {s: a for a in run._actions for s in a.option_strings}
    for option in audit_options(key, test.settings_model):
        assert option.flag in flags, option.flag
        assert flags[option.flag].help, option.flag


@pytest.mark.parametrize("key", [k for k, t in sorted(REGISTRY.items()) if t.notebook])
def test_audit_notebook_parameters_are_the_options(key: str) -> None:
    test = REGISTRY[key]
    assert test.notebook is not None
    declared = notebook_parameters(notebook(test.notebook))
    options = audit_options(key, test.settings_model)
    assert list(declared) == [o.param for o in options]
    sync = runpy.run_path(str(ROOT / "scripts" / "sync_notebooks.py"))
    assert sync["sync"](check=True) == [], "run: python scripts/sync_notebooks.py"


def test_flags_land_in_the_same_config_field_as_yaml() -> None:
    args = build_parser("test04").parse_args(
        [
            "run", "test04", "--samples", "64", "--sample-index", "median", "--timeout", "5",
            "--insecure", "--no-client-guard", "--mock-error-rate", "0.5", "--dataset", "d.jsonl",
            "--header", "X-Trace=1", "--target-qps", "none",
        ]
    )  # fmt: skip
    assert run_overrides(args) == {
        "test04": {"samples": 64, "sample_index": "median"},
        "endpoint": {"timeout_s": 5.0, "verify_tls": False, "headers": {"X-Trace": "1"}},
        "load": {"client_guard": False, "target_qps": None},
        "mock": {"faults": {"error_rate": 0.5}},
        "dataset": {"path": "d.jsonl"},
    }


def test_defaults_of_every_option_validate() -> None:
    options = audit_options("test04", REGISTRY["test04"].settings_model)
    values: dict[str, Any] = {o.param: o.default for o in options}
    cfg = build_config(to_overrides(options, values))
    assert cfg == build_config({})


@pytest.mark.parametrize(
    ("param", "text", "value"),
    [
        ("samples", "64", 64),
        ("sample_index", "median", "median"),
        ("sample_index", "7", 7),
        ("target_qps", "None", None),
        ("stream", "yes", True),
        ("body_template", '{"a": 1}', {"a": 1}),
    ],
)
def test_text_values_parse_by_type(param: str, text: str, value: object) -> None:
    option = _option(param)
    assert option.parse(text) == value


@pytest.mark.parametrize(
    ("param", "text", "needle"),
    [
        ("samples", "many", "--samples (samples): expected an integer"),
        ("sample_index", "middle", "expected one of median or an integer"),
        ("stream", "maybe", "expected true or false"),
        ("body_template", "[1]", "expected a JSON object"),
    ],
)
def test_bad_text_values_say_what_to_fix(param: str, text: str, needle: str) -> None:
    with pytest.raises(InputError, match=re.escape(needle)):
        _option(param).parse(text)


def test_two_fields_sharing_a_name_are_refused() -> None:
    class Clash(BaseModel):
        url: str = Field("x", description="clashes with endpoint.url")

    with pytest.raises(TypeError, match="share 'url'"):
        audit_options("clash", Clash)
    check_unique(model_options(Clash, ("clash",), "clash_", "clash"))  # a prefix resolves it


def _option(param: str) -> Option:
    options = audit_options("test04", REGISTRY["test04"].settings_model)
    return next(o for o in options if o.param == param)
