"""`auditkit notebook` parameters checked before a kernel starts: names against the notebook,
`-p` text coerced by the notebook's annotations, credentials refused.

papermill only warns about unknown parameters and passes every `-p` value as a string; these
checks reject unknown names and type the values, so a mistake is exit 2 in a second.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditkit.audits import REGISTRY, AuditTest
from auditkit.config import SECRET_HEADER
from auditkit.errors import InputError, did_you_mean
from auditkit.options import NONE_WORDS, audit_options, model_options, parse_word

# parameter names that smell like a credential (api_key_env, which holds a NAME, is allowed)
SECRET_PARAMETER = re.compile(
    r"(api[-_]?key|token|secret|password|passwd|credential|authorization|bearer)", re.I
)
SECRET_MESSAGE = (
    "secrets are never notebook parameters (papermill writes parameters into the output "
    "notebook and its HTML); export the key in an environment variable and pass its NAME "
    "with --api-key-env NAME / -p api_key_env NAME"
)


def unknown_message(name: str, known: list[str], where: str) -> str:
    """One line for an unknown parameter: the closest known name, else a few that share a
    part of it, and where the full list is (an audit has ~100 parameters: not on one line)."""
    hint = did_you_mean(name, known)
    if not hint:
        parts = [p for p in re.split(r"[_\W]+", name.lower()) if len(p) > 2]
        near = [k for k in known if any(p in k for p in parts)][:5]
        hint = f"; names with a part of it: {', '.join(near)}" if near else ""
    if len(known) <= 12:
        return f"unknown parameter {name!r} for {where}{hint} (known: {', '.join(known)})"
    full = (
        f"`auditkit run {where} --help` lists" if where in REGISTRY else "the parameters cell has"
    )
    return f"unknown parameter {name!r} for {where}{hint} ({full} all {len(known)})"


def _type_names(annotation: str) -> list[str]:
    """'int | None' / 'Optional[int]' / 'Union[int, str]' → ['int', 'None']."""
    text = annotation.replace(" ", "")
    m = re.fullmatch(r"(?:typing\.)?Optional\[(.+)\]", text)
    if m:
        return [*_type_names(m.group(1)), "None"]
    m = re.fullmatch(r"(?:typing\.)?Union\[(.+)\]", text)
    if m:
        text = m.group(1).replace(",", "|")
    return [t for t in text.split("|") if t] or ["str"]


def coerce_value(name: str, raw: str, annotation: str) -> Any:
    """Convert a `-p name value` string to the parameter's annotated type (one-line InputError)."""
    kinds = _type_names(annotation or "str")
    if "None" in kinds and raw.strip().lower() in NONE_WORDS:
        return None
    for kind in kinds:
        if kind == "str":
            return raw
        with contextlib.suppress(ValueError):
            return parse_word("mapping" if kind == "dict" else kind, raw.strip())
    allowed = " or ".join(k for k in kinds)
    raise InputError(f"parameter {name}: expected {allowed}, got {raw!r}")


def notebook_parameters(path: str | Path) -> dict[str, dict[str, Any]]:
    """The notebook's parameters as papermill sees them: name → {default, type, help}."""
    import papermill  # only `auditkit notebook` needs papermill: not at import

    info = papermill.inspect_notebook(str(path))
    out: dict[str, dict[str, Any]] = {}
    for name, p in info.items():
        try:
            default = ast.literal_eval(p["default"])
        except (ValueError, SyntaxError):
            default = p["default"]
        out[name] = {
            "default": default,
            "type": p.get("inferred_type_name") or "str",
            "help": p.get("help") or "",
        }
    return out


@functools.cache
def _option_names() -> frozenset[str]:
    """Every audit's and the suite's parameter names: `max_tokens` or `mock_fake_first_token`
    contain "token" but are settings, not credentials."""
    names: set[str] = set()
    for key, test in REGISTRY.items():
        names.update(o.param for o in audit_options(key, test.settings_model))
        names.update(o.param for o in model_options(test.settings_model, (key,), f"{key}_", key))
    return frozenset(names)


def _secret_path(name: str, value: Any, path: str) -> str | None:
    """The dotted path of the first credential-named key inside `value` (None if none).

    A `-p` value is still text here: a JSON object or list is parsed to look inside it (the
    suite's `settings`, an audit's `headers`). Keys inside a `*headers` mapping are header
    names and are checked like `--header` (config.SECRET_HEADER)."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            value = json.loads(value)
        except ValueError:
            return None  # not JSON: the type check that follows rejects it
    if isinstance(value, Mapping):
        headers = name.lower().endswith("headers")
        for key, inner in value.items():
            where = f"{path}.{key}"
            if headers and SECRET_HEADER.search(str(key)):
                return where
            if _secret_name(str(key)):
                return where
            found = _secret_path(str(key), inner, where)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, inner in enumerate(value):
            found = _secret_path(name, inner, f"{path}[{i}]")
            if found:
                return found
    return None


def _secret_name(name: str) -> bool:
    return (
        bool(SECRET_PARAMETER.search(name))
        and not name.endswith("_env")
        and name not in _option_names()
    )


def refuse_secrets(given: Mapping[str, Any]) -> None:
    """InputError (exit 2) if a parameter, or a key anywhere inside a dict/list parameter, is
    named like a credential. Checked before the unknown-name check, and the value is never
    echoed: papermill writes every parameter into the output notebook, so a key passed here
    would be on disk."""
    for name, value in given.items():
        where = name if _secret_name(name) else _secret_path(name, value, name)
        if where:
            raise InputError(f"parameter {where}: {SECRET_MESSAGE}")


def resolve_parameters(
    declared: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Check names against the notebook and coerce string values; InputError on the first bad
    one (papermill itself would only warn about an unknown name)."""
    refuse_secrets(given)
    unknown = [n for n in given if n not in declared]
    if unknown:
        raise InputError(unknown_message(unknown[0], sorted(declared), "this notebook"))
    out: dict[str, Any] = {}
    for name, value in given.items():
        out[name] = (
            coerce_value(name, value, str(declared[name]["type"]))
            if isinstance(value, str)
            else value
        )
    return out


def generic_values(test: AuditTest, given: Mapping[str, Any]) -> dict[str, Any]:
    """`-p` values for an audit without its own notebook: checked against the audit's options
    and handed to the generic notebook as its `settings` parameter."""
    options = {o.param: o for o in audit_options(test.key, test.settings_model)}
    settings: dict[str, Any] = {}
    for name, value in given.items():
        option = options.get(name)
        if option is None:
            raise InputError(unknown_message(name, sorted(options), test.key))
        settings[name] = option.parse(value) if isinstance(value, str) else value
    return settings
