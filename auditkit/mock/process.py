"""The mock SUT in its own process: `MockProcess`, a drop-in for the in-thread `MockServer`.

A mock inside the client's process shares the GIL with the load generator, so what a
timing-sensitive run measures is partly the client's own scheduler. `MockProcess` runs
`python -m auditkit.mock` as a child on 127.0.0.1 instead:

    with MockProcess(MockConfig(cache="output")) as mock:
        run_against(mock.url)
        print(mock.stats()["cache_hits"])

The child binds a free port and prints its URL as one line on stdout; the parent waits for that
line (bounded), stops the child by PID on exit (SIGTERM, then SIGKILL) and never leaves it
behind: not on an exception in the `with` body, not when the object is garbage collected or the
interpreter exits, and not when the parent is killed outright (the child stops when its stdin,
a pipe from the parent, closes). The child runs in its own session, so a Ctrl-C in a terminal
reaches the parent only, which then stops the mock in order.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import urlsplit

from auditkit.config import MockConfig
from auditkit.errors import SetupError
from auditkit.mock.app import STATS_PATH
from auditkit.mock.engine import empty_stats
from auditkit.mock.handle import MockHandle

#: How long `start` waits for the child's URL line (a cold interpreter imports starlette,
#: uvicorn and pydantic first).
START_TIMEOUT_S = 30.0
#: How long `stop` waits after SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 5.0
#: Bound on one GET of the child's counters.
STATS_TIMEOUT_S = 5.0
#: The package root the child must import auditkit from (the parent's copy, not another).
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_STDERR_TAIL_CHARS = 300


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(_PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def read_first_line(stream: IO[bytes], timeout_s: float) -> str | None:
    """The first line written to the pipe `stream`, or None on timeout or EOF."""
    fd = stream.fileno()
    deadline = time.monotonic() + timeout_s
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not sel.select(remaining):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            buf += chunk
    return buf.split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def _stop_child(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, wait up to `timeout_s`, then SIGKILL; close our ends of its pipes.

    Popen signals only a child it has not reaped yet, so a recycled PID is never hit.
    """
    try:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _tail(log: IO[bytes]) -> str:
    with contextlib.suppress(OSError, ValueError):
        log.seek(0)
        lines = [ln for ln in log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1][-_STDERR_TAIL_CHARS:]
    return ""


class MockProcess(MockHandle):
    """The mock SUT in a child process; the same interface as `MockServer`.

    `start()` returns once the child accepts connections; `url`, `port` and `pid` are then set.
    `stats()` asks the child (GET /mock/stats); after `stop()` it returns the counters read just
    before the child was stopped.
    """

    def __init__(
        self, cfg: MockConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(cfg, host, port)
        self._url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._last_stats: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (no trailing slash, no /v1)."""
        if self._url is None:
            raise RuntimeError("MockProcess is not started")
        return self._url

    @property
    def pid(self) -> int:
        """The child's process id (raises RuntimeError before start)."""
        if self._proc is None:
            raise RuntimeError("MockProcess is not started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> Self:
        """Start the child and return once it accepts connections (idempotent).

        Each start is a fresh process (caches, counters, RNG). Raises SetupError if the port is
        busy, the settings are refused or the child is not up within `timeout_s`.
        """
        if self.running:
            return self
        self._close_log()
        # The child's stderr (uvicorn's warnings, a startup error): a file, so a chatty child
        # can never block on a full pipe nobody reads.
        log = tempfile.TemporaryFile(prefix="auditkit-mock-", suffix=".log")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "auditkit.mock",
            "--host",
            self.host,
            "--port",
            str(self._requested_port),
            "--config-json",
            self.cfg.model_dump_json(),
            "--exit-on-stdin-eof",
        ]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,  # never written: its EOF tells the child we are gone
            stdout=subprocess.PIPE,
            stderr=log,
            env=_child_env(),
            start_new_session=True,
        )
        self._proc, self._log, self._last_stats = proc, log, None
        self._finalizer = weakref.finalize(self, _stop_child, proc, STOP_TIMEOUT_S)
        try:
            assert proc.stdout is not None
            line = read_first_line(proc.stdout, timeout_s)
            url = urlsplit(line or "")
            if line is None or url.scheme != "http" or url.port is None:
                raise SetupError(self._startup_failure(line, timeout_s))
        except BaseException:
            self.stop(timeout_s=2.0)
            raise
        self._url, self._port = line, url.port
        return self

    def _startup_failure(self, line: str | None, timeout_s: float) -> str:
        code = self._proc.poll() if self._proc is not None else None
        why = _tail(self._log) if self._log is not None else ""
        if line:
            why = f"unexpected first line {line[:80]!r}"
        elif code is None and not why:
            why = f"not up after {timeout_s:g} s"
        elif code is not None:
            why = f"exit code {code}: {why}" if why else f"exit code {code}"
        return f"mock process did not start on {self.host}:{self._requested_port} ({why})"

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the child (SIGTERM, then SIGKILL after `timeout_s`); idempotent."""
        proc = self._proc
        if proc is None:
            return
        if self._url is not None and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
                self._last_stats = self._fetch_stats(min(timeout_s, STATS_TIMEOUT_S))
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        _stop_child(proc, timeout_s)
        self._proc = None
        self._close_log()

    def _fetch_stats(self, timeout_s: float) -> dict[str, Any]:
        # http.client, not urllib: no proxy settings from the environment for a 127.0.0.1 call.
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        try:
            conn.request("GET", STATS_PATH)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise http.client.HTTPException(f"HTTP {response.status}")
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("stats are not a JSON object")
        return data

    def stats(self) -> dict[str, Any]:
        """Counters: requests, completed, rejected, in_flight, cache_hits, prefix_hits,
        computations, coalesced, tail_requests, connections and faults (injected, by kind).
        After stop(), the counters read just before stopping.
        Raises SetupError if a running child does not answer (or died on its own)."""
        if self._proc is None:
            if self._last_stats is not None:
                return dict(self._last_stats)
            return empty_stats()
        if self._proc.poll() is not None:
            raise SetupError(f"mock process exited unexpectedly (exit code {self._proc.poll()})")
        try:
            return self._fetch_stats(STATS_TIMEOUT_S)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            why = f"mock process at {self.url} did not report its stats ({exc})"
            raise SetupError(why) from None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        where = f"{self._url}, pid {self._proc.pid}" if self._proc and self._url else "not started"
        return f"MockProcess({where}, model={self.cfg.model!r}, cache={self.cfg.cache!r})"
