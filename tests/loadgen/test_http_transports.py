"""The transport contract over real loopback HTTP against the embedded mock, for both real
transports (h1, the default for http://, and aiohttp), chosen the way users choose them
(`endpoint.http_client`). Functional checks only: timing semantics are tested exactly through the
fake, in virtual time; h1's own edge cases are in test_h1_transport.py."""

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from auditkit.config import DatasetConfig, MockConfig
from auditkit.data import Dataset, SampleOrder, load_dataset
from auditkit.endpoints.openai import ChatAdapter, CompletionsAdapter
from auditkit.loadgen import AiohttpTransport, H1Transport, HttpTarget, run_phase
from auditkit.loadgen.choice import default_transport
from auditkit.mock import MockServer
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import RECORD_COLUMNS


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset(DatasetConfig())


@pytest.fixture(params=["h1", "aiohttp"])
def client(request: pytest.FixtureRequest) -> str:
    """`endpoint.http_client`: every test here runs once per real transport."""
    return str(request.param)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    cfg = MockConfig(slots=4, base_latency_ms=0.2, prefill_us_per_token=5, decode_us_per_token=50)
    with MockServer(cfg) as server:
        yield server


def _spec(scenario: str, n: int = 32, **kw: object) -> RunSpec:
    load = LoadPattern(scenario, **kw)  # type: ignore[arg-type]
    return RunSpec("p", SampleOrder.without_replacement(1), n, load)


def test_offline_records_every_query(mock: MockServer, dataset: Dataset, client: str) -> None:
    seen: list[tuple[int, int]] = []
    result = run_phase(
        _spec("offline", 48, max_concurrency=8),
        dataset,
        CompletionsAdapter("mock-llm", 8, 0.0, False),
        HttpTarget(mock.url, http_client=client),
        progress=lambda done, total: seen.append((done, total)),
    )
    records = result.records
    assert list(records.columns) == list(RECORD_COLUMNS)
    assert len(records) == 48 and (records["status"] == "ok").all()
    assert (records["scheduled_ns"] == 0).all()  # offline: everything queued at t=0
    assert (records["latency_ns"] == records["completed_ns"]).all()
    assert records["sample_index"].nunique() == 48
    assert records["output_tokens"].eq(8).all() and records["output_sha256"].str.len().eq(64).all()
    assert seen[-1] == (48, 48)
    assert result.summary.complete
    assert result.summary.score == pytest.approx(result.summary.samples_per_second, rel=1e-3)


def test_single_stream_issues_one_at_a_time(
    mock: MockServer, dataset: Dataset, client: str
) -> None:
    result = run_phase(
        _spec("single-stream", 20),
        dataset,
        CompletionsAdapter("mock-llm", 8, 0.0, False),
        HttpTarget(mock.url, http_client=client),
    )
    r = result.records.sort_values("sent_ns")
    # each query is sent after the previous one completed
    assert (r["sent_ns"].iloc[1:].to_numpy() >= r["completed_ns"].iloc[:-1].to_numpy()).all()


def test_streaming_records_ttft_before_completion(
    mock: MockServer, dataset: Dataset, client: str
) -> None:
    result = run_phase(
        _spec("offline", 16, max_concurrency=4),
        dataset,
        ChatAdapter("mock-llm", 16, 0.0, True),
        HttpTarget(mock.url, http_client=client),
    )
    r = result.records
    assert (r["status"] == "ok").all()
    assert (r["first_token_ns"] >= r["first_byte_ns"]).all()
    # never after completion; equal when the whole stream came in one read (h1's kernel stamps
    # time a read by its last packet: the in-process mock's events often arrive together)
    assert (r["ttft_ns"] <= r["latency_ns"]).all()
    assert result.summary.ttft is not None


def test_server_scenario_schedules_poisson_arrivals(
    mock: MockServer, dataset: Dataset, client: str
) -> None:
    result = run_phase(
        _spec("server", 40, target_qps=200.0, max_concurrency=16, seed=3),
        dataset,
        CompletionsAdapter("mock-llm", 8, 0.0, False),
        HttpTarget(mock.url, http_client=client),
    )
    r = result.records
    assert r["scheduled_ns"].is_monotonic_increasing
    assert (r["sent_ns"] >= r["scheduled_ns"]).all()
    assert (r["latency_ns"] == r["completed_ns"] - r["scheduled_ns"]).all()


def test_works_inside_a_running_event_loop(mock: MockServer, dataset: Dataset, client: str) -> None:
    """Jupyter runs a loop in the main thread; the blocking call must still work there."""

    async def inside() -> int:
        result = run_phase(
            _spec("offline", 8, max_concurrency=4),
            dataset,
            CompletionsAdapter("mock-llm", 4, 0.0, False),
            HttpTarget(mock.url, http_client=client),
        )
        return result.summary.completed

    assert asyncio.run(inside()) == 8


def test_http_errors_are_recorded_not_raised(dataset: Dataset, client: str) -> None:
    with MockServer(MockConfig(faults={"error_rate": 1.0})) as server:
        result = run_phase(
            _spec("offline", 8, max_concurrency=4),
            dataset,
            CompletionsAdapter("mock-llm", 4, 0.0, False),
            HttpTarget(server.url, http_client=client),
        )
    r = result.records
    assert (r["status"] == "http_error").all() and (r["http_status"] == 500).all()
    assert r["latency_ns"].isna().all()
    assert not result.summary.complete and result.summary.failed == 8


def test_explicit_transport_and_model_list_warm_up(
    mock: MockServer, dataset: Dataset, client: str
) -> None:
    result = run_phase(
        _spec("multi-stream", 16, samples_per_query=4),
        dataset,
        CompletionsAdapter("mock-llm", 4, 0.0, False),
        HttpTarget(mock.url, http_client=client),
        transport=H1Transport() if client == "h1" else AiohttpTransport(),
    )
    r = result.records
    assert (r["status"] == "ok").all() and r["query_id"].nunique() == 4
    assert result.summary.loop_lag_p99_ns is not None  # real time: the loop lag is measured


def test_refused_connection_is_a_connect_error(dataset: Dataset, client: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    result = run_phase(
        _spec("single-stream", 2),
        dataset,
        CompletionsAdapter("mock-llm", 4, 0.0, False),
        HttpTarget(f"http://127.0.0.1:{port}", connect_timeout_s=2.0, http_client=client),
    )
    assert (result.records["status"] == "connect_error").all()


def test_auto_takes_h1_for_http_and_aiohttp_for_https() -> None:
    assert isinstance(default_transport(HttpTarget("http://127.0.0.1:1")), H1Transport)
    assert isinstance(default_transport(HttpTarget("https://127.0.0.1:1")), AiohttpTransport)
    chosen = HttpTarget("http://127.0.0.1:1", http_client="aiohttp")
    assert isinstance(default_transport(chosen), AiohttpTransport)


def test_an_h1_process_never_imports_aiohttp() -> None:
    """aiohttp costs a fraction of a CPU-second to import: only a process that runs it pays,
    and h1 still sends aiohttp's User-Agent."""
    code = (
        "import sys\n"
        "import auditkit.cli, auditkit.runner\n"
        "from auditkit.loadgen.h1_transport import USER_AGENT\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp was imported'\n"
        "from aiohttp.http import SERVER_SOFTWARE\n"
        "assert USER_AGENT == SERVER_SOFTWARE, (USER_AGENT, SERVER_SOFTWARE)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
