"""Stale keep-alive connections are the client's problem, not the SUT's (docs/reliability.md).

A request that meets a connection the server closed while it sat idle, before any of the request
was written, goes out on a fresh connection: an ok record plus a reconnect, never a failure. A
request the server could have read stays a failure and is never sent twice, with one exception
in the h1 transport: a reused connection the server closes cleanly (FIN) without a byte of
answer, as llama.cpp's server does after streamed answers; that request goes out once more on a
fresh connection, counted as a reconnect.

The server here is a raw-socket HTTP/1.1 server on 127.0.0.1 that answers with keep-alive and
closes its idle connections when told, the way a keep-alive timeout does. The tests tell it to from
inside the client's connector while the client's event loop is blocked, and it returns only once
the client's kernel has acknowledged each FIN: so the close has always reached the client and the
loop has never seen it. No timing races.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from auditkit import aio
from auditkit.config import MockConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.loadgen import AiohttpTransport, H1Transport, HttpTarget, Transport
from auditkit.loadgen.aiohttp_transport import WRITE_DEFERRED, CountingConnector, LiveConnector
from auditkit.loadgen.driver import PhaseDriver
from auditkit.loadgen.h1_transport import H1Exchange, H1Session, _Connection
from auditkit.mock import MockServer
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import PhaseResult

COMPLETION = json.dumps(
    {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "mock-llm",
        "choices": [{"index": 0, "text": " hello", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(COMPLETION)}\r\n\r\n".encode()
    + COMPLETION
)
_FIN_WAIT1 = 4  # Linux tcpi_state: our FIN sent, not yet acknowledged
_LINGER_ZERO = struct.pack("ii", 1, 0)

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_INFO"), reason="needs Linux TCP_INFO to know the FIN has arrived"
)


class IdleClosingServer:
    """HTTP/1.1 on 127.0.0.1: answers every request with `COMPLETION` (keep-alive), and closes
    its idle connections on `close_idle()`. `reset_posts`: read each POST, then drop the
    connection with a RST and no answer (the request did reach the server). `fin_reused_posts`:
    a POST that is not its connection's first request gets a FIN and no answer (as llama.cpp's
    server does, now and then, after a streamed answer)."""

    def __init__(self, *, reset_posts: bool = False, fin_reused_posts: bool = False) -> None:
        self.reset_posts = reset_posts
        self.fin_reused_posts = fin_reused_posts
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        self.idle: set[socket.socket] = set()
        self.seen: list[str] = []  # request lines the server read, in order
        self.closed_idle = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # the listener closed: stop
            while True:
                conn, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> str | None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buf += chunk
            with self.lock:
                self.idle.discard(conn)
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            (
                int(v)
                for k, _, v in (x.partition(":") for x in lines)
                if k.lower() == "content-length"
            ),
            0,
        )
        while len(body) < length:
            body += conn.recv(65536)
        return lines[0]

    def _serve(self, conn: socket.socket) -> None:
        served = 0
        with contextlib.suppress(OSError):
            while (line := self._read_request(conn)) is not None:
                served += 1
                if self.fin_reused_posts and line.startswith("POST") and served > 1:
                    with self.lock:
                        self.seen.append(line)
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                    return
                reset = self.reset_posts and line.startswith("POST")
                with self.lock:
                    self.seen.append(line)
                    if not reset:
                        self.idle.add(conn)  # before answering: idle once the client has it
                if reset:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                    conn.close()
                    return
                conn.sendall(ANSWER)

    def close_idle(self) -> None:
        """Close every idle connection (FIN, then close: a request arriving later gets a RST and
        is never read); return once the client's kernel has acknowledged each FIN."""
        with self.lock:
            conns, self.idle = list(self.idle), set()
        for conn in conns:
            conn.shutdown(socket.SHUT_RDWR)
            deadline = time.monotonic() + 10
            while conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == _FIN_WAIT1:
                assert time.monotonic() < deadline, "the client never acknowledged the FIN"
                time.sleep(0.0005)
            conn.close()
        self.closed_idle += len(conns)

    def stop(self) -> None:
        self.listener.close()


@pytest.fixture
def server() -> Iterator[IdleClosingServer]:
    srv = IdleClosingServer()
    yield srv
    srv.stop()


#: The two guards (aiohttp_transport.CountingConnector): resend a write refused whole (the
#: default before Python 3.12), or check a reused connection before writing (3.12+).
RESEND = pytest.param(
    (CountingConnector, True),
    id="resend-refused-write",
    marks=pytest.mark.skipif(
        not WRITE_DEFERRED, reason="Python >= 3.12 writes before the loop can see the close"
    ),
)
CHECK = pytest.param((LiveConnector, False), id="check-before-write")
#: auditkit's own client checks a reused connection before writing, always
H1 = pytest.param((None, False), id="h1")
Guard = tuple[type[CountingConnector] | None, bool]


def _transport(connector: type[CountingConnector] | None, resend: bool) -> Transport:
    if connector is None:
        return H1Transport()
    transport = AiohttpTransport()
    transport.connector_class = connector
    transport.resend_refused_writes = resend
    return transport


def _closes_before_reuse(server: IdleClosingServer, guard: Guard) -> Transport:
    """The server closes its idle connections as each request asks the pool for one."""
    base, resend = guard
    if base is None:

        class Session(H1Session):
            async def acquire(self, exchange: H1Exchange, deadline: float) -> _Connection:
                server.close_idle()  # blocks the loop: it cannot see the close before reuse
                return await super().acquire(exchange, deadline)

        transport = H1Transport()
        transport.session_class = Session
        return transport

    class Connector(base):  # type: ignore[valid-type,misc]
        async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
            server.close_idle()  # blocks the loop: it cannot see the close before reuse
            return await super().connect(req, traces, timeout)

    return _transport(Connector, resend)


