"""One source for options: every config field is a CLI flag and a notebook parameter. Pure.

The pydantic config models are the source. Each leaf field becomes an `Option` with a config
path, a notebook parameter name, a CLI flag, its type, default and help (the field's
description). A field may rename its flag or parameter through `json_schema_extra`
(`{"flag": "--timeout"}`, `{"param": "dataset"}`, `{"invert": True}` for a store-false flag);
nothing else is typed twice. `auditkit.cli` builds its flags from these options, the notebooks'
`parameters` cells are generated from them (`render_parameters`), and `to_overrides` turns
parameter values back into a nested config dict.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from auditkit.config import (
    SECRET_HEADER,
    AuditConfig,
    DatasetConfig,
    EndpointConfig,
    LoadConfig,
    MockConfig,
)
from auditkit.errors import InputError

Kind = Literal["int", "float", "str", "bool", "choice", "mapping"]
#: (config section, model, parameter-name prefix) of the sections every audit shares
COMMON_SECTIONS: tuple[tuple[str, type[BaseModel], str], ...] = (
    ("endpoint", EndpointConfig, ""),
    ("dataset", DatasetConfig, ""),
    ("load", LoadConfig, ""),
    ("mock", MockConfig, "mock_"),
)
NONE_WORDS = {"none", "null", ""}
TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One config field as a flag and a notebook parameter."""

    path: tuple[str, ...]
    param: str
    flag: str
    kind: Kind
    default: Any
    help: str
    group: str
    choices: tuple[str, ...] = ()
    #: an int is accepted beside the choices (e.g. sample_index: 3 or "median")
    accepts_int: bool = False
    nullable: bool = False
    #: a store-false flag (--insecure sets endpoint.verify_tls to false)
    invert: bool = False
    #: a mapping given on the CLI as repeated NAME=VALUE flags (--header)
    key_value: bool = False

    def parse(self, text: str) -> Any:
        """A typed value from text (a CLI flag or an `auditkit notebook -p` value)."""
        word = text.strip()
        if self.nullable and word.lower() in NONE_WORDS:
            return None
        try:
            return self._parse(word)
        except ValueError as exc:
            raise InputError(f"{self.flag} ({self.param}): {exc}") from None

    def _parse(self, word: str) -> Any:
        if self.kind == "choice":
            if word in self.choices:
                return word
            if self.accepts_int:
                try:
                    return int(word)
                except ValueError:
                    pass
            allowed = ", ".join(self.choices) + (" or an integer" if self.accepts_int else "")
            raise ValueError(f"expected one of {allowed} (got {word!r})")
        return word if self.kind == "str" else parse_word(self.kind, word)

    @property
    def annotation(self) -> str:
        """The parameter's annotation in a notebook (papermill reads Optional/Union only)."""
        base = {
            "int": "int",
            "float": "float",
            "str": "str",
            "bool": "bool",
            "choice": "str",
            "mapping": "dict",
        }[self.kind]
        if self.accepts_int:
            base = "Union[int, str]"
        return f"Optional[{base}]" if self.nullable else base

    def describe_default(self) -> str:
        """The default as a user reads it in --help."""
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, dict):
            return json.dumps(self.default) if self.default else "{}"
        return str(self.default)


def parse_word(kind: str, word: str) -> Any:
    """A bool, int, float or JSON object (kind "mapping") from text; ValueError saying what
    was expected."""
    if kind == "bool":
        if word.lower() in TRUE_WORDS:
            return True
        if word.lower() in FALSE_WORDS:
            return False
        raise ValueError(f"expected true or false (got {word!r})")
    if kind in ("int", "float"):
        try:
            return int(word) if kind == "int" else float(word)
        except ValueError:
            expected = "an integer" if kind == "int" else "a number"
            raise ValueError(f"expected {expected} (got {word!r})") from None
    if kind != "mapping":
        raise ValueError(f"cannot read a {kind} from text")
    try:
        value = json.loads(word)
    except ValueError:
        raise ValueError('expected a JSON object, e.g. \'{"key": "value"}\'') from None
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _extra(info: FieldInfo) -> Mapping[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, Mapping) else {}


def _kind(annotation: Any) -> tuple[Kind, tuple[str, ...], bool, bool]:
    """(kind, choices, accepts_int, nullable) of a field's annotation."""
    args: tuple[Any, ...] = (annotation,)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
    nullable = type(None) in args
    parts = [a for a in args if a is not type(None)]
    choices: list[str] = []
    simple: list[Any] = []
    for part in parts:
        if typing.get_origin(part) is Literal:
            choices.extend(str(v) for v in typing.get_args(part))
        else:
            simple.append(part)
    if choices:
        return "choice", tuple(choices), int in simple, nullable
    if len(simple) != 1:
        raise TypeError(f"unsupported option type {annotation!r}")
    only = simple[0]
    if only is bool:
        return "bool", (), False, nullable
    if only is int:
        return "int", (), False, nullable
    if only is float:
        return "float", (), False, nullable
    if only is str:
        return "str", (), False, nullable
    if only is dict or typing.get_origin(only) is dict:
        return "mapping", (), False, nullable
    raise TypeError(f"unsupported option type {annotation!r}")


