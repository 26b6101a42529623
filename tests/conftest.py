"""Fixtures shared by the whole suite."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from auditkit.config import MockConfig
from auditkit.startup import skip_slow_iri_format_checker

# the workers load nbformat (papermill and notebook tests): 2.3 CPU-s each saved
skip_slow_iri_format_checker()


def pytest_configure(config: pytest.Config) -> None:
    """A shell's background job (`make test &`, some CI runners) starts with SIGINT ignored and
    every child inherits that: the tests of what Ctrl-C does need Python's own handler."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


@pytest.fixture(scope="session")
def mock_url() -> Iterator[str]:
    """A no-cache mock SUT for functional tests (not timing: those start their own, in its own
    process)."""
    from auditkit.mock import MockServer

    with MockServer(MockConfig()) as server:
        yield server.url


@dataclass(frozen=True)
class NotebookRun:
    """One `auditkit notebook` child process: what it printed and where it wrote."""

    proc: subprocess.CompletedProcess[str]
    cwd: Path
    out: Path


@pytest.fixture(scope="session")
def test04_notebook_with_html(tmp_path_factory: pytest.TempPathFactory) -> NotebookRun:
    """`auditkit notebook test04 --html` on the simulated mock (a PASS), run once per session:
    a kernel run costs seconds, and its exit code, stdout and HTML report are several tests'.
    Under xdist the workers share one run (the first to get the lock runs it)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder all workers' temporary folders sit in
    cwd = shared / "nb-html"
    done = cwd / "proc.json"
    with (shared / "nb-html.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            cwd.mkdir(exist_ok=True)
            proc = subprocess.run(
                [sys.executable, "-m", "auditkit.cli", "notebook", "test04", "-p",
                 "mock_simulated", "true", "-p", "design", "sequential", "-p", "samples", "128",
                 "--html", "--output-dir", "o"],
                cwd=cwd, capture_output=True, text=True, timeout=240,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )  # fmt: skip
            done.write_text(json.dumps([proc.args, proc.returncode, proc.stdout, proc.stderr]))
    args, code, out, err = json.loads(done.read_text())
    return NotebookRun(subprocess.CompletedProcess(args, code, out, err), cwd, cwd / "o")


@pytest.fixture(autouse=True)
def _ctrl_c_handler_restored() -> Iterator[None]:
    """A test that leaves its own SIGINT handler behind changes what Ctrl-C does in every later
    test of its worker (asyncio.Runner only installs its handler over Python's default one)."""
    yield
    handler = signal.getsignal(signal.SIGINT)
    if handler is not signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        pytest.fail(f"the test left SIGINT handled by {handler!r}")
    # a blocked SIGINT is inherited by every child process the worker starts later
    if signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
        pytest.fail("the test left SIGINT blocked")
