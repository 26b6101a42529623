"""Injected faults (the mock's `faults:`): every kind ends the same way. The failed queries are
recorded with their status, the phase is INVALID (never PASS/FAIL on partial data), the records
stay on disk and the CLI exits 4 with one line naming the failure.

Status rule (loadgen._classify, docs/reliability.md): no connection → connect_error; the total
per-request timeout ran out → timeout; connected but the exchange broke (reset, closed early,
malformed, truncated, error event, oversized) → protocol_error; a non-2xx answer → http_error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.reliability.conftest import AUDITKIT, CliResult, closed_port, run_subprocess


@dataclass(frozen=True)
class Fault:
    """One fault kind: mock settings, endpoint settings, and the expected outcome."""

    id: str
    faults: dict[str, Any]
    status: str
    error: str  # a regex the failing rows' error text matches
    endpoint: dict[str, Any] = field(default_factory=dict)
    phase: str = "reference"  # the phase that fails
    http_status: int | None = None


FAULTS = [
    Fault("error-5xx", {"error_rate": 0.5}, "http_error", r"HTTP 500: .*injected server error",
          http_status=500),
    Fault("hang-timeout", {"hang_rate": 0.5}, "timeout", r"no complete response within 1 s",
          endpoint={"timeout_s": 1}),
    Fault("connection-reset", {"reset_rate": 0.5}, "protocol_error",
          r"connection reset by the server|closed the connection"),
    Fault("malformed-json", {"malformed_rate": 0.5}, "protocol_error", r"response is not JSON"),
    Fault("truncated-stream", {"truncate_rate": 0.5}, "protocol_error",
          r"stream ended without \[DONE\]", endpoint={"stream": True}),
    Fault("error-in-stream", {"stream_error_rate": 0.5}, "protocol_error",
          r"error event in stream: .*injected error mid-stream", endpoint={"stream": True}),
    Fault("slow-loris", {"slow_loris_rate": 0.5}, "timeout", r"no complete response within 1 s",
          endpoint={"timeout_s": 1}),
    Fault("slow-loris-stream", {"slow_loris_rate": 0.5}, "timeout",
          r"no complete response within 1 s", endpoint={"timeout_s": 1, "stream": True}),
    Fault("die-after-3", {"die_after": 3}, "protocol_error",
          r"connection reset by the server|closed the connection"),
    # the reference completes; the SUT dies during the audit phase: still no PASS/FAIL
    Fault("die-during-audit", {"die_after": 10}, "protocol_error",
          r"connection reset by the server|closed the connection", phase="audit"),
]  # fmt: skip


def write_config(tmp: Path, fault: Fault) -> Path:
    cfg = {
        "endpoint": {"max_tokens": 8, **fault.endpoint},
        "mock": {"faults": fault.faults, "seed": 0},
        "test04": {"samples": 8, "warmup": 0, "control_twins": 0, "allow_small": True},
        "load": {"max_concurrency": 8},
        "output_dir": str(tmp / "out"),
    }
    path = tmp / "faults.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def check_outcome(fault: Fault, result: CliResult, out: Path) -> pd.DataFrame:
    """The common assertions; returns the failing phase's records."""
    assert result.code == 4, (result.code, result.stderr, result.stdout)
    assert len(result.stderr_lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "INVALID" in result.stderr_lines[0] and fault.status in result.stderr_lines[0]
    folder = out / "TEST04"
    verdict = json.loads((folder / "audit_result.json").read_text())
    assert verdict["verdict"] == "INVALID"
    if fault.phase == "reference":  # the audit phase never ran: nothing to compare
        assert verdict["audit_score"] is None and verdict["ratio"] is None
    # upstream's wording for an invalid run is "TEST FAIL: … results are invalid"; auditkit's
    # own verdict line beside it says INVALID, and TEST PASS never appears
    verify_text = (folder / "verify_performance.txt").read_text()
    assert "TEST PASS" not in verify_text and "auditkit: verdict INVALID" in verify_text
    records = pd.read_parquet(folder / fault.phase / "records.parquet")
    phase = json.loads((folder / fault.phase / "phase.json").read_text())
    assert phase["complete"] is False and phase["failures_by_status"].get(fault.status, 0) >= 1
    failing = records[records["status"] != "ok"]
    assert len(failing) >= 1 and set(failing["status"]) == {fault.status}, failing
    assert all(re.search(fault.error, e) for e in failing["error"]), list(failing["error"])
    if fault.http_status is not None:
        assert set(failing["http_status"]) == {fault.http_status}
    # a failed row keeps its timing so far but never a completion time or latency
    assert failing["completed_ns"].isna().all() and failing["latency_ns"].isna().all()
    if fault.phase == "audit":  # the reference completed and its records are kept too
        ref = pd.read_parquet(folder / "reference" / "records.parquet")
        assert (ref["status"] == "ok").all() and len(ref) == 8
    else:
        assert not (folder / "audit").exists()
    return records


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault_outcome(
    fault: Fault, tmp_path: Path, run_inproc: Callable[[list[str]], CliResult]
) -> None:
    config = write_config(tmp_path, fault)
    start = time.monotonic()
    result = run_inproc(["run", "test04", "--config", str(config), "--quiet"])
    check_outcome(fault, result, tmp_path / "out")
    # timeouts are enforced: two 1 s rounds at most, never the mock's 3 s dribble or 1 h hang
    assert time.monotonic() - start < 15


@pytest.mark.slow
def test_fault_via_mock_cli(tmp_path: Path) -> None:
    """The mock's own CLI (`auditkit mock --config faults.yaml`) and a separate `auditkit run
    --url` process: die_after 3 kills the endpoint mid-phase."""
    port = closed_port()
    faults = tmp_path / "mock.yaml"
    faults.write_text(yaml.safe_dump({"mock": {"faults": {"die_after": 3}}}))
    mock = subprocess.Popen(
        [*AUDITKIT, "mock", "--port", str(port), "--config", str(faults)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert mock.stdout is not None
        assert "auditkit mock on" in mock.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        result: CliResult | None = None
        while time.monotonic() < deadline:  # the banner precedes the bind: retry briefly
            result = run_subprocess(
                ["run", "test04", "--url", url, "--samples", "8", "--max-concurrency", "8",
                 "--warmup", "0", "--control-twins", "0",
                 "--quiet", "--output-dir", str(tmp_path / "out")],
            )  # fmt: skip
            if result.code != 3:
                break
            time.sleep(0.2)
        assert result is not None
        fault = next(f for f in FAULTS if f.id == "die-after-3")
        records = check_outcome(fault, result, tmp_path / "out")
        assert (records["status"] == "ok").sum() == 3
    finally:
        mock.terminate()
        mock.wait(10)


def test_reset_and_refused_are_classified_consistently() -> None:
    """A reset after the request went out is a protocol_error; a refused connect (nothing
    listening, or a dead server's closed port) is a connect_error; a connect timeout too."""
    import errno

    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    from auditkit.loadgen import classify_error as _classify

    key = ConnectionKey("127.0.0.1", 1, False, True, None, None, None)
    refused = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))
    assert _classify(refused)[0] == "connect_error"
    assert _classify(aiohttp.ConnectionTimeoutError("slow"))[0] == "connect_error"
    reset = aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer")
    assert _classify(reset) == ("protocol_error", "connection reset by the server "
                                "([Errno 104] Connection reset by peer)")  # fmt: skip
    assert _classify(aiohttp.ServerDisconnectedError())[0] == "protocol_error"
    assert _classify(ConnectionResetError())[0] == "protocol_error"
    assert _classify(TimeoutError(), 2.5) == (
        "timeout",
        "no complete response within 2.5 s (endpoint.timeout_s) (TimeoutError)",
    )
    assert sys.version_info >= (3, 11)
