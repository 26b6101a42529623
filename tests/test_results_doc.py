"""docs/results.md names every field of the files a run writes (issue 14 item 9): a field added
to a model (or a column to records.parquet) fails here until it is documented."""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path

from pydantic import BaseModel

from auditkit.audits import get_test
from auditkit.results import RECORD_COLUMNS, AuditResult, PhaseSummary

DOC = Path(__file__).resolve().parent.parent / "docs" / "results.md"


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """root and every pydantic model reachable through its fields' annotations."""
    seen: list[type[BaseModel]] = []
    todo = [root]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            stack = [field.annotation]
            while stack:
                tp = stack.pop()
                if inspect.isclass(tp) and issubclass(tp, BaseModel):
                    todo.append(tp)
                stack.extend(typing.get_args(tp))
    return seen


def _documented() -> set[str]:
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", DOC.read_text(encoding="utf-8")))


def test_every_model_field_is_documented() -> None:
    documented = _documented()
    audits = ("test01", "test04", "test05", "test06", "test07", "test09")
    roots: list[type[BaseModel]] = [AuditResult, PhaseSummary]
    roots += [get_test(key).evidence_model for key in audits]
    missing = sorted(
        f"{model.__name__}.{name}"
        for root in roots
        for model in _models(root)
        for name in model.model_fields
        if name not in documented
    )
    assert not missing, f"document these in docs/results.md (name in backticks): {missing}"


def test_every_records_column_is_documented() -> None:
    documented = _documented()
    missing = [c for c in RECORD_COLUMNS if c not in documented]
    assert not missing, f"document these records.parquet columns in docs/results.md: {missing}"


ROOT = DOC.parent.parent


def test_readme_troubleshooting_and_papermill_notes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Troubleshooting" in readme
    section = readme.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    for error in (
        "another auditkit run is writing",
        "no key was sent",
        "could not discover a model",
    ):
        assert error in section
    assert ".venv/bin/papermill" in readme and "exits 0 on FAIL" in readme
    assert "docs/results.md" in readme


def test_make_demo_and_nbval_write_only_to_temporary_or_overwritten_folders() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    demo = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "-p overwrite true" in demo
    nbval = makefile.split("\nnbval:", 1)[1].split("\n\n", 1)[0]
    assert "mktemp -d" in nbval and "--nbval-lax" in nbval
    assert "notebooks/ " not in nbval.split("pytest", 1)[1]  # never the shipped folder itself
    # setuptools' editable-install notice is silenced where make installs the package
    installs = [line for line in makefile.splitlines() if "pip install" in line and " -e " in line]
    assert installs and all("$(QUIET_BUILD)" in line for line in installs)
    assert 'QUIET_BUILD := PYTHONWARNINGS="ignore:Editable installation"' in makefile
