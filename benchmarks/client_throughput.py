"""Client throughput: auditkit's load generator vs a raw aiohttp loop against a null endpoint.

A client slower than the SUT measures itself in both phases, and a caching SUT then PASSes.
This starts nginx on 127.0.0.1 returning a fixed completion JSON (the null endpoint), then runs
auditkit's offline phase (its default client for http://, h1: loadgen/h1_transport.py), auditkit
with `http_client: aiohttp`, a raw aiohttp loop and wrk alternately, `--rounds` times each, with
the same concurrency. The raw loop runs on the same event-loop implementation auditkit uses
(uvloop) so the ratio compares clients, not loops (`--all` adds its plain-asyncio rate and
httpx's pool).

With `--workers N` auditkit also runs with N load-generator processes (loadgen/workers.py),
and where `wrk` (Debian package) is on PATH it runs too, in the same rounds, with the same
connections (`--wrk-threads` threads): the C client's rate is the ceiling a Python client is
measured against (the ratio auditkit/wrk is printed). nginx gets `--nginx-workers` processes.
On a small machine nginx and the client share the cores: read the rates with that in mind.

The last line is `ratio = <auditkit / raw aiohttp> (wrk <rate> req/s)`: medians of the same
run; the goal is >= 2.0 (exit 0 when met). `--compare` also runs, in the same rounds, h1 on the
loop's clock (`H1Transport(kernel_timestamps=False)`: uvloop reads the sockets) beside the
default (kernel receive stamps, its own recvmsg reader on Linux): what the stamps cost.
Setup: nginx is taken from PATH, /usr/sbin/nginx, or installed with apt-get (needs root).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import uvloop

from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.loadgen.driver import quiet_gc
from auditkit.loadgen.h1_transport import H1Transport
from auditkit.plan import LoadPattern, RunSpec

COMPLETION = {
    "id": "cmpl-null",
    "object": "text_completion",
    "created": 0,
    "model": "null",
    "choices": [{"index": 0, "text": " hello world", "finish_reason": "length"}],
    "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10},
}


def find_nginx() -> str:
    """nginx's path, installing Debian's nginx-light when it is missing."""
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.path.exists(candidate):
            return candidate
    print("nginx not found; installing Debian's nginx-light", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light"], check=False)
    if not os.path.exists("/usr/sbin/nginx"):
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light"], check=True)
    return "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(prefix: Path, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    body = json.dumps(COMPLETION).replace("'", "\\'")
    conf = f"""
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      default_type application/json;
      return 200 '{body}';
    }}
  }}
}}
"""
    (prefix / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([find_nginx(), "-p", str(prefix), "-c", str(prefix / "nginx.conf")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("nginx did not start; see " + str(prefix / "error.log"))


def auditkit_rate(
    url: str,
    n: int,
    concurrency: int,
    workers: int = 1,
    http_client: str = "auto",
    kernel: bool | None = None,
) -> float:
    adapter = CompletionsAdapter("null", 16, 0.0, False)
    dataset = Dataset("bench", tuple(Sample(i, f"prompt number {i}") for i in range(64)))
    load = LoadPattern("offline", max_concurrency=concurrency)
    spec = RunSpec("bench", SampleOrder.with_replacement(0), n, load)
    target = HttpTarget(url, http_client=http_client)
    transport = None if kernel is None else H1Transport(kernel_timestamps=kernel)
    result = run_phase(spec, dataset, adapter, target, workers=workers, transport=transport)
    assert result.summary.completed == n, result.summary.invalid_reasons
    return result.summary.samples_per_second


async def _raw(url: str, n: int, concurrency: int) -> float:
    body = json.dumps({"model": "null", "prompt": "prompt number 1", "max_tokens": 16}).encode()
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        remaining = n

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with session.post(url + "/v1/completions", data=body) as resp:
                    json.loads(await resp.read())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - start)


async def _httpx(url: str, n: int, concurrency: int) -> float:
    """httpx's own async pool, as a user would configure it for this load (for comparison)."""
    body = json.dumps({"model": "null", "prompt": "prompt number 1", "max_tokens": 16}).encode()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        remaining = n

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                resp = await client.post(url + "/v1/completions", content=body)
                json.loads(resp.content)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - start)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"model": "null", "prompt": "prompt number 1", "max_tokens": 16}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk_rate(url: str, seconds: float, concurrency: int, threads: int, folder: Path) -> float:
    """wrk's requests/s against the same endpoint with the same number of connections."""
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds:.0f}s", "-s", str(script),
         url + "/v1/completions"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(f"no rate in wrk's output:\n{out}")


