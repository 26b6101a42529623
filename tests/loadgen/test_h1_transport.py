"""H1Transport's own edge cases over real loopback TCP: a raw-socket HTTP/1.1 server that answers
each request with bytes a test scripts (split, delayed, chunked, closed), so what reaches the
client is exactly what the test says. The shared contract is in test_http_transports.py; a
keep-alive connection the server closes while it is idle is in test_reconnect.py (both
transports)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pandas as pd
import pytest

from auditkit.data import Dataset, SampleOrder
from auditkit.endpoints.openai import ChatAdapter, CompletionsAdapter
from auditkit.loadgen import HttpTarget, h1_transport, run_phase
from auditkit.loadgen.h1_transport import (
    KERNEL_TIMESTAMPS,
    H1Session,
    H1Transport,
    realtime_offset,
)
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import PhaseResult
from tests.loadgen.stamping import receive_stamping_on

COMPLETION = json.dumps(
    {"choices": [{"index": 0, "text": " hello", "finish_reason": "length"}], "usage": {}}
).encode()
MODELS = b'{"data": []}'
#: one step of a scripted answer: bytes to send, a pause (s), or CLOSE
CLOSE = object()
Step = bytes | float | object
Script = Callable[[str, int], list[Step]]


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


def chunked(*pieces: bytes, headers: str = "") -> list[Step]:
    steps: list[Step] = [f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{headers}\r\n".encode()]
    steps += [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces]
    return [*steps, b"0\r\n\r\n"]


class ScriptedServer:
    """HTTP/1.1 on 127.0.0.1; `script(request_line, n)` gives the steps answering the n-th
    request (from 0, over all connections; GETs of the warm-up get the model list)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        self.posts = 0
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                # each scripted write leaves at once (no Nagle delay against delayed ACKs)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.connections += 1
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with contextlib.suppress(OSError), conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next(
                    (int(v) for k, _, v in (x.partition(":") for x in lines[1:])
                     if k.strip().lower() == "content-length"), 0,
                )  # fmt: skip
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                if lines[0].startswith("GET"):
                    conn.sendall(answer(MODELS))
                    continue
                with self.lock:
                    n, self.posts = self.posts, self.posts + 1
                for step in self.script(lines[0], n):
                    if step is CLOSE:
                        return
                    if isinstance(step, float):
                        time.sleep(step)
                    else:
                        assert isinstance(step, bytes)
                        conn.sendall(step)

    def stop(self) -> None:
        self.listener.close()


@contextlib.contextmanager
def serving(script: Script) -> Iterator[ScriptedServer]:
    server = ScriptedServer(script)
    try:
        yield server
    finally:
        server.stop()


def run(
    server: ScriptedServer,
    dataset: Dataset,
    n: int = 4,
    *,
    concurrency: int = 1,
    stream: bool = False,
    **target: object,
) -> pd.DataFrame:
    scenario = "single-stream" if concurrency == 1 else "offline"
    load = LoadPattern(scenario, max_concurrency=concurrency)  # type: ignore[arg-type]
    spec = RunSpec("p", SampleOrder.with_replacement(0), n, load)
    adapter = ChatAdapter("m", 4, 0.0, True) if stream else CompletionsAdapter("m", 4, 0.0, False)
    http = HttpTarget(server.url, http_client="h1", **target)  # type: ignore[arg-type]
    result = run_phase(spec, dataset, adapter, http)
    return result.records.sort_values("query_id").reset_index(drop=True)


def test_connection_close_answers_open_a_new_connection_each(dataset: Dataset) -> None:
    with serving(lambda line, n: [answer(COMPLETION, "Connection: close"), CLOSE]) as server:
        r = run(server, dataset, 4)
    assert (r["status"] == "ok").all()
    # the warm-up's connection carries query 0, then one new connection per query
    assert server.connections == 4


def test_keep_alive_reuses_one_connection(dataset: Dataset) -> None:
    with serving(lambda line, n: [answer(COMPLETION)]) as server:
        r = run(server, dataset, 6)
    assert (r["status"] == "ok").all() and server.connections == 1


def test_chunked_body_split_at_every_byte_boundary(dataset: Dataset) -> None:
    """Partial reads: headers and a chunked body arrive a few bytes at a time."""

    def script(line: str, n: int) -> list[Step]:
        steps = chunked(COMPLETION[:10], COMPLETION[10:])
        whole = b"".join(s for s in steps if isinstance(s, bytes))
        return [step for i in range(0, len(whole), 7) for step in (whole[i : i + 7], 0.0005)]

    with serving(script) as server:
        r = run(server, dataset, 3)
    assert (r["status"] == "ok").all() and r["output_sha256"].nunique() == 1


