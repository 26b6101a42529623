"""No secret on disk or on screen: a recognisable fake key goes to an endpoint that echoes the
Authorization header back (in the model list, response bodies, a response header and error
bodies); every file written and everything printed is then searched for it. Also: TLS
verification is on by default, and turning it off is recorded in the verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from auditkit.config import REDACTED
from tests.reliability.conftest import CliResult, Served, run_subprocess

KEY = "AUDITKIT-FAKE-KEY-7f3a9c"
KEY_ENV = "AUDITKIT_RELIABILITY_KEY"


def assert_no_key(folder: Path, *texts: str) -> int:
    """Search every file under folder (raw bytes, and Parquet cells, which may be compressed)
    and the given texts for the key; returns the number of files searched."""
    for text in texts:
        assert KEY not in text
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            assert not frame.astype(str).apply(lambda col: col.str.contains(KEY)).any().any()
    return len(files)


@pytest.mark.slow
def test_cli_audit_writes_no_key(tmp_path: Path, tiny: Served) -> None:
    out = tmp_path / "out"
    result = run_subprocess(
        ["run", "test04", "--url", tiny.url("echo"), "--api-key-env", KEY_ENV,
         "--header", "X-Trace=visible", "--samples", "8", "--output-dir", str(out), "--json"],
        env={KEY_ENV: KEY},
    )  # fmt: skip
    assert result.code in (0, 1, 5), result.stderr  # a verdict, whichever
    assert f"Bearer {KEY}" in tiny.server.seen_auth  # the key really was sent
    assert assert_no_key(out, result.stdout, result.stderr) >= 10
    config = yaml.safe_load((out / "TEST04" / "config.yaml").read_text())
    assert config["endpoint"]["api_key_env"] == KEY_ENV  # the NAME is kept, not the value
    phase = json.loads((out / "TEST04" / "reference" / "phase.json").read_text())
    assert phase["request_headers"]["Authorization"] == REDACTED
    assert phase["request_headers"]["X-Trace"] == "visible"


def test_echoed_key_in_error_bodies_is_redacted(
    tmp_path: Path,
    tiny: Served,
    monkeypatch: pytest.MonkeyPatch,
    run_inproc: Callable[[list[str]], CliResult],
) -> None:
    # in this process: what is printed and written is the point (a child process's output is
    # test_cli_audit_writes_no_key's)
    monkeypatch.setenv(KEY_ENV, KEY)
    out = tmp_path / "out"
    result = run_inproc(
        ["run", "test04", "--url", tiny.url("echo-error"), "--api-key-env", KEY_ENV,
         "--samples", "8", "--warmup", "0", "--output-dir", str(out)],
    )  # fmt: skip
    assert result.code == 4, result.stderr
    assert_no_key(out, result.stdout, result.stderr)
    records = pd.read_parquet(out / "TEST04" / "reference" / "records.parquet")
    assert records["error"].str.contains(f"upstream rejected header {REDACTED}", regex=False).all()
    assert REDACTED in result.stderr_lines[-1]  # the one-line error shows the masked text


@pytest.mark.slow
def test_notebook_audit_writes_no_key(
    tmp_path: Path,
    tiny: Served,
    monkeypatch: pytest.MonkeyPatch,
    run_inproc: Callable[[list[str]], CliResult],
) -> None:
    # the runner in this process, the kernel (which reads the key) in its own, as always
    monkeypatch.setenv(KEY_ENV, KEY)
    out = tmp_path / "nb"
    result = run_inproc(
        ["notebook", "test04", "-p", "url", tiny.url("echo"), "-p", "api_key_env", KEY_ENV,
         "-p", "samples", "8", "-p", "max_concurrency", "8", "-p", "rounds", "0",
         "-p", "warmup", "0", "-p", "design", "sequential", "--html", "--output-dir", str(out)],
    )  # fmt: skip
    assert result.code in (0, 1, 5), result.stdout + result.stderr
    assert (out / "test04.ipynb").is_file() and (out / "test04.html").is_file()
    assert (out / "TEST04" / "audit_result.json").is_file()
    assert assert_no_key(out, result.stdout, result.stderr) >= 10


def test_tls_is_verified_by_default_and_insecure_is_recorded(
    tmp_path: Path, tls: Served, run_inproc: Callable[[list[str]], CliResult]
) -> None:
    base = ["run", "test04", "--url", tls.url("ok"), "--samples", "8", "--quiet"]
    refused = run_inproc([*base, "--output-dir", str(tmp_path / "strict")])
    assert refused.code == 3 and "certificate" in refused.stderr
    out = tmp_path / "insecure"
    result = run_inproc([*base, "--insecure", "--output-dir", str(out)])
    assert result.code in (0, 1, 5), result.stderr  # a verdict, whichever
    verdict = json.loads((out / "TEST04" / "audit_result.json").read_text())
    assert any("TLS verification was off" in note for note in verdict["notes"])
    assert verdict["config"]["endpoint"]["verify_tls"] is False
    config = yaml.safe_load((out / "TEST04" / "config.yaml").read_text())
    assert config["endpoint"]["verify_tls"] is False
    assert (
        "WARNING: TLS verification was off"
        in (out / "TEST04" / "verify_performance.txt").read_text()
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--header", f"Authorization=Bearer {KEY}"],
        ["--header", f"X-Api-Key={KEY}"],
        ["--api-key-env", KEY],
    ],
    ids=["authorization-header-flag", "api-key-header-flag", "key-as-env-name"],
)
def test_keys_are_never_flag_values(
    tmp_path: Path, argv: list[str], run_inproc: Callable[[list[str]], CliResult]
) -> None:
    result = run_inproc(["run", "test04", *argv, "--output-dir", str(tmp_path / "o")])
    assert result.code == 2 and len(result.stderr_lines) == 1
    assert KEY not in result.stderr + result.stdout
    assert not (tmp_path / "o").exists()