def _run(
    transport: Transport, url: str, dataset: Dataset, n: int, concurrency: int = 1
) -> tuple[PhaseResult, PhaseDriver]:
    """Single-stream, or offline at `concurrency` (each query then reuses a warm-up
    connection)."""
    scenario = "single-stream" if concurrency == 1 else "offline"
    load = LoadPattern(scenario, max_concurrency=concurrency)  # type: ignore[arg-type]
    spec = RunSpec("p", SampleOrder.without_replacement(1), n, load)
    driver = PhaseDriver(
        spec, dataset, CompletionsAdapter("mock-llm", 4, 0.0, False), HttpTarget(url), transport
    )

    async def phase() -> PhaseResult:
        interrupted = await driver.run(asyncio.Event())
        return driver.result(interrupted, datetime.now(UTC).isoformat())

    return aio.wait(aio.submit(phase())), driver


def test_the_default_guard_is_the_one_this_python_needs() -> None:
    transport = AiohttpTransport()
    if WRITE_DEFERRED:
        assert transport.connector_class is CountingConnector and transport.resend_refused_writes
    else:
        assert transport.connector_class is LiveConnector and not transport.resend_refused_writes


@pytest.mark.parametrize("guard", [RESEND, CHECK, H1])
def test_a_pooled_connection_the_server_closed_is_never_a_failure(
    server: IdleClosingServer, dataset: Dataset, guard: Guard
) -> None:
    result, driver = _run(_closes_before_reuse(server, guard), server.url, dataset, 6)
    r = result.records
    assert (r["status"] == "ok").all() and r["error"].isna().all()
    assert result.summary.complete
    # every query found its pooled connection dead (the warm-up's, then the previous query's)
    assert driver.reconnects == 6 and server.closed_idle == 6
    # the server read each query exactly once: nothing reached it on a dead connection
    assert [line.split()[0] for line in server.seen] == ["GET"] + ["POST"] * 6
    # timed like any query: latency from the schedule
    assert (r["latency_ns"] == r["completed_ns"] - r["scheduled_ns"]).all()


def test_without_a_guard_the_same_server_fails_the_query(
    server: IdleClosingServer, dataset: Dataset
) -> None:
    """The control: what the guards prevent (aiohttp alone writes to the dead socket, or has
    its deferred write refused, and does not resend a POST)."""
    transport = _closes_before_reuse(server, (CountingConnector, False))
    result, driver = _run(transport, server.url, dataset, 3)
    # query 0 reuses the warm-up's connection, query 2 query 1's; query 1 gets a new one (the
    # failed exchange closed its connection)
    assert list(result.records["status"]) == ["protocol_error", "ok", "protocol_error"]
    assert driver.reconnects == 0


@pytest.mark.skipif(
    not WRITE_DEFERRED, reason="Python >= 3.12 writes the request at once: no such gap"
)
def test_a_close_seen_between_pick_and_deferred_write_is_resent(
    server: IdleClosingServer, dataset: Dataset
) -> None:
    """The connection passed the check, then the close arrived before the deferred write: the
    write is refused whole and the request goes out again."""

    class Connector(LiveConnector):
        async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
            conn = await super().connect(req, traces, timeout)
            if req.method == "POST":
                server.close_idle()  # the connection just handed out is idle to the server
            return conn

    result, driver = _run(_transport(Connector, True), server.url, dataset, 5)
    assert (result.records["status"] == "ok").all() and result.summary.complete
    assert driver.reconnects == 5
    assert [line.split()[0] for line in server.seen] == ["GET"] + ["POST"] * 5


@pytest.mark.parametrize("guard", [RESEND, CHECK, H1])
def test_a_reset_after_the_server_read_the_request_stays_a_failure(
    dataset: Dataset, guard: Guard
) -> None:
    """On a reused connection, with no answer byte: still the server's failure (it read it)."""
    srv = IdleClosingServer(reset_posts=True)
    try:
        result, driver = _run(_transport(*guard), srv.url, dataset, 4, concurrency=4)
    finally:
        srv.stop()
    r = result.records
    assert (r["status"] == "protocol_error").all()
    assert r["error"].str.contains("reset|closed", regex=True).all()
    assert driver.reconnects == 0
    # four warm-up GETs opened the connections the POSTs reused; each POST was sent once
    assert [line.split()[0] for line in srv.seen] == ["GET"] * 4 + ["POST"] * 4


def test_h1_sends_again_what_a_reused_connection_closed_on_without_an_answer(
    dataset: Dataset,
) -> None:
    """A clean close (FIN, no byte of answer) of a reused connection: sent once more on a fresh
    connection and counted as a reconnect; on the fresh one the same close would be a failure."""
    srv = IdleClosingServer(fin_reused_posts=True)
    try:
        result, driver = _run(H1Transport(), srv.url, dataset, 4)
    finally:
        srv.stop()
    assert (result.records["status"] == "ok").all() and result.summary.complete
    assert driver.reconnects == 4
    assert [line.split()[0] for line in srv.seen] == ["GET"] + ["POST"] * 8


@pytest.mark.parametrize("guard", [CHECK, H1])
def test_mock_reset_fault_is_a_failure_not_a_reconnect(dataset: Dataset, guard: Guard) -> None:
    with MockServer(MockConfig(faults={"reset_rate": 1.0})) as mock:  # type: ignore[arg-type]
        result, driver = _run(_transport(*guard), mock.url, dataset, 4, concurrency=4)
    r = result.records
    assert (r["status"] == "protocol_error").all()
    assert r["error"].str.contains("reset").all()
    assert driver.reconnects == 0
