"""The mock in its own process (`MockProcess`, `python -m auditkit.mock`): it serves, reports its
counters, and is always gone afterwards. Plus the raw-socket reset the faults rely on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from auditkit.config import FaultConfig, MockConfig
from auditkit.errors import SetupError
from auditkit.mock import MockProcess, MockServer
from auditkit.mock.connection import find_connection_socket
from auditkit.mock.process import read_first_line

pytestmark = pytest.mark.slow

PROMPT = "the quick brown fox jumps over the lazy dog"  # 9 words


def fast(**kw: Any) -> MockConfig:
    kw.setdefault("jitter_cv", 0.0)
    kw.setdefault("base_latency_ms", 0.0)
    return MockConfig(**kw)


def is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def running() -> Iterator[MockProcess]:
    with MockProcess(fast(cache="output")) as mock:
        yield mock


def test_serves_a_completion_and_reports_stats(running: MockProcess) -> None:
    assert running.running and running.pid != os.getpid()
    assert running.url == f"http://127.0.0.1:{running.port}"
    before = running.stats()["requests"]
    with httpx.Client(base_url=running.url, timeout=10) as client:
        body = {"prompt": PROMPT, "max_tokens": 5, "temperature": 0}
        first = client.post("/v1/completions", json=body)
        second = client.post("/v1/completions", json=body)
        assert client.get("/health").status_code == 200
    assert first.status_code == 200 and first.json()["usage"]["completion_tokens"] == 5
    assert second.json()["choices"] == first.json()["choices"]
    stats = running.stats()
    assert stats["requests"] - before == 2 and stats["cache_hits"] >= 1
    assert set(stats["faults"]) >= {"error", "reset", "die"}


def test_stop_ends_the_child_and_keeps_the_last_stats() -> None:
    mock = MockProcess(fast())
    assert mock.stats()["requests"] == 0  # before start: zero counters, like MockServer
    with pytest.raises(RuntimeError):
        _ = mock.url
    with mock:
        pid = mock.pid
        httpx.post(f"{mock.url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 2})
    assert not mock.running and is_gone(pid)
    assert mock.stats()["requests"] == 1 and mock.stats()["completed"] == 1
    mock.stop()  # idempotent


def test_body_raising_still_stops_the_child() -> None:
    mock = MockProcess(fast())
    pid = None
    with pytest.raises(RuntimeError, match="boom"), mock:
        pid = mock.pid
        raise RuntimeError("boom")
    assert pid is not None and is_gone(pid) and not mock.running


def test_restart_is_a_fresh_process() -> None:
    mock = MockProcess(fast())
    with mock:
        first = mock.pid
        httpx.post(f"{mock.url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 1})
    with mock:
        assert mock.pid != first and mock.stats()["requests"] == 0
    assert is_gone(first) and not mock.running


def test_busy_port_is_a_setup_error_naming_the_cause() -> None:
    with MockServer(fast()) as taken:
        mock = MockProcess(fast(), port=taken.port)
        with pytest.raises(SetupError, match="cannot listen"):
            mock.start()
        assert not mock.running


def test_a_child_that_died_is_reported_not_guessed() -> None:
    mock = MockProcess(fast()).start()
    try:
        os.kill(mock.pid, signal.SIGKILL)
        with pytest.raises(SetupError, match=r"exited unexpectedly|did not report its stats"):
            mock.stats()
    finally:
        mock.stop()
    assert not mock.running


def test_faults_in_the_child_look_the_same() -> None:
    """Reset and hang through the child's own loop (uvloop when installed)."""
    with MockProcess(fast(faults=FaultConfig(reset_rate=1.0))) as mock:
        with pytest.raises(httpx.TransportError):
            httpx.post(f"{mock.url}/v1/completions", json={"prompt": PROMPT})
        assert mock.stats()["faults"]["reset"] == 1
    with MockProcess(fast(faults=FaultConfig(hang_rate=1.0))) as mock:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{mock.url}/v1/completions", json={"prompt": PROMPT}, timeout=0.3)
        pid = mock.pid
    assert is_gone(pid)


def test_child_exits_when_its_parent_lets_go_of_stdin() -> None:
    """What protects against orphans when the parent is killed before it can stop the child."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditkit.mock", "--exit-on-stdin-eof", "--config-json", "{}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = read_first_line(proc.stdout, 30)
        assert line is not None and line.startswith("http://127.0.0.1:")
        proc.stdin.close()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_child_refuses_bad_settings_with_exit_code_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "auditkit.mock", "--config-json", '{"slots": 0}'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("mock config:") and len(result.stderr.splitlines()) == 1


def test_find_connection_socket_matches_exactly_one_connection() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                found = find_connection_socket(accepted.getsockname(), accepted.getpeername())
                assert found is not None
                with found:
                    assert found.fileno() != accepted.fileno()
                    assert found.getpeername() == client.getsockname()
                # the other end of the same connection is another socket
                other = find_connection_socket(client.getsockname(), client.getpeername())
                assert other is not None
                with other:
                    assert other.getsockname() == client.getsockname()
                assert find_connection_socket(("127.0.0.1", 1), accepted.getpeername()) is None
                assert find_connection_socket(None, None) is None
