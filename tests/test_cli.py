"""The CLI as users run it: real subprocesses, exit codes, one-line errors, help text."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from auditkit.cli import build_parser, main

AUDITKIT = [sys.executable, "-m", "auditkit.cli"]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUDITKIT, *args], capture_output=True, text=True, timeout=180, cwd=cwd, check=False
    )


def test_help_is_useful_on_its_own() -> None:
    text = build_parser().format_help()
    assert "exit codes" in text and "run" in text and "mock" in text
    sub = _run("run", "test04", "--help")
    assert sub.returncode == 0
    for flag in ("--url", "--scenario", "--sample-index", "--api-key-env", "--mock-cache"):
        assert flag in sub.stdout
    assert "(default: 256)" in sub.stdout  # --samples shows its default
    generic = _run("run", "--help")
    assert generic.returncode == 0 and "--url" in generic.stdout and "test04" in generic.stdout


@pytest.mark.parametrize(("cache", "code", "word"), [("none", 0, "PASS"), ("output", 1, "FAIL")])
def test_verdict_exit_codes(tmp_path: Path, cache: str, code: int, word: str) -> None:
    # from another directory: the shipped dataset still resolves; the simulated mock makes the
    # verdict exact, so this checks the exit code mapping, not the machine's load
    proc = _run(
        "run", "test04", "--mock-cache", cache, "--mock-simulated", "--output-dir", str(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == code, proc.stderr
    assert f"TEST04 {word}" in proc.stdout
    assert (tmp_path / "TEST04" / "audit_result.json").is_file()


def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "test04", "--scenario", "sideways"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--scenario" in err


def test_mistyped_flag_and_test_get_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "test04", "--sample", "64"])
    assert info.value.code == 2
    assert "did you mean --samples?" in capsys.readouterr().err
    assert main(["run", "tset04"]) == 2
    assert "did you mean test04?" in capsys.readouterr().err


def test_input_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    proc = _run("run", "test04", "--samples", "5000", "--output-dir", str(tmp_path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "test04.samples (5000)" in lines[0]
    assert not (tmp_path / "TEST04").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mock_subcommand_serves_until_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [*AUDITKIT, "mock", "--port", str(port), "--cache", "output"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "mock did not start"
                time.sleep(0.1)
        assert models["data"][0]["id"] == "mock-llm"
        audit = _run(
            "run",
            "test04",
            "--url",
            f"http://127.0.0.1:{port}",
            "--samples",
            "64",
            "--output-dir",
            str(tmp_path),
        )
        assert audit.returncode == 1, audit.stderr  # the mock caches outputs
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert os.path.isdir(tmp_path / "TEST04")
