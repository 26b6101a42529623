"""The README and docs/ name only CLI flags, notebook parameters and repository files that exist:
a renamed flag (`--min-duration-s` for `--min-duration`) or a moved file fails here, not in a
user's terminal. Flags of other tools (pytest, papermill, grep, ...) and flags a page marks as
planned are left out."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from auditkit.audits import REGISTRY
from auditkit.cli import build_parser
from auditkit.startup import load_plugins_once

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: commands whose flags are not auditkit's
OTHER_TOOLS = ("pytest", "papermill", "grep", "pip", "curl", "wrk", "jupyter", "python -m pytest")
#: names a page uses on purpose that are not auditkit's: a design not built yet (scale.md),
#: another tool's flag (llama.cpp's, mock.md), the catalogue of user mistakes (reliability.md)
NOT_OURS = {
    "docs/scale.md": {"--ray-address"},
    "docs/mock.md": {"--prompt-cache", "--enable-prefix-caching"},
    # vLLM's and SGLang's flags: how to turn their prefix caches on and off for the audit
    "README.md": {
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
        "--disable-radix-cache",
        "--enable-prompt-tokens-details",
    },
    "docs/prefix_cache.md": {"--enable-prefix-caching", "--disable-radix-cache"},
    "docs/reliability.md": {"sampels", "api_key"},
}
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
PATH = re.compile(
    r"\b((?:docs|benchmarks|scripts|notebooks|examples|tests|auditkit)/[\w./-]+\.\w+)"
)


def _snippets(text: str) -> list[str]:
    """Inline code spans and the lines of fenced blocks."""
    out: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        out += [line] if fenced else re.findall(r"`([^`]+)`", line)
    return out


def _flags(parser: argparse.ArgumentParser, out: set[str]) -> set[str]:
    for action in parser._actions:
        out |= {s for s in action.option_strings if s.startswith("--")}
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _flags(sub, out)
    return out


def _known_flags() -> set[str]:
    load_plugins_once()
    known: set[str] = set()
    for name in (None, "suite", *REGISTRY):
        _flags(build_parser(name), known)
    for script in [*ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py")]:
        known |= set(re.findall(r'"(--[a-z0-9][a-z0-9-]*)"', script.read_text()))
    return known


def _notebook_parameters() -> set[str]:
    """Every name a shipped notebook's `parameters` cell assigns."""
    names: set[str] = set()
    for notebook in (ROOT / "auditkit" / "notebooks").glob("*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                source = "".join(cell["source"])
                names |= set(re.findall(r"^([a-z_][a-z0-9_]*)\s*[:=]", source, re.M))
    return names


def _rel(doc: Path) -> str:
    return doc.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_flag_the_docs_name_exists(doc: Path) -> None:
    known = _known_flags() | NOT_OURS.get(_rel(doc), set())
    unknown = sorted(
        {
            f"{flag} (in `{code.strip()[:60]}`)"
            for code in _snippets(doc.read_text())
            if not code.strip().startswith(OTHER_TOOLS)
            for flag in FLAG.findall(code)
            if flag not in known
        }
    )
    assert unknown == []


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_notebook_parameter_the_docs_name_exists(doc: Path) -> None:
    params = _notebook_parameters() | NOT_OURS.get(_rel(doc), set())
    unknown = sorted(
        {
            name
            for code in _snippets(doc.read_text())
            for name in re.findall(r"(?<![\w-])-p\s+([a-z_][a-z0-9_]*)", code)
            if name not in params
        }
    )
    assert unknown == []


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_repository_file_the_docs_name_exists(doc: Path) -> None:
    missing = sorted(
        {
            path
            for path in PATH.findall(doc.read_text())
            if "*" not in path and "<" not in path and not (ROOT / path).exists()
        }
    )
    assert missing == []


def test_the_check_catches_a_renamed_flag() -> None:
    assert "--min-duration" in _known_flags()
    assert "--min-duration-s" not in _known_flags()
