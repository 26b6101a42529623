"""Timing fidelity: auditkit's per-query latencies against wrk's on a fixed-latency endpoint.

A client near its ceiling reads latency late (its loop is busy when the answer arrives), and the
audit then measures the client. This starts a fixed-latency endpoint in its own process with a
service time of `--latency-ms`: by default (`--server delay`) a minimal HTTP/1.1 server (asyncio
protocol + httptools, each answer written by a timer), whose own cost stays far below the rate
asked of it; `--server mock` uses the mock SUT instead (no jitter, no per-token time, a slot
per connection), which on a small shared machine becomes the bottleneck at ~3k req/s. Then it
runs wrk (`--latency` percentiles from its own histogram, via a Lua `done` hook, in µs) and
auditkit's offline phase (service time per query: completed_ns - sent_ns) alternately,
`--rounds` times each, with the same connections in flight. It prints each round's median and
p99 for both, and last `median diff = <ms> ms, p99 diff = <ms> ms` (auditkit minus wrk,
medians over rounds; the goals are <= 0.1 ms and <= 0.5 ms; exit 0 when both are met).

Needs wrk (Debian package `wrk`; installed with apt-get when missing and running as root).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from auditkit.config import MockConfig
from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.mock.process import MockProcess
from auditkit.plan import LoadPattern, RunSpec

PROMPT = "prompt number 1"
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"model": "mock-llm", "prompt": "%s", "max_tokens": 4, "temperature": 0.0}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("fidelity %%d %%d %%d\\n", latency:percentile(50),
                         latency:percentile(99), summary.requests))
end
"""


RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
COMPLETION = (
    b'{"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "mock-llm", '
    b'"choices": [{"index": 0, "text": " a b c d", "finish_reason": "length"}], '
    b'"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}'
)


def serve_delayed(port_file: str, latency_ms: float) -> None:
    """The fixed-latency endpoint (a child process): every request answered `latency_ms`
    after its last byte arrived, by a timer; GET and POST alike."""
    import asyncio

    import httptools

    answer = RESPONSE % (len(COMPLETION), COMPLETION)
    delay = latency_ms / 1e3

    class Delayed(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.loop = asyncio.get_running_loop()

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            self.loop.call_later(delay, self._answer)

        def _answer(self) -> None:
            if not self.transport.is_closing():
                self.transport.write(answer)  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Delayed, "127.0.0.1", 0, backlog=1024)
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        await server.serve_forever()

    asyncio.run(main())


def start_delayed(latency_ms: float, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = folder / "port"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port_file), "--latency-ms", str(latency_ms)]
    )
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return proc, f"http://127.0.0.1:{port_file.read_text()}"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the fixed-latency server did not start")


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        print("wrk not found; installing Debian's wrk", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
        path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is needed (Debian package wrk)")
    return path


def wrk_latency(wrk: str, url: str, seconds: float, connections: int, folder: Path) -> tuple:
    """wrk's (median ms, p99 ms, requests) at `connections` in flight."""
    script = folder / "fidelity.lua"
    script.write_text(WRK_SCRIPT % PROMPT)
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "-s", str(script),
         url + "/v1/completions"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        if line.startswith("fidelity "):
            p50, p99, n = (int(x) for x in line.split()[1:])
            return p50 / 1e3, p99 / 1e3, n
    raise RuntimeError(f"no percentiles in wrk's output:\n{out}")


def auditkit_latency(url: str, n: int, connections: int, client: str) -> tuple:
    """auditkit's (median ms, p99 ms, requests): service time of an offline phase's queries."""
    adapter = CompletionsAdapter("mock-llm", 4, 0.0, False)
    dataset = Dataset("fidelity", (Sample(0, PROMPT),))
    load = LoadPattern("offline", max_concurrency=connections)
    spec = RunSpec("fidelity", SampleOrder.with_replacement(0), n, load)
    result = run_phase(spec, dataset, adapter, HttpTarget(url, http_client=client))
    r = result.records
    assert (r["status"] == "ok").all(), r["error"].dropna().head()
    service = (r["completed_ns"] - r["sent_ns"]).to_numpy(dtype=np.int64) / 1e6
    return float(np.percentile(service, 50)), float(np.percentile(service, 99)), len(service)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the mock's service time")
    parser.add_argument("--connections", type=int, default=64, help="in flight, both clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="per round and client")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--http-client", default="auto", choices=("auto", "h1", "aiohttp"))
    parser.add_argument("--server", default="delay", choices=("delay", "mock"))
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the child: port file
    args = parser.parse_args()
    if args.serve:
        serve_delayed(args.serve, args.latency_ms)
        return 0
    wrk = find_wrk()
    cfg = MockConfig(
        slots=max(args.connections, 1),
        base_latency_ms=args.latency_ms,
        jitter_cv=0.0,
        prefill_us_per_token=0.0,
        decode_us_per_token=0.0,
    )
    rate = args.connections / (args.latency_ms / 1e3)
    n = max(200, int(rate * args.seconds))
    diffs50: list[float] = []
    diffs99: list[float] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="auditkit-fidelity-")))
        if args.server == "mock":
            url = stack.enter_context(MockProcess(cfg)).url
        else:
            proc, url = start_delayed(args.latency_ms, tmp)
            stack.callback(proc.wait, 10)
            stack.callback(proc.terminate)
        auditkit_latency(url, min(n, 2000), args.connections, args.http_client)  # warm-up
        for i in range(args.rounds):
            w50, w99, wn = wrk_latency(wrk, url, args.seconds, args.connections, tmp)
            a50, a99, an = auditkit_latency(url, n, args.connections, args.http_client)
            diffs50.append(a50 - w50)
            diffs99.append(a99 - w99)
            print(
                f"round {i + 1}: wrk median {w50:.3f} ms p99 {w99:.3f} ms ({wn} requests); "
                f"auditkit median {a50:.3f} ms p99 {a99:.3f} ms ({an}); "
                f"diff {diffs50[-1]:+.3f} / {diffs99[-1]:+.3f} ms",
                flush=True,
            )
    d50, d99 = statistics.median(diffs50), statistics.median(diffs99)
    print(
        f"{args.connections} in flight x {args.latency_ms:g} ms (~{rate:.0f} req/s), "
        f"client {args.http_client}, server {args.server}, {args.rounds} rounds"
    )
    print(f"median diff = {d50:+.3f} ms, p99 diff = {d99:+.3f} ms")
    return 0 if abs(d50) <= 0.1 and abs(d99) <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
