"""Resource bounds: endpoint.max_response_bytes and endpoint.timeout_s hold for streamed and
non-streamed responses, so a hostile or broken endpoint can neither exhaust memory nor hang the
audit; both limits are recorded in config.yaml and in each phase.json (`request_settings`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from auditkit.audits import build_config
from auditkit.runner import run_audit
from tests.reliability.conftest import Served

LIMIT = 1024 * 1024  # 1 MiB against a 64 MiB body


def _audit(tmp: Path, url: str, **endpoint: object) -> tuple[pd.DataFrame, float, Path]:
    cfg = build_config(
        {
            "endpoint": {"url": url, "model": "tiny-model", **endpoint},
            "test04": {"samples": 8, "warmup": 0, "control_twins": 0, "allow_small": True},
            "load": {"max_concurrency": 8},
            "output_dir": str(tmp / "out"),
        }
    )
    start = time.monotonic()
    run = run_audit(cfg)
    assert run.result.verdict == "INVALID"
    return run.phases[0].records, time.monotonic() - start, run.folder


@pytest.mark.parametrize(
    ("mode", "stream", "error"),
    [
        ("huge-cl", False, "response of 67108864 bytes exceeds the 1048576-byte limit"),
        ("huge-chunked", False, "response exceeds the 1048576-byte limit"),
        ("huge-sse", True, "stream exceeds the 1048576-byte limit"),
    ],
    ids=["json-content-length", "json-chunked", "sse-stream"],
)
def test_oversized_response_is_a_quick_protocol_error(
    tmp_path: Path, tiny: Served, mode: str, stream: bool, error: str
) -> None:
    records, seconds, folder = _audit(
        tmp_path, tiny.url(mode), max_response_bytes=LIMIT, stream=stream
    )
    assert (records["status"] == "protocol_error").all()
    assert (records["error"] == error).all(), records["error"].unique()
    assert seconds < 10
    settings = json.loads((folder / "reference" / "phase.json").read_text())["request_settings"]
    assert settings["max_response_bytes"] == LIMIT
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["endpoint"]["max_response_bytes"] == LIMIT


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_hanging_endpoint_times_out(tmp_path: Path, tiny: Served, stream: bool) -> None:
    records, seconds, folder = _audit(tmp_path, tiny.url("hang"), timeout_s=1, stream=stream)
    assert (records["status"] == "timeout").all()
    assert records["error"].str.contains("within 1 s").all()
    assert seconds < 8  # one 1 s round (8 in flight), not the server's 30 s hang
    settings = json.loads((folder / "reference" / "phase.json").read_text())["request_settings"]
    assert settings["timeout_s"] == 1
    assert yaml.safe_load((folder / "config.yaml").read_text())["endpoint"]["timeout_s"] == 1


MEMORY_PROBE = """
import json, resource, sys
from auditkit.audits import build_config
from auditkit.runner import run_audit

def audit(url, **endpoint):
    cfg = build_config({"endpoint": {"url": url, "model": "tiny-model", **endpoint},
                        "test04": {"samples": 8, "warmup": 0, "control_twins": 0},
                        "load": {"max_concurrency": 8},
                        "output_dir": sys.argv[2], "overwrite": True})
    return run_audit(cfg).phases[0].records["status"].unique().tolist()

base = sys.argv[1]
audit(base + "/ok")  # warm everything up: imports, loop, pools
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
statuses = [audit(base + "/huge-chunked", max_response_bytes=1048576),
            audit(base + "/huge-sse", max_response_bytes=1048576, stream=True)]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"statuses": statuses, "growth_kib": after - before}))
"""


@pytest.mark.slow
def test_memory_stays_bounded(tmp_path: Path, tiny: Served) -> None:
    """8 concurrent 64 MiB answers (512 MiB offered) grow the client's peak RSS by far less
    than one of them: each request stops reading at max_response_bytes."""
    base = tiny.url("x").rsplit("/", 1)[0]
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, base, str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [["protocol_error"], ["protocol_error"]]
    assert report["growth_kib"] < 48 * 1024, report
