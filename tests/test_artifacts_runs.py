"""Two runs never share files (issue 14 item 1): a second run into the same output_dir is
refused unless it overwrites, and overwriting removes the earlier run's files first; every
artifact gets the umask's mode, not mkstemp's 0600 (item 10)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from auditkit import artifacts
from auditkit.audits import build_config, get_test
from auditkit.errors import InputError
from auditkit.notebook_runner import NotebookStop, audit_config, run_notebook
from auditkit.runner import run_audit

#: a short run on the simulated mock (virtual clock: instant and exact)
QUICK = {
    "mock": {"simulated": True},
    "test04": {
        "samples": 64,
        "allow_small": True,
        "rounds": 0,
        "warmup": 0,
        "design": "sequential",
    },
}


def _run(out: Path, **extra: object) -> Path:
    cfg = build_config({"output_dir": str(out), **QUICK, **extra})
    return run_audit(cfg).folder


def test_a_second_run_is_refused_and_names_the_folder(tmp_path: Path) -> None:
    folder = _run(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(InputError) as info:
        _run(tmp_path)
    message = info.value.one_line()
    assert str(folder.resolve()) in message and "--overwrite" in message
    # nothing of the first run was touched
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before


def test_overwrite_replaces_a_counterbalanced_run_without_leftovers(tmp_path: Path) -> None:
    counterbalanced = {**QUICK["test04"], "design": "counterbalanced"}
    cfg = build_config({"output_dir": str(tmp_path), **QUICK, "test04": counterbalanced})
    folder = run_audit(cfg).folder
    assert (folder / "reference_1").is_dir() and (folder / "audit_2").is_dir()
    # a plain run over it: the old blocks go, so a review cannot pair them with the new verdict
    _run(tmp_path, overwrite=True)
    names = {p.name for p in folder.iterdir() if p.is_dir()}
    assert "reference" in names and "audit" in names
    assert not any(n.endswith(("_1", "_2")) for n in names), names


def test_overwrite_keeps_other_audits_files(tmp_path: Path) -> None:
    other = tmp_path / "TEST01" / "audit_result.json"
    other.parent.mkdir()
    other.write_text("{}")
    record = tmp_path / artifacts.AUDIT_DIR / "audit_other_test.json"
    record.parent.mkdir()
    record.write_text("{}")
    _run(tmp_path)
    _run(tmp_path, overwrite=True)
    assert other.read_text() == "{}" and record.read_text() == "{}"


def test_a_leftover_submission_record_alone_counts_as_a_run(tmp_path: Path) -> None:
    test = get_test("test04")
    assert test.submission_name
    record = artifacts.submission_audit_path(tmp_path / test.id, test.submission_name)
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    assert artifacts.run_outputs(tmp_path, test) == [record]
    with pytest.raises(InputError):
        artifacts.claim_output_dir(tmp_path, test)
    artifacts.claim_output_dir(tmp_path, test, overwrite=True)
    assert not record.exists()


def test_notebook_parameters_refuse_before_any_phase(tmp_path: Path) -> None:
    _run(tmp_path)
    with pytest.raises(NotebookStop, match="already holds a TEST04 run"):
        audit_config("test04", output_dir=str(tmp_path), mock_simulated=True)
    # and `auditkit notebook` stops there too: exit 2, no kernel started, nothing written
    with pytest.raises(InputError, match="overwrite"):
        run_notebook("test04", {"mock_simulated": "true"}, out_dir=tmp_path)
    assert not (tmp_path / "test04.ipynb").exists()


def test_artifacts_get_the_umask_mode(tmp_path: Path) -> None:
    folder = _run(tmp_path)
    expected = 0o666 & ~artifacts.records_io.process_umask()
    files = artifacts.run_files(folder, get_test("test04"))
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert artifacts.records_io.process_umask() == _umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_run_files_list_the_submission_record(tmp_path: Path) -> None:
    folder = _run(tmp_path)
    files = artifacts.run_files(folder, get_test("test04"))
    assert tmp_path / "audit" / "audit_output_caching_test.json" in files
    assert folder / artifacts.RESULT in files


@pytest.mark.slow
def test_verify_into_an_output_dir_refuses_a_second_time_unless_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal
    import subprocess
    import sys

    from auditkit.cli import main

    folder = _run(tmp_path / "run")
    logs = [
        "--reference", str(folder / "reference" / artifacts.SUMMARY),
        "--test", str(folder / "audit" / artifacts.SUMMARY),
    ]  # fmt: skip
    args = ["verify", "test04", *logs, "--output-dir", str(tmp_path / "verified")]
    first = subprocess.run(
        [sys.executable, "-m", "auditkit.cli", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert first.returncode in (0, 1), first.stderr
    # the second and third through main() in this process (a child's exit codes: above)
    saved = signal.getsignal(signal.SIGTERM)  # main() installs its own
    try:
        capsys.readouterr()
        assert main(args) == 2
        assert "--overwrite" in capsys.readouterr().err
        assert main([*args, "--overwrite"]) in (0, 1)
    finally:
        signal.signal(signal.SIGTERM, saved)
