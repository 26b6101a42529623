"""Failed exchanges through the fake: each ends as one record with the documented status and
error text (classify_error's rule), in virtual time."""

from collections.abc import Callable

import aiohttp
import pandas as pd
import pytest

from auditkit.data import Dataset, SampleOrder
from auditkit.endpoints.openai import ChatAdapter, CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.loadgen.fake import FakeRequest, FakeResponse, FakeTransport
from auditkit.plan import LoadPattern, RunSpec

OK = {"choices": [{"index": 0, "text": " ok"}], "usage": {"prompt_tokens": 1}}
COMPLETIONS = CompletionsAdapter("m", 4, 0.0, False)
CHAT_STREAM = ChatAdapter("m", 4, 0.0, True)


def records(
    answer: Callable[[FakeRequest], FakeResponse],
    dataset: Dataset,
    *,
    target: HttpTarget | None = None,
    adapter: CompletionsAdapter | ChatAdapter = COMPLETIONS,
    n: int = 2,
) -> pd.DataFrame:
    def handler(request: FakeRequest) -> FakeResponse:
        if request.method == "GET":
            return FakeResponse.json({"data": []})
        return answer(request)

    spec = RunSpec("p", SampleOrder.with_replacement(0), n, LoadPattern("single-stream"))
    target = target or HttpTarget("http://sut.invalid")
    result = run_phase(spec, dataset, adapter, target, transport=FakeTransport(handler))
    return result.records.sort_values("query_id").reset_index(drop=True)


def raising(exc: BaseException) -> Callable[[FakeRequest], FakeResponse]:
    def answer(request: FakeRequest) -> FakeResponse:
        raise exc

    return answer


@pytest.mark.parametrize(
    ("exc", "status", "error"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connect_error", "Connection refused"),
        (aiohttp.ConnectionTimeoutError("slow"), "connect_error", "connect timed out (slow)"),
        (ConnectionResetError("gone"), "protocol_error", "connection reset by the server (gone)"),
        (
            aiohttp.ServerDisconnectedError(),
            "protocol_error",
            "server closed the connection without a complete response",
        ),
        (ValueError("odd"), "protocol_error", "ValueError: odd"),
    ],
)
def test_exceptions_are_classified(
    exc: BaseException, status: str, error: str, dataset: Dataset
) -> None:
    r = records(raising(exc), dataset)
    assert (r["status"] == status).all()
    assert r["error"].str.contains(error, regex=False).all()
    assert r["first_byte_ns"].isna().all() and r["latency_ns"].isna().all()


def test_an_answer_slower_than_timeout_s_is_a_timeout_at_exactly_timeout_s(
    dataset: Dataset,
) -> None:
    target = HttpTarget("http://sut.invalid", timeout_s=1.0)
    r = records(lambda q: FakeResponse.json(OK, delay_s=30.0), dataset, target=target)
    assert (r["status"] == "timeout").all()
    assert (
        r["error"].iloc[0] == "no complete response within 1 s (endpoint.timeout_s) (TimeoutError)"
    )
    assert r["sent_ns"].tolist() == [0, 1_000_000_000]  # the next query went at the deadline


def test_a_body_trickling_past_timeout_s_is_a_timeout(dataset: Dataset) -> None:
    target = HttpTarget("http://sut.invalid", timeout_s=2.0)
    pieces = [(0.5, b"x")] * 10  # 5 s for the whole body

    def answer(q: FakeRequest) -> FakeResponse:
        return FakeResponse(200, stream=pieces)

    r = records(answer, dataset, target=target)
    assert (r["status"] == "timeout").all() and (r["first_byte_ns"] == r["sent_ns"]).all()


def test_http_errors_keep_a_bounded_snippet_of_the_body(dataset: Dataset) -> None:
    body = b'{"error": "overloaded"}' + b" pad" * 500
    r = records(lambda q: FakeResponse(503, body=body), dataset)
    assert (r["status"] == "http_error").all() and (r["http_status"] == 503).all()
    assert r["error"].iloc[0].startswith('HTTP 503: {"error": "overloaded"}')
    assert r["error"].str.len().max() <= 220


