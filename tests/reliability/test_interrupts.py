"""Interrupts and crashes: Ctrl-C (SIGINT) and SIGTERM during either phase exit 130 with the
phase's records so far on disk and no verdict; SIGKILL during a write never leaves a torn
audit_result.json (atomic tmp → fsync → rename), and the next run sweeps the stale temp file.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from auditkit import artifacts
from tests.reliability.conftest import AUDITKIT

pytestmark = pytest.mark.slow

# single-stream against a one-slot mock, 16 tokens × 10 ms: ~0.17 s per query, ~4 s a phase
# (mostly the mock's sleeps: little CPU), long enough that a loaded machine's late reading of
# the "phase" line still signals mid-phase
SAMPLES = 24
SLOW = {
    "mock": {"decode_us_per_token": 10_000, "slots": 1, "jitter_cv": 0.0},
    "endpoint": {"max_tokens": 16},
    "load": {"scenario": "single-stream"},
    "test04": {"samples": SAMPLES, "warmup": 0, "control_twins": 0, "allow_small": True},
}


def _lines(stream: object, sink: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.put(line)


# each signal once and each phase once (the handler does not depend on the phase): Ctrl-C in
# the audit phase (the reference's records must stand too), SIGTERM in the reference phase
@pytest.mark.parametrize(
    ("sig", "phase"),
    [(signal.SIGINT, "audit"), (signal.SIGTERM, "reference")],
    ids=["SIGINT-audit", "SIGTERM-reference"],
)
def test_signal_keeps_records_and_writes_no_verdict(
    tmp_path: Path, phase: str, sig: signal.Signals
) -> None:
    config = tmp_path / "slow.yaml"
    config.write_text(yaml.safe_dump({**SLOW, "output_dir": str(tmp_path / "out")}))
    proc = subprocess.Popen(
        # --verbose: the phase-by-phase lines tell the test when a phase runs
        [*AUDITKIT, "run", "test04", "--verbose", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any(line.startswith(f"phase {phase}") for line in seen):
            assert time.monotonic() < deadline, seen
            assert proc.poll() is None, (proc.returncode, seen)
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                continue
        time.sleep(0.6)  # a few queries complete, one is in flight
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    while not lines.empty():
        seen.append(lines.get())
    assert code == 130, seen
    assert "Traceback" not in "".join(seen)
    assert seen[-1].startswith(f"auditkit: error: interrupted during the {phase} phase"), seen
    folder = tmp_path / "out" / "TEST04"
    records = pd.read_parquet(folder / phase / "records.parquet")
    statuses = records["status"].value_counts().to_dict()
    # the query in flight when the signal came is kept as cancelled (how many completed before
    # it depends on how busy the machine was: not asserted)
    assert statuses.get("cancelled", 0) >= 1, statuses
    assert set(statuses) <= {"ok", "cancelled"}
    summary = json.loads((folder / phase / "phase.json").read_text())
    assert summary["interrupted"] is True and summary["complete"] is False
    if phase == "audit":
        ref = pd.read_parquet(folder / "reference" / "records.parquet")
        assert (ref["status"] == "ok").all() and len(ref) == SAMPLES
    for verdict_file in ("audit_result.json", "verify_performance.txt"):
        assert not (folder / verdict_file).exists()
    assert not (tmp_path / "out" / "audit").exists()  # no submission verdict either


#: Forks one writer per line read on stdin (auditkit is imported once, not once a round) and
#: says how each ended. A writer sweeps what the previous one left, as run_audit does at the
#: start of a run, then rewrites audit_result.json until it is killed.
WRITERS = """
import os
import sys
from pathlib import Path
from auditkit import artifacts

folder = Path(sys.argv[1])
payloads = [
    {"verdict": "PASS", "n": 0, "pad": "a" * 200_000},
    {"verdict": "FAIL", "n": 1, "pad": "b" * 300_000},
]
for _line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        removed = artifacts.remove_stale_tmp(folder)
        print(f"ready {removed} {os.getpid()}", flush=True)
        i = 0
        while True:
            artifacts.atomic_write_json(folder / "audit_result.json", payloads[i % 2])
            i += 1
    _, status = os.waitpid(pid, 0)
    print(f"ended {os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1}", flush=True)
"""
PAYLOADS = [
    {"verdict": "PASS", "n": 0, "pad": "a" * 200_000},
    {"verdict": "FAIL", "n": 1, "pad": "b" * 300_000},
]


def _tmp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if artifacts.is_stale_tmp(p))


def test_sigkill_never_leaves_a_torn_result(tmp_path: Path) -> None:
    """SIGKILL a writer looping over two different valid payloads at random moments: the file
    on disk always parses and equals one of them. A kill between mkstemp and rename can leave
    one `.audit_result.json.*.tmp`; the next writer (a new run) removes it."""
    rng = random.Random(4)
    folder = tmp_path / "TEST04"
    folder.mkdir()
    target = folder / "audit_result.json"
    left_before = 0
    writers = subprocess.Popen(
        [sys.executable, "-c", WRITERS, str(folder)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writers.stdin is not None and writers.stdout is not None
    try:
        for _round in range(8):
            writers.stdin.write("go\n")
            writers.stdin.flush()
            ready = writers.stdout.readline()
            assert ready.startswith("ready"), ready
            # the new writer swept exactly what the previous crash left (it is writing again
            # already, so the folder itself may hold its own in-flight temp file by now)
            _, removed, pid = ready.split()
            assert int(removed) == left_before
            time.sleep(rng.uniform(0.02, 0.25))
            os.kill(int(pid), signal.SIGKILL)
            assert writers.stdout.readline().split() == ["ended", str(int(signal.SIGKILL))]
            assert json.loads(target.read_text()) in PAYLOADS
            left = _tmp_files(folder)
            assert len(left) <= 1, left  # at most the one write the kill interrupted
            left_before = len(left)
        writers.stdin.close()
        assert writers.wait(30) == 0
    finally:
        if writers.poll() is None:
            writers.kill()
            writers.wait()
    artifacts.remove_stale_tmp(folder)
    assert _tmp_files(folder) == []
    assert json.loads(target.read_text()) in PAYLOADS
