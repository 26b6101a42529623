"""Shared helpers for the reliability suite: tiny misbehaving HTTP servers and CLI runners.

The servers are real sockets on 127.0.0.1 (http.server in a thread, plain and TLS, plus a raw
TCP "wrong protocol" listener) so the client sees exactly what a broken endpoint sends. The
first path segment picks the behaviour: `http://127.0.0.1:P/<mode>` is the base URL a case
passes to `--url`, and the client appends `/v1/models` and `/v1/completions` to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from auditkit import cli

AUDITKIT = [sys.executable, "-m", "auditkit.cli"]
MODEL = "tiny-model"
MIB = 1024 * 1024
HUGE_BYTES = 64 * MIB
# how long a hanging handler waits at most (tests use timeouts far below this)
HANG_LIMIT_S = 30.0


def completion(text: str = "hello world") -> dict[str, Any]:
    """A minimal valid OpenAI completions response."""
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": MODEL,
        "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


class _Handler(BaseHTTPRequestHandler):
    """One behaviour per first path segment (the `mode`)."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    # --- helpers ---------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), extra=extra)

    def _mode_and_rest(self) -> tuple[str, str]:
        parts = self.path.split("/", 2)
        mode = parts[1] if len(parts) > 1 else ""
        rest = "/" + parts[2] if len(parts) > 2 else "/"
        return mode, rest

    def _hang(self) -> None:
        deadline = time.monotonic() + HANG_LIMIT_S
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            time.sleep(0.05)
        self.close_connection = True

    def _stream_bytes(self, total: int, chunk: bytes, ctype: str, length: bool) -> None:
        """Send `total` bytes made of `chunk` (lazily: the server's memory stays small)."""
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(total))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            while sent < total:
                piece = chunk[: total - sent]
                if length:
                    self.wfile.write(piece)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            if not length:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client gave up, as it should
        self.close_connection = True

    # --- verbs -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        mode, rest = self._mode_and_rest()
        self.server.seen_auth.append(self.headers.get("Authorization", ""))
        if rest != "/v1/models":
            self._json(200, {"status": "ok"})
            return
        if mode == "models-redirect":
            self._send(301, b"", extra={"Location": "https://elsewhere.invalid/v1/models"})
            return
        if mode == "models-401":
            self._json(401, {"error": {"message": "invalid api key"}})
            return
        entry: dict[str, Any] = {"id": MODEL, "object": "model"}
        if mode.startswith("echo"):
            entry["note"] = f"you sent {self.headers.get('Authorization', '')}"
        self._json(200, {"object": "list", "data": [entry]})

    def do_POST(self) -> None:
        mode, _rest = self._mode_and_rest()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        auth = self.headers.get("Authorization", "")
        self.server.seen_auth.append(auth)
        stream = bool(body.get("stream"))
        if mode == "ok":
            self._json(200, completion())
        elif mode == "echo":
            # the key in the body, in a header and in the text: none of it may reach the disk
            self._json(
                200, completion(f"echo {auth} {body.get('prompt', '')[:20]}"), {"X-Echo": auth}
            )
        elif mode == "echo-error":
            self._json(500, {"error": {"message": f"upstream rejected header {auth}"}})
        elif mode == "nonjson":
            self._send(200, b"<html><body>Bad Gateway</body></html>", "text/html")
        elif mode == "wrongshape":
            self._json(200, {"result": "hello", "status": "done"})
        elif mode == "emptychoices":
            self._json(200, {"id": "x", "choices": []})
        elif mode == "http400":
            self._json(400, {"error": {"message": "max_tokens is too large for this model"}})
        elif mode == "http503":
            self._send(503, b"Service Unavailable: upstream overloaded", "text/plain")
        elif mode == "redirect":
            self._send(307, b"", extra={"Location": "http://127.0.0.1:9/v1/completions"})
        elif mode == "hang":
            self._hang()
        elif mode == "huge-cl":
            self._stream_bytes(HUGE_BYTES, b"x" * MIB, "application/json", length=True)
        elif mode == "huge-chunked":
            self._stream_bytes(HUGE_BYTES, b"x" * MIB, "application/json", length=False)
        elif mode == "huge-sse" or (mode == "huge" and stream):
            event = b'data: {"choices":[{"index":0,"text":"' + b"y" * 4000 + b'"}]}\n\n'
            self._stream_bytes(HUGE_BYTES, event * 64, "text/event-stream", length=False)
        else:
            self._json(404, {"error": {"message": f"no mode {mode}"}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # many requests arrive at once in offline phases
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int]) -> None:
        super().__init__(addr, _Handler)
        self.stopping = threading.Event()
        self.seen_auth: list[str] = []


@dataclass
class Served:
    """A running tiny server: `url(mode)` is the base URL of a behaviour."""

    server: _Server
    scheme: str = "http"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, mode: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{mode}"


def _serve(server: _Server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    return thread


@pytest.fixture(scope="session")
def tiny() -> Iterator[Served]:
    """The plain-HTTP misbehaving server."""
    server = _Server(("127.0.0.1", 0))
    thread = _serve(server)
    yield Served(server)
    server.stopping.set()
    server.shutdown()
    thread.join(5)


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """An openssl-generated self-signed certificate for 127.0.0.1 (cert, key)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The same server behind TLS with a self-signed (untrusted) certificate."""
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    server = _Server(("127.0.0.1", 0))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = _serve(server)
    yield Served(server, scheme="https")
    server.stopping.set()
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="session")
def wrong_protocol() -> Iterator[str]:
    """A TCP port that answers with an SSH banner and hangs up (the "wrong port" case)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.1)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with contextlib.suppress(OSError):
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
                conn.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(2)
    sock.close()


def closed_port() -> int:
    """A 127.0.0.1 port with nothing listening (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CliResult:
    """What one CLI invocation did."""

    code: int
    stdout: str
    stderr: str
    seconds: float = 0.0
    stderr_lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stderr_lines = [line for line in self.stderr.splitlines() if line.strip()]


@pytest.fixture
def run_inproc(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Run `auditkit.cli.main(argv)` in this process (fast); SIGTERM's handler is restored."""
    saved = signal.getsignal(signal.SIGTERM)

    def run(argv: list[str]) -> CliResult:
        capsys.readouterr()
        start = time.monotonic()
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's usage errors exit from parse_args
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return CliResult(code, out, err, time.monotonic() - start)

    yield run
    signal.signal(signal.SIGTERM, saved)


def run_subprocess(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120, cwd: Any = None
) -> CliResult:
    """Run the real `auditkit` command in a child process."""
    start = time.monotonic()
    proc = subprocess.run(
        [*AUDITKIT, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
