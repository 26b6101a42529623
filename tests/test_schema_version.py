"""Saved formats carry `schema_version` (issue 19 item 5): audit_result.json, phase.json and
suite_result.json are written with it; a file of another version is refused with one line
naming both versions (exit 2 through the CLI); a file written before versions existed reads as
version 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from auditkit.audits import build_config
from auditkit.cli import main
from auditkit.errors import InputError
from auditkit.results import SCHEMA_VERSION
from auditkit.review import load_run
from auditkit.runner import run_audit
from auditkit.suite import SUITE_RESULT, SuiteRun, read_suite_result

QUICK = {"samples": 64, "allow_small": True, "rounds": 0}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = build_config({"output_dir": str(out), "mock": {"simulated": True}, "test04": QUICK})
    return run_audit(cfg).folder


@pytest.fixture
def copy(finished: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy" / finished.name
    shutil.copytree(finished, target)
    return target


def _edit(path: Path, version: int | None) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("schema_version", None)
    if version is not None:
        data = {"schema_version": version, **data}
    path.write_text(json.dumps(data), encoding="utf-8")


def test_written_with_the_version_first(finished: Path) -> None:
    assert SCHEMA_VERSION == 1
    for path in (finished / "audit_result.json", finished / "reference_1" / "phase.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert next(iter(data)) == "schema_version" and data["schema_version"] == 1, path
    record = SuiteRun([]).record()
    assert next(iter(record)) == "schema_version" and record["schema_version"] == 1


@pytest.mark.parametrize("version", [2, 0])
@pytest.mark.parametrize("name", ["audit_result.json", "reference_1/phase.json"])
def test_another_version_is_one_line_exit_2(
    copy: Path, finished: Path, name: str, version: int, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(copy / name, version)
    assert main(["compare", str(finished), str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    file = Path(name).name
    assert err == (
        f"auditkit: error: {file} at {copy / name} has schema_version {version}; this auditkit "
        "reads 1 (upgrade auditkit or re-run the audit)"
    )


def test_the_review_notebook_refuses_before_a_kernel_starts(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(copy / "audit_result.json", 2)
    argv = ["notebook", "review_results", "-p", "results_dir", str(copy)]
    assert main([*argv, "--output-dir", str(tmp_path / "nb")]) == 2
    assert "has schema_version 2; this auditkit reads 1" in capsys.readouterr().err
    assert not (tmp_path / "nb" / "review_results.ipynb").exists()


def test_files_without_a_version_read_as_version_1(copy: Path) -> None:
    _edit(copy / "audit_result.json", None)
    for phase in copy.glob("*/phase.json"):
        _edit(phase, None)
    run = load_run(copy)
    assert run.result.schema_version == 1 and run.summaries["reference_1"].completed > 0


def test_suite_result_version(tmp_path: Path) -> None:
    path = tmp_path / SUITE_RESULT
    path.write_text(json.dumps({"verdict": "PASS", "exit_code": 0}), encoding="utf-8")
    assert read_suite_result(tmp_path) == (0, "PASS")  # written before versions: version 1
    path.write_text(json.dumps({"schema_version": 2, "verdict": "PASS", "exit_code": 0}))
    with pytest.raises(InputError, match=r"suite_result.json at .* has schema_version 2; this"):
        read_suite_result(tmp_path)
