"""Inside an audit notebook: its parameters validated into the run config (`audit_config`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from auditkit.audits import AuditTest, config_model, get_test
from auditkit.config import AuditConfig
from auditkit.errors import InputError, NotebookStop
from auditkit.notebook_runner.params import unknown_message
from auditkit.options import Option, audit_options, to_overrides
from auditkit.resources import resolve_output_dir
from auditkit.runner import prepare
from auditkit.startup import load_plugins_once


def parameter_values(test: AuditTest, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The audit's parameters found in a notebook's namespace (e.g. `globals()`)."""
    names = {o.param for o in audit_options(test.key, test.settings_model)}
    return {name: namespace[name] for name in names if name in namespace}


def audit_config(
    test_name: str, namespace: Mapping[str, Any] | None = None, **params: Any
) -> AuditConfig:
    """An audit notebook's parameters validated into the run config.

    `namespace` (a notebook passes `globals()`) supplies every parameter it defines; keyword
    arguments override it. Raises NotebookStop (an InputError) with one line naming the bad
    parameter; the dataset and sample bounds are checked too (runner.prepare), so a bad value
    never reaches a phase. The notebook's first cell calls this: plug-ins are registered here.
    """
    load_plugins_once()
    test = get_test(test_name)
    options = audit_options(test.key, test.settings_model)
    values = {**(parameter_values(test, namespace) if namespace else {}), **params}
    known = {o.param for o in options}
    unknown = [name for name in values if name not in known]
    if unknown:
        raise NotebookStop(unknown_message(unknown[0], sorted(known), test.key))
    if "output_dir" in values:
        values["output_dir"] = str(resolve_output_dir(values["output_dir"]))
    try:
        cfg = config_model().model_validate(to_overrides(options, values))
    except ValidationError as exc:
        raise NotebookStop(_parameter_error(exc, options)) from None
    try:
        prepare(cfg, test.key)  # an earlier run in output_dir moves to previous/ when it runs
    except InputError as exc:
        raise NotebookStop(exc.one_line()) from None
    return cfg


def _parameter_error(exc: ValidationError, options: list[Option]) -> str:
    """Name the notebook parameter (not the config path) and the value given, in one line;
    the value typed into api_key_env is never echoed (it may be the key itself)."""
    first = exc.errors()[0]
    path = ".".join(str(p) for p in first["loc"])
    name = next((o.param for o in options if ".".join(o.path) == path), path or "(root)")
    message = str(first["msg"]).removeprefix("Value error, ")
    shown = repr(first.get("input"))
    if "input" in first and first["type"] != "missing" and name != "api_key_env":
        message += "" if shown in message else f" (got {shown})"
    return f"parameter {name}: {message}"


def describe_config(cfg: AuditConfig, test_name: str) -> str:
    """One line saying what the notebook is about to do."""
    test = get_test(test_name)
    return f"{test.describe(cfg)}; artifacts → {Path(cfg.output_dir) / test.id}"
