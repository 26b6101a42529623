"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from auditkit.config import MockConfig


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """xdist groups (`--dist loadgroup`): wall-clock timing tests run on one worker one at a
    time, and the users of a session-scoped kernel run share one worker (so it runs once)."""
    for item in items:
        if item.get_closest_marker("timing"):
            item.add_marker(pytest.mark.xdist_group("timing"))
        elif "test04_notebook_with_html" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("test04-html"))


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
    a kernel run costs seconds, and its exit code, stdout and HTML report are several tests'."""
    cwd = tmp_path_factory.mktemp("nb-html")
    proc = subprocess.run(
        [sys.executable, "-m", "auditkit.cli", "notebook", "test04", "-p", "mock_simulated",
         "true", "-p", "design", "sequential", "--html", "--output-dir", "o"],
        cwd=cwd, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    return NotebookRun(proc, cwd, cwd / "o")