def test_redirects_are_not_followed(dataset: Dataset) -> None:
    r = records(lambda q: FakeResponse(302, {"Location": "https://elsewhere/v1"}), dataset)
    assert r["error"].iloc[0] == "HTTP 302 redirect to https://elsewhere/v1; use the final URL"


def test_oversized_responses_are_protocol_errors(dataset: Dataset) -> None:
    target = HttpTarget("http://sut.invalid", max_response_bytes=100)
    declared = records(lambda q: FakeResponse(200, body=b"x" * 101), dataset, target=target)
    assert declared["error"].iloc[0] == "response of 101 bytes exceeds the 100-byte limit"
    streamed = records(
        lambda q: FakeResponse(200, stream=[(0.0, b"x" * 60)] * 2), dataset, target=target
    )
    assert streamed["error"].iloc[0] == "response exceeds the 100-byte limit"


def test_malformed_json_is_a_protocol_error(dataset: Dataset) -> None:
    r = records(lambda q: FakeResponse(200, body=b'{"choices": ['), dataset)
    assert (r["status"] == "protocol_error").all()
    assert r["error"].str.startswith("response is not JSON").all()


def test_a_reset_in_the_middle_of_a_stream_is_a_protocol_error(dataset: Dataset) -> None:
    chunk = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'

    def answer(q: FakeRequest) -> FakeResponse:
        return FakeResponse(200, stream=[(0.01, chunk), (0.01, ConnectionResetError("mid"))])

    r = records(answer, dataset, adapter=CHAT_STREAM)
    assert r["status"].tolist() == ["protocol_error"] * 2
    assert r["error"].iloc[0] == "connection reset by the server (mid)"


@pytest.mark.parametrize(
    ("events", "error"),
    [
        (['{"choices": [{"index": 0, "delta": {"content": "hi"}}]}'], "without [DONE]"),
        (['{"error": {"message": "boom"}}', "[DONE]"], "error event in stream: boom"),
    ],
)
def test_broken_streams_are_protocol_errors(
    events: list[str], error: str, dataset: Dataset
) -> None:
    timed = [(0.01, e) for e in events]
    r = records(lambda q: FakeResponse.sse(timed), dataset, adapter=CHAT_STREAM)
    assert (r["status"] == "protocol_error").all()
    assert r["error"].str.contains(error, regex=False).all()


def test_credentials_echoed_in_error_bodies_are_redacted(dataset: Dataset) -> None:
    target = HttpTarget("http://sut.invalid", headers={"Authorization": "Bearer sk-very-secret"})

    def echo(q: FakeRequest) -> FakeResponse:
        return FakeResponse(401, body=f"bad key {q.headers['Authorization']}".encode())

    r = records(echo, dataset, target=target)
    assert not r["error"].str.contains("sk-very-secret").any()
    assert r["error"].str.startswith("HTTP 401: bad key").all()


def test_a_stream_answered_with_one_json_body_is_read_whole(dataset: Dataset) -> None:
    """A server that ignores `stream: true` (the default asks for it) and answers one JSON
    body: read as not streamed (no first-token time), not a broken stream; an HTML page is not
    JSON; an event stream (or an answer without a type) that is not one fails as a stream."""
    chat = {"choices": [{"index": 0, "message": {"content": " ok"}}], "usage": OK["usage"]}
    r = records(lambda q: FakeResponse.json(chat), dataset, adapter=CHAT_STREAM)
    assert (r["status"] == "ok").all(), r["error"].tolist()
    assert r["first_token_ns"].isna().all()
    html = FakeResponse(200, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>")
    r = records(lambda q: html, dataset, adapter=CHAT_STREAM)
    assert r["error"].str.startswith("response is not JSON").all(), r["error"].tolist()
    for headers in ({"Content-Type": "text/event-stream; charset=utf-8"}, {}):
        sse = FakeResponse(200, headers, b'{"choices": [')
        r = records(lambda q, sse=sse: sse, dataset, adapter=CHAT_STREAM)
        assert (r["error"] == "stream ended without [DONE] (truncated)").all()