def raw_rate(url: str, n: int, concurrency: int, use_uvloop: bool) -> float:
    # the garbage collector treated as in auditkit's phases (quiet_gc: the heap that earlier
    # rounds left frozen), or the yardstick would pay full collections auditkit does not
    with quiet_gc():
        if use_uvloop:
            return uvloop.run(_raw(url, n, concurrency))
        return asyncio.run(_raw(url, n, concurrency))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="also run N processes")
    parser.add_argument("--nginx-workers", type=int, default=1)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--all", action="store_true", help="also raw aiohttp on asyncio, httpx")
    parser.add_argument("--compare", action="store_true", help="also h1 on the loop's clock")
    args = parser.parse_args()
    has_wrk = shutil.which("wrk") is not None
    with tempfile.TemporaryDirectory(prefix="auditkit-nginx-") as tmp:
        port = free_port()
        proc = start_nginx(Path(tmp), port, args.nginx_workers)
        url = f"http://127.0.0.1:{port}"
        try:
            raw_rate(url, 2000, args.concurrency, True)  # warm-up
            auditkit_rate(url, 2000, args.concurrency)
            if args.workers > 1:  # starts the fork server once, outside the rounds
                auditkit_rate(url, 2000, args.concurrency, args.workers)
            ours, raw, raw_asyncio, via_httpx, via_aiohttp = [], [], [], [], []
            multi: list[float] = []
            loop_clock: list[float] = []
            wrk: list[float] = []
            for i in range(args.rounds):
                if args.compare and i % 2:  # before the default every other round: no order bias
                    loop_clock.append(
                        auditkit_rate(url, args.requests, args.concurrency, kernel=False)
                    )
                ours.append(auditkit_rate(url, args.requests, args.concurrency))
                raw.append(raw_rate(url, args.requests, args.concurrency, True))
                via_aiohttp.append(
                    auditkit_rate(url, args.requests, args.concurrency, http_client="aiohttp")
                )
                if args.compare and not i % 2:
                    loop_clock.append(
                        auditkit_rate(url, args.requests, args.concurrency, kernel=False)
                    )
                if args.compare:
                    print(f"round {i + 1}: auditkit (h1, loop's clock) {loop_clock[-1]:.0f} req/s")
                if args.workers > 1:
                    multi.append(auditkit_rate(url, args.requests, args.concurrency, args.workers))
                    print(
                        f"round {i + 1}: auditkit x{args.workers} processes {multi[-1]:.0f} req/s"
                    )
                if has_wrk:
                    # as long as auditkit's own round took, with the same connections
                    seconds = max(2.0, args.requests / ours[-1])
                    wrk.append(
                        wrk_rate(url, seconds, args.concurrency, args.wrk_threads, Path(tmp))
                    )
                    print(f"round {i + 1}: wrk ({args.wrk_threads} thread) {wrk[-1]:.0f} req/s")
                if args.all:
                    raw_asyncio.append(raw_rate(url, args.requests, args.concurrency, False))
                    via_httpx.append(uvloop.run(_httpx(url, args.requests // 4, args.concurrency)))
                    print(
                        f"round {i + 1}: raw aiohttp (asyncio) {raw_asyncio[-1]:.0f} req/s, "
                        f"httpx default pool {via_httpx[-1]:.0f} req/s"
                    )
                print(
                    f"round {i + 1}: auditkit (h1) {ours[-1]:.0f} req/s, raw aiohttp (uvloop) "
                    f"{raw[-1]:.0f} req/s, auditkit (http_client aiohttp) {via_aiohttp[-1]:.0f} "
                    f"req/s, ratio {ours[-1] / raw[-1]:.2f}",
                    flush=True,
                )
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    a, r = statistics.median(ours), statistics.median(raw)
    v = statistics.median(via_aiohttp)
    print(
        f"median: auditkit (h1) {a:.0f} req/s, raw aiohttp {r:.0f} req/s, auditkit (aiohttp) "
        f"{v:.0f} req/s ({a / v:.2f}x), {args.concurrency} in flight, {args.rounds} rounds"
    )
    if raw_asyncio:
        print(
            f"median: raw aiohttp (asyncio) {statistics.median(raw_asyncio):.0f} req/s, "
            f"httpx {statistics.median(via_httpx):.0f} req/s"
        )
    if loop_clock:
        k = statistics.median(loop_clock)
        print(f"median: auditkit (h1, loop's clock) {k:.0f} req/s (default / it: {a / k:.3f})")
    if multi:
        m = statistics.median(multi)
        print(f"median: auditkit x{args.workers} processes {m:.0f} req/s ({m / a:.2f} x one)")
    beside = "wrk not installed (Debian package wrk)"
    if wrk:
        w = statistics.median(wrk)
        beside = f"wrk {w:.0f} req/s, auditkit/wrk {a / w:.3f}"
    print(f"ratio = {a / r:.3f} ({beside})")
    return 0 if a / r >= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