def model_options(
    model: type[BaseModel], section: tuple[str, ...], prefix: str, group: str
) -> list[Option]:
    """The options of one config model (nested models flattened with the same prefix)."""
    out: list[Option] = []
    for name, info in model.model_fields.items():
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            out += model_options(nested, (*section, name), prefix, group)
            continue
        extra = _extra(info)
        param = str(extra.get("param", prefix + name))
        flag = str(extra.get("flag", "--" + param.replace("_", "-")))
        kind, choices, accepts_int, nullable = _kind(info.annotation)
        default = info.default
        if default is PydanticUndefined:
            default = info.default_factory() if info.default_factory else None  # type: ignore[call-arg]
        out.append(
            Option(
                path=(*section, name),
                param=param,
                flag=flag,
                kind=kind,
                default=default,
                help=info.description or name.replace("_", " "),
                group=group,
                choices=choices,
                accepts_int=accepts_int,
                nullable=nullable,
                invert=bool(extra.get("invert", False)),
                key_value=bool(extra.get("key_value", False)),
            )
        )
    return out


def common_options() -> list[Option]:
    """Options every audit shares: the endpoint, dataset, load and mock sections and the run's
    own fields (output_dir, decision)."""
    out: list[Option] = []
    for section, model, prefix in COMMON_SECTIONS:
        out += model_options(model, (section,), prefix, section)
    sections = {name for name, _, _ in COMMON_SECTIONS}
    top = [o for o in model_options(AuditConfig, (), "", "run") if o.path[0] not in sections]
    return out + top


def audit_options(key: str, settings_model: type[BaseModel]) -> list[Option]:
    """The options of one audit: the shared ones plus its own block's."""
    options = [*common_options(), *model_options(settings_model, (key,), "", key)]
    check_unique(options)
    return options


def check_unique(options: Iterable[Option]) -> None:
    """Two fields may not share a flag or a parameter name (TypeError names them)."""
    seen_param: dict[str, Option] = {}
    seen_flag: dict[str, Option] = {}
    for option in options:
        for seen, name in ((seen_param, option.param), (seen_flag, option.flag)):
            other = seen.get(name)
            if other is not None:
                raise TypeError(
                    f"options {'.'.join(other.path)} and {'.'.join(option.path)} share {name!r}:"
                    " rename one with json_schema_extra"
                )
            seen[name] = option


def to_overrides(options: Iterable[Option], values: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values (by parameter name) → a nested config dict."""
    by_param = {o.param: o for o in options}
    out: dict[str, Any] = {}
    for name, value in values.items():
        option = by_param[name]
        node = out
        for part in option.path[:-1]:
            node = node.setdefault(part, {})
        node[option.path[-1]] = value
    return out


def option_values(given: object, options: Iterable[Option]) -> dict[str, Any]:
    """The options given as attributes of `given` (an argparse namespace: None when not given,
    text, a bool, or NAME=VALUE items), typed, by parameter name."""
    values: dict[str, Any] = {}
    for option in options:
        raw = getattr(given, option.param, None)
        if raw is None:
            continue
        if option.key_value:
            values[option.param] = _key_values(option, raw)
        elif isinstance(raw, bool):
            values[option.param] = raw
        else:
            values[option.param] = option.parse(raw)
    return values


def _key_values(option: Option, items: list[str]) -> dict[str, str]:
    """Repeated NAME=VALUE flags (--header) → a mapping; never a credential."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # the value is not echoed: it may be a credential typed in the wrong place
            raise InputError(f"{option.flag} {key.strip()[:40]!r}…: use NAME=VALUE")
        if SECRET_HEADER.search(key):
            # a flag value sits in shell history and `ps` output: keys come from the env
            raise InputError(
                f"{option.flag} {key.strip()}: credentials are never flag values; export the "
                "key in an environment variable and pass its NAME with --api-key-env"
            )
        out[key.strip()] = value
    return out


def render_parameters(options: Iterable[Option], defaults: Mapping[str, Any] | None = None) -> str:
    """A notebook `parameters` cell: one annotated literal per option, its help as a comment,
    grouped by section (`defaults` replaces a default for the notebook, e.g. output_dir)."""
    defaults = defaults or {}
    lines = [
        "# Parameters (papermill / `auditkit notebook NAME -p NAME VALUE` override these).",
        "# Generated from the config models by `python scripts/sync_notebooks.py`; every field",
        "# of the YAML config is here. Optional/Union, not `X | None`: papermill reads only those.",
        "from typing import Optional, Union",
    ]
    group = None
    for option in options:
        if option.group != group:
            group = option.group
            lines += ["", f"# --- {group}"]
        value = defaults.get(option.param, option.default)
        if "=" in option.help:
            # papermill gives up on a parameter line holding a second "="
            raise ValueError(f"{'.'.join(option.path)}: help text must not contain '='")
        lines.append(f"{option.param}: {option.annotation} = {value!r}  # {option.help}")
    return "\n".join(lines) + "\n"