def test_close_delimited_and_gzip_bodies(dataset: Dataset) -> None:
    packed = gzip.compress(COMPLETION)

    def script(line: str, n: int) -> list[Step]:
        if n % 2:
            head = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
            return [head + COMPLETION, CLOSE]
        return [answer(packed, "Content-Encoding: gzip")]

    with serving(script) as server:
        r = run(server, dataset, 4)
    assert (r["status"] == "ok").all() and r["output_sha256"].nunique() == 1


def test_a_truncated_body_is_a_protocol_error(dataset: Dataset) -> None:
    cut = answer(COMPLETION)[:-5]
    with serving(lambda line, n: [cut, CLOSE]) as server:
        r = run(server, dataset, 2)
    assert (r["status"] == "protocol_error").all()
    assert (r["error"] == "server closed the connection without a complete response").all()


def test_5xx_keeps_the_connection_and_a_snippet(dataset: Dataset) -> None:
    body = b'{"error": "overloaded"}' + b" pad" * 500
    with serving(lambda line, n: [answer(body, status="503 Service Unavailable")]) as server:
        r = run(server, dataset, 3)
    assert (r["status"] == "http_error").all() and (r["http_status"] == 503).all()
    assert r["error"].str.startswith('HTTP 503: {"error": "overloaded"}').all()
    assert server.connections == 1  # a complete answer leaves the connection reusable


def test_malformed_status_line_is_a_protocol_error(dataset: Dataset) -> None:
    with serving(lambda line, n: [b"HTTP/1.1 2x0 WHAT\r\n\r\n", CLOSE]) as server:
        r = run(server, dataset, 2)
    assert (r["status"] == "protocol_error").all()
    assert r["error"].str.startswith("malformed HTTP response").all()


def test_slow_headers_time_out_at_timeout_s(dataset: Dataset) -> None:
    with serving(lambda line, n: [0.6, answer(COMPLETION)]) as server:
        start = time.perf_counter()
        r = run(server, dataset, 2, timeout_s=0.2)
        elapsed = time.perf_counter() - start
    assert (r["status"] == "timeout").all() and r["first_byte_ns"].isna().all()
    assert r["error"].iloc[0].startswith("no complete response within 0.2 s")
    service = (r["completed_ns"] - r["sent_ns"]) / 1e9
    assert service.between(0.2, 0.35).all()
    assert elapsed < 1.5  # the client gave up; it did not wait for the answers


def test_streamed_events_time_the_first_token_and_bound_memory(dataset: Dataset) -> None:
    def event(text: str) -> bytes:
        chunk = {"choices": [{"index": 0, "delta": {"content": text}}]}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def script(line: str, n: int) -> list[Step]:
        steps = chunked(event("hi"), event(" there"), b"data: [DONE]\n\n",
                        headers="Content-Type: text/event-stream\r\n")  # fmt: skip
        return [steps[0], steps[1], 0.05, *steps[2:]]

    with serving(script) as server:
        r = run(server, dataset, 2, stream=True)
    assert (r["status"] == "ok").all() and (r["output_tokens"] == 2).all()
    # the first token came with the first event, ~50 ms before the rest
    assert ((r["completed_ns"] - r["first_token_ns"]) > 40_000_000).all()

    big = b"x" * 65536
    with serving(lambda line, n: chunked(*[big] * 64)) as server:  # 4 MiB, chunked
        r = run(server, dataset, 1, max_response_bytes=1 << 20)
    assert r["error"].tolist() == ["response exceeds the 1048576-byte limit"]


def test_the_pool_never_opens_more_than_pool_size(dataset: Dataset) -> None:
    with serving(lambda line, n: [0.01, answer(COMPLETION)]) as server:
        r = run(server, dataset, 24, concurrency=4)
    assert (r["status"] == "ok").all() and server.connections == 4


def test_https_is_refused() -> None:
    with pytest.raises(ValueError, match="plain http://"):
        H1Session(HttpTarget("https://127.0.0.1:1"), 1)


def test_a_header_with_a_line_break_is_bad_input() -> None:
    """h1 writes header text as given: a CR or LF would smuggle text into the request."""
    from pydantic import ValidationError

    from auditkit.config import EndpointConfig

    with pytest.raises(ValidationError, match="line break"):
        EndpointConfig(headers={"X-Trace": "a\r\nX-Injected: 1"})


