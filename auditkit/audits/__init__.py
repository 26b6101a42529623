"""Audit tests: one module (or package) per test plus one entry in `REGISTRY`.

Everything generic (runner, CLI, artifacts, notebooks, review) asks this registry; none of it
names a test. The run configuration's model is built from the registry: the common sections
(`endpoint`, `dataset`, `load`, `mock`, `output_dir`) plus one block per registered audit.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, create_model

from auditkit.audits.base import AuditTest
from auditkit.audits.prefix_cache import PrefixCache
from auditkit.audits.test01 import Test01
from auditkit.audits.test04 import Test04
from auditkit.audits.test05 import Test05
from auditkit.audits.test06 import Test06
from auditkit.audits.test07 import Test07
from auditkit.audits.test09 import Test09
from auditkit.config import AuditConfig, deep_merge, load_yaml, validated
from auditkit.errors import InputError, did_you_mean
from auditkit.results import AuditResult, check_schema_version

#: every audit, whatever its settings and evidence types (the hooks are typed on each audit)
REGISTRY: dict[str, AuditTest[Any, Any]] = {
    Test04.key: Test04(),
    Test01.key: Test01(),
    Test05.key: Test05(),
    Test06.key: Test06(),
    Test07.key: Test07(),
    Test09.key: Test09(),
    PrefixCache.key: PrefixCache(),
}
#: the audit `auditkit run` and the notebooks use when none is named
DEFAULT_TEST = Test04.key

#: audits from other packages: entry points in this group, or `module:attr` / `file.py:attr`
#: entries (separated by commas) in this environment variable
ENTRY_POINT_GROUP = "auditkit.audits"
PLUGINS_ENV = "AUDITKIT_PLUGINS"

_models: dict[tuple[tuple[str, type[BaseModel]], ...], type[AuditConfig]] = {}


def register(test: AuditTest[Any, Any]) -> AuditTest[Any, Any]:
    """Add (or replace) an audit in the registry; returns it (usable as a decorator's body)."""
    REGISTRY[test.key] = test
    return test


def unregister(key: str) -> None:
    """Remove an audit (tests that register a plug-in of their own clean up with this)."""
    REGISTRY.pop(key, None)


def _load_object(spec: str) -> object:
    """`package.module:attr` or `/path/to/file.py:attr` → the attribute."""
    target, sep, attr = spec.strip().rpartition(":")
    if not sep or not target or not attr:
        raise InputError(f"{PLUGINS_ENV}: {spec!r} is not module:attribute or file.py:attribute")
    if target.endswith(".py"):
        path = Path(target)
        module_spec = importlib.util.spec_from_file_location(f"auditkit_plugin_{path.stem}", path)
        if module_spec is None or module_spec.loader is None or not path.is_file():
            raise InputError(f"{PLUGINS_ENV}: cannot load {target}")
        module = importlib.util.module_from_spec(module_spec)
        # in sys.modules first, as `import` does: pydantic and typing resolve the module's
        # postponed annotations (`from __future__ import annotations`) through it
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise InputError(f"{PLUGINS_ENV}: cannot import {target} ({exc})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise InputError(f"{PLUGINS_ENV}: {target} has no {attr!r}") from None


def _as_test(obj: object, where: str) -> AuditTest[Any, Any]:
    test = obj() if isinstance(obj, type) else obj
    if not isinstance(test, AuditTest):
        raise InputError(f"{where} is not an auditkit AuditTest")
    return test


def load_plugins() -> None:
    """Register audits other packages declare (entry points) or the environment names."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        register(_as_test(entry.load(), f"entry point {entry.name}"))
    for spec in filter(None, os.environ.get(PLUGINS_ENV, "").split(",")):
        register(_as_test(_load_object(spec), spec))


def get_test(name: str) -> AuditTest[Any, Any]:
    """Look a test up by key or id, case-insensitively (TEST04, test04)."""
    # "prefix-cache" on a command line is the registry's "prefix_cache"
    test = REGISTRY.get(name.lower()) or REGISTRY.get(name.lower().replace("-", "_"))
    if test is not None:
        return test
    for test in REGISTRY.values():
        if test.id.lower() == name.lower():
            return test
    known = sorted(REGISTRY)
    hint = did_you_mean(name.lower(), known)
    raise InputError(f"unknown audit test {name!r}{hint} (known tests: {', '.join(known)})")


def config_model() -> type[AuditConfig]:
    """The run-config model: AuditConfig plus one block per registered audit."""
    blocks = tuple((key, test.settings_model) for key, test in sorted(REGISTRY.items()))
    model = _models.get(blocks)
    if model is None:
        fields: dict[str, Any] = {
            key: (block, Field(default_factory=block)) for key, block in blocks
        }
        model = create_model("RunConfig", __base__=AuditConfig, **fields)
        _models[blocks] = model
    return model


def build_config(data: dict[str, Any], source: str = "config") -> AuditConfig:
    """Validate a nested dict into the run config (InputError with one line on failure)."""
    return validated(config_model(), data, source)


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> AuditConfig:
    """Load YAML (if given), apply nested overrides, validate."""
    data = load_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "config"
    if overrides:
        data = deep_merge(data, overrides)
    return build_config(data, source)


def result_from_json(text: str, path: str | Path | None = None) -> AuditResult[Any]:
    """An audit_result.json (read from `path`) back with its audit's typed evidence;
    InputError if it is not JSON or has a schema_version this auditkit does not read."""
    try:
        data = json.loads(text)
        name = str(data.get("test", ""))
    except (ValueError, AttributeError):
        raise InputError("audit_result.json is not a JSON object") from None
    check_schema_version(data, "audit_result.json", path)
    test = REGISTRY.get(name.lower())
    model = test.result_model if test is not None else AuditResult[Any]
    return validated(model, data, "audit_result.json")
