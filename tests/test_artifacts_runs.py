"""Two runs never share files (issue 14 item 1) and a rerun needs no flag (issue 23): a second
run into the same output_dir moves the earlier one (finished or interrupted) to
<output_dir>/previous/, whole; overwrite removes it instead; a run already writing the folder
stops the second with one line; every artifact gets the umask's mode, not mkstemp's 0600."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from auditkit import artifacts
from auditkit.audits import build_config, get_test
from auditkit.errors import InputError
from auditkit.review import load_run
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


def _files(base: Path) -> dict[str, bytes]:
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def test_a_second_run_moves_the_first_to_previous_whole(tmp_path: Path) -> None:
    folder = _run(tmp_path)
    first = _files(tmp_path)
    started = json.loads((folder / artifacts.RESULT).read_text())["started_at"]
    second = _run(tmp_path)  # the same command again: no flag, no refusal
    assert second == folder and (folder / artifacts.RESULT).is_file()
    (kept,) = (tmp_path / artifacts.PREVIOUS_DIR).iterdir()
    stamp = started.replace("-", "").replace(":", "").removesuffix("+0000").replace("+00", "")
    assert kept.name.startswith(stamp[:13]) and kept.name.endswith("-TEST04"), kept.name
    # byte for byte, laid out like an output_dir: TEST04/ and its audit/ record
    assert _files(kept) == first
    assert load_run(kept).result.verdict == load_run(tmp_path).result.verdict
    # a third run keeps both earlier ones
    _run(tmp_path)
    assert len(list((tmp_path / artifacts.PREVIOUS_DIR).iterdir())) == 2


def test_an_interrupted_run_never_blocks_the_next(tmp_path: Path) -> None:
    # what Ctrl-C leaves: phase folders and config.yaml, no audit_result.json
    folder = _run(tmp_path)
    (folder / artifacts.RESULT).unlink()
    (tmp_path / artifacts.AUDIT_DIR / "audit_output_caching_test.json").unlink()
    left = _files(tmp_path)
    _run(tmp_path)
    (kept,) = (tmp_path / artifacts.PREVIOUS_DIR).iterdir()
    assert kept.name.endswith("-TEST04-interrupted") and _files(kept) == left
    assert (folder / artifacts.RESULT).is_file()


def test_a_run_already_writing_the_folder_stops_the_second(tmp_path: Path) -> None:
    test = get_test("test04")
    with artifacts.run_lock(tmp_path, test), pytest.raises(InputError, match="right now"):
        _run(tmp_path)
    _run(tmp_path)  # released: the next run goes ahead


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
    kept = artifacts.claim_output_dir(tmp_path, test)
    assert kept is not None and not record.exists()
    assert (kept / artifacts.AUDIT_DIR / record.name).read_text() == "{}"
    record.write_text("{}")
    assert artifacts.claim_output_dir(tmp_path, test, overwrite=True) is None
    assert not record.exists()


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
        assert main(args) in (0, 1)  # the earlier verification moves to previous/
        assert len(list((tmp_path / "verified" / artifacts.PREVIOUS_DIR).iterdir())) == 1
        assert main([*args, "--overwrite"]) in (0, 1)  # removes it instead
        assert len(list((tmp_path / "verified" / artifacts.PREVIOUS_DIR).iterdir())) == 1
    finally:
        signal.signal(signal.SIGTERM, saved)