# --- receive times: kernel stamps (SO_TIMESTAMPNS) and the loop's clock ----------------------

kernel_only = pytest.mark.skipif(not KERNEL_TIMESTAMPS, reason="kernel receive stamps: Linux")


def _phase(server: ScriptedServer, dataset: Dataset, transport: H1Transport) -> PhaseResult:
    load = LoadPattern("offline", max_concurrency=2)
    spec = RunSpec("p", SampleOrder.with_replacement(0), 6, load)
    adapter = CompletionsAdapter("m", 4, 0.0, False)
    return run_phase(spec, dataset, adapter, HttpTarget(server.url), transport=transport)


@pytest.mark.timing
@kernel_only
def test_an_answer_the_loop_reads_late_is_timed_when_it_arrived() -> None:
    """The loop is blocked while the answer arrives: the kernel's stamp says when it came; on
    the loop's clock the transport cannot tell (the driver then reads its clock, late)."""

    async def exchange(kernel: bool) -> tuple[int, int | None, int]:
        transport = H1Transport(kernel_timestamps=kernel)
        async with transport.session(HttpTarget(server.url), pool_size=1, warm=1) as session:
            asyncio.get_running_loop().call_soon(time.sleep, 0.3)  # runs once the request is out
            sent = time.perf_counter_ns()
            async with session.post(server.url + "/v1/completions", b"{}") as resp:
                await resp.read()
                return sent, resp.received_ns, time.perf_counter_ns()

    with serving(lambda line, n: [answer(COMPLETION)]) as server:
        sent, arrived, read = asyncio.run(exchange(True))
        assert arrived is not None and read - sent >= 300_000_000
        assert 0 < arrived - sent < 150_000_000  # answered at once, while the loop slept
        assert asyncio.run(exchange(False))[1] is None


@kernel_only
def test_phase_json_says_which_clock_timed_the_answers(dataset: Dataset) -> None:
    # Linux switches receive timestamping on through deferred work: held on here, or a loaded
    # machine can finish this short phase before it (all answers then on the loop's clock:
    # "loop", as seen beside a CPU hog)
    with receive_stamping_on(), serving(lambda line, n: [answer(COMPLETION)]) as server:
        kernel = _phase(server, dataset, H1Transport())
        loop = _phase(server, dataset, H1Transport(kernel_timestamps=False))
    # "kernel+loop" too: a first packet can still arrive before the switch (those reads take
    # the loop's clock, and phase.json says so)
    assert kernel.summary.timestamp_source in ("kernel", "kernel+loop")
    assert loop.summary.timestamp_source == "loop"
    for phase in (kernel, loop):
        r = phase.records
        assert (r["status"] == "ok").all()
        assert (r["sent_ns"] < r["first_byte_ns"]).all()
        assert (r["first_byte_ns"] <= r["completed_ns"]).all()


def test_without_kernel_stamps_the_loop_clock_times_the_answers(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fallbacks: a platform without SO_TIMESTAMPNS uses uvloop's transport; a socket whose
    reads carry no stamp (the option set is another one here) reads the loop's clock."""
    with serving(lambda line, n: [answer(COMPLETION)]) as server:
        monkeypatch.setattr(h1_transport, "_SO_TIMESTAMPNS", socket.SO_KEEPALIVE)
        monkeypatch.setattr(h1_transport, "KERNEL_TIMESTAMPS", True)
        unstamped = _phase(server, dataset, H1Transport())
        monkeypatch.setattr(h1_transport, "KERNEL_TIMESTAMPS", False)
        elsewhere = _phase(server, dataset, H1Transport())
    for phase in (unstamped, elsewhere):
        assert phase.summary.timestamp_source == "loop"
        r = phase.records
        assert (r["status"] == "ok").all()
        assert (r["sent_ns"] < r["first_byte_ns"]).all()
        assert (r["first_byte_ns"] <= r["completed_ns"]).all()


def test_the_realtime_offset_puts_a_wall_clock_reading_on_perf_counter() -> None:
    offset, uncertainty = realtime_offset()
    before = time.perf_counter_ns()
    real = time.time_ns()
    after = time.perf_counter_ns()
    slack = uncertainty + 1_000_000  # a preempted bracket on a loaded machine
    assert before - slack <= real - offset <= after + slack
