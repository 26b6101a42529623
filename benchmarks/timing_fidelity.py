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
`--compare` adds, in the same rounds, h1 with the loop's clock instead of the kernel's receive
stamps (`H1Transport(kernel_timestamps=False)`, how h1 timed answers before), so the two are
measured under the same load; each round prints the load average.

The delay endpoint also times itself (perf_counter, from a POST parsed to its answer written;
`GET /fidelity/stats` returns the median and p99 since the last call, and clears them), and
each client's line says how far above the endpoint's own time it read: a yardstick that does
not depend on wrk being on time (both include the loopback both ways and the endpoint's own
delay in reading a request).

Needs wrk (Debian package `wrk`; installed with apt-get when missing and running as root).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from auditkit.config import MockConfig
from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.loadgen.h1_transport import H1Transport
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
    own: list[int] = []  # ns from each POST parsed to its answer written

    class Delayed(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.loop = asyncio.get_running_loop()
            self.url = b""

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_message_complete(self) -> None:
            if self.url == b"/fidelity/stats":
                times = sorted(own)
                own.clear()

                def pick(q: float) -> float:
                    return times[min(int(len(times) * q), len(times) - 1)] / 1e6 if times else 0.0

                body = json.dumps({"p50": pick(0.5), "p99": pick(0.99), "n": len(times)})
                self.transport.write(RESPONSE % (len(body), body.encode()))  # type: ignore[attr-defined]
                return
            post = self.parser.get_method() == b"POST"
            self.loop.call_later(delay, self._answer, time.perf_counter_ns(), post)

        def _answer(self, parsed: int, post: bool) -> None:
            if not self.transport.is_closing():
                self.transport.write(answer)  # type: ignore[attr-defined]
                if post:
                    own.append(time.perf_counter_ns() - parsed)

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


def endpoint_time(url: str) -> tuple[float, float]:
    """The delay endpoint's own (median ms, p99 ms) since the last call (which it clears)."""
    with urllib.request.urlopen(url + "/fidelity/stats", timeout=10) as resp:
        stats = json.loads(resp.read())
    return stats["p50"], stats["p99"]


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


def auditkit_latency(
    url: str, n: int, connections: int, client: str, kernel: bool | None = None
) -> tuple:
    """auditkit's (median ms, p99 ms, requests, timestamp source): service time of an offline
    phase's queries; `kernel` False runs h1 on the loop's clock (None: the default)."""
    adapter = CompletionsAdapter("mock-llm", 4, 0.0, False)
    dataset = Dataset("fidelity", (Sample(0, PROMPT),))
    load = LoadPattern("offline", max_concurrency=connections)
    spec = RunSpec("fidelity", SampleOrder.with_replacement(0), n, load)
    transport = None if kernel is None else H1Transport(kernel_timestamps=kernel)
    result = run_phase(
        spec, dataset, adapter, HttpTarget(url, http_client=client), transport=transport
    )
    r = result.records
    assert (r["status"] == "ok").all(), r["error"].dropna().head()
    service = (r["completed_ns"] - r["sent_ns"]).to_numpy(dtype=np.int64) / 1e6
    p50, p99 = float(np.percentile(service, 50)), float(np.percentile(service, 99))
    return p50, p99, len(service), result.summary.timestamp_source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the mock's service time")
    parser.add_argument("--connections", type=int, default=64, help="in flight, both clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="per round and client")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--http-client", default="auto", choices=("auto", "h1", "aiohttp"))
    parser.add_argument("--server", default="delay", choices=("delay", "mock"))
    parser.add_argument(
        "--compare", action="store_true", help="also h1 on the loop's clock, in the same rounds"
    )
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
    old50: list[float] = []  # --compare: h1 on the loop's clock
    old99: list[float] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="auditkit-fidelity-")))
        if args.server == "mock":
            url = stack.enter_context(MockProcess(cfg)).url
        else:
            proc, url = start_delayed(args.latency_ms, tmp)
            stack.callback(proc.wait, 10)
            stack.callback(proc.terminate)
        auditkit_latency(url, min(n, 2000), args.connections, args.http_client)  # warm-up
        timed = args.server == "delay"  # the delay endpoint times itself
        above: dict[str, list[tuple[float, float]]] = {"wrk": [], "auditkit": [], "loop": []}

        def measured(name: str, run: Callable[[], tuple]) -> tuple:
            """`run()`, and (when the endpoint times itself) how far above its own time the
            client read, median and p99, kept under `name`."""
            if timed:
                endpoint_time(url)  # clears what came before
            out = run()
            if timed:
                e50, e99 = endpoint_time(url)
                above[name].append((out[0] - e50, out[1] - e99))
            return out

        def over(name: str) -> str:
            if not above[name]:
                return ""
            m, q = above[name][-1]
            return f"; above the endpoint's own time {m:+.3f} / {q:+.3f} ms"

        def old() -> tuple:
            return measured("loop", lambda: auditkit_latency(url, n, args.connections, "h1", False))

        for i in range(args.rounds):
            w50, w99, wn = measured(
                "wrk", lambda: wrk_latency(wrk, url, args.seconds, args.connections, tmp)
            )
            if args.compare and i % 2:  # alternate which of the two runs first after wrk
                o50, o99, _, _ = old()
            a50, a99, an, source = measured(
                "auditkit", lambda: auditkit_latency(url, n, args.connections, args.http_client)
            )
            if args.compare and not i % 2:
                o50, o99, _, _ = old()
            diffs50.append(a50 - w50)
            diffs99.append(a99 - w99)
            print(
                f"round {i + 1} (load {os.getloadavg()[0]:.2f}): wrk median {w50:.3f} ms "
                f"p99 {w99:.3f} ms ({wn} requests){over('wrk')}",
                flush=True,
            )
            print(
                f"round {i + 1}: auditkit ({source} stamps) median {a50:.3f} ms p99 {a99:.3f} ms "
                f"({an}); diff {diffs50[-1]:+.3f} / {diffs99[-1]:+.3f} ms{over('auditkit')}",
                flush=True,
            )
            if args.compare:
                old50.append(o50 - w50)
                old99.append(o99 - w99)
                print(
                    f"round {i + 1}: h1 on the loop's clock median {o50:.3f} ms p99 {o99:.3f} ms;"
                    f" diff {old50[-1]:+.3f} / {old99[-1]:+.3f} ms{over('loop')}",
                    flush=True,
                )
    d50, d99 = statistics.median(diffs50), statistics.median(diffs99)
    print(
        f"{args.connections} in flight x {args.latency_ms:g} ms (~{rate:.0f} req/s), "
        f"client {args.http_client}, server {args.server}, {args.rounds} rounds"
    )
    for name, label in (("wrk", "wrk"), ("auditkit", "auditkit"), ("loop", "h1, loop's clock")):
        if above[name]:
            m = statistics.median(a for a, _ in above[name])
            q = statistics.median(b for _, b in above[name])
            print(f"above the endpoint's own time: {label} median {m:+.3f} ms, p99 {q:+.3f} ms")
    if old50:
        print(
            f"loop's clock (before): median diff = {statistics.median(old50):+.3f} ms, "
            f"p99 diff = {statistics.median(old99):+.3f} ms"
        )
    print(f"median diff = {d50:+.3f} ms, p99 diff = {d99:+.3f} ms")
    return 0 if abs(d50) <= 0.1 and abs(d99) <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
