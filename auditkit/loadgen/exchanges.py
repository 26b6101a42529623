"""An exchanges phase (`RunSpec.exchanges`): explicit prompts sent one at a time, each from one
of two clients, with the server's Prometheus text read around each group of them.

It reuses the phase driver (timing, streaming, parsing, records); what differs is the order
(the plan's texts, not dataset rows), which client's session each request goes out on, and
the scrapes between groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
from dataclasses import replace
from datetime import UTC, datetime

import httpx

from auditkit.data import Dataset, Sample
from auditkit.endpoints.base import EndpointAdapter
from auditkit.errors import InputError
from auditkit.loadgen.driver import PhaseDriver, quiet_gc
from auditkit.loadgen.recorder import Recorder
from auditkit.loadgen.supply import Query
from auditkit.loadgen.target import HttpTarget
from auditkit.loadgen.transport import Transport
from auditkit.plan import Exchanges, RunSpec
from auditkit.results import PhaseResult

#: Prometheus text kept per scrape (a vLLM page is ~100 kB; counters sit well inside)
MAX_SCRAPE_BYTES = 4 * 1024 * 1024


def second_target(target: HttpTarget, env: str | None) -> HttpTarget:
    """Client 1's target: the key in `$env` instead of the run's (InputError when unset)."""
    if env is None:
        return target
    key = os.environ.get(env)
    if not key:
        raise InputError(f"environment variable {env} (the second API key) is not set; export it")
    return replace(target, headers={**target.headers, "Authorization": f"Bearer {key}"})


def _body(adapter: EndpointAdapter, text: str, user: str | None) -> bytes:
    body = adapter.build_body(Sample(0, text))
    if user is None:
        return body
    data = json.loads(body)
    if isinstance(data, dict):
        data["user"] = user
    return json.dumps(data).encode()


async def scrape(client: httpx.Client | None, url: str | None) -> str:
    """The Prometheus text at `url` ("" when there is none or it does not answer 200)."""
    if url is None or client is None:
        return ""

    def get() -> str:
        with contextlib.suppress(httpx.HTTPError):
            resp = client.get(url, timeout=5.0)
            if resp.status_code == 200:
                return resp.text[:MAX_SCRAPE_BYTES]
        return ""

    return await asyncio.to_thread(get)


class ExchangeDriver(PhaseDriver):
    """The phase driver over an exchanges plan: one request at a time, on its client's session."""

    def __init__(
        self,
        spec: RunSpec,
        adapter: EndpointAdapter,
        targets: tuple[HttpTarget, HttpTarget],
        transport: Transport,
    ) -> None:
        plan = spec.exchanges
        assert plan is not None
        if plan.max_tokens is not None and hasattr(adapter, "max_tokens"):
            adapter = copy.copy(adapter)
            adapter.max_tokens = plan.max_tokens
        rows = Dataset("exchanges", tuple(Sample(i, t) for i, t in enumerate(plan.texts)))
        super().__init__(spec, rows, adapter, targets[0], transport)
        self.plan: Exchanges = plan
        self.targets = targets
        self.recorder = Recorder(spec.name, [*targets[0].secrets(), *targets[1].secrets()])
        users: tuple[str | None, str | None] = plan.users or (None, None)
        self.queries: list[Query] = [
            (i, v, _body(self.adapter, t, users[c]))
            for i, (t, v, c) in enumerate(zip(plan.texts, plan.variants, plan.clients, strict=True))
        ]
        self.scrapes: list[tuple[int, str, str]] = []

    async def run(self, stop: asyncio.Event) -> bool:  # noqa: ARG002 (the driver's signature)
        plan = self.plan
        async with contextlib.AsyncExitStack() as stack:
            # one keep-alive client for the scrapes (a connection per scrape cost more than
            # a probe of the tiny test model)
            http = (
                stack.enter_context(httpx.Client(trust_env=False, follow_redirects=False))
                if plan.metrics_url is not None
                else None
            )
            sessions = [
                await stack.enter_async_context(
                    self.transport.session(t, pool_size=1, warm=int(t.warm_connections))
                )
                for t in self.targets
            ]
            self.t0 = self.now_ns()
            before = ""
            for i, query in enumerate(self.queries):
                group = plan.groups[i]
                if i == 0 or plan.groups[i - 1] != group:
                    before = await scrape(http, plan.metrics_url)
                self.session = sessions[plan.clients[i]]
                await self.request(plan.groups[i], query, self.elapsed_ns())
                if i + 1 == len(self.queries) or plan.groups[i + 1] != group:
                    self.scrapes.append((group, before, await scrape(http, plan.metrics_url)))
                if plan.gap_s:
                    await asyncio.sleep(plan.gap_s)
        return False

    def result(self, interrupted: bool, started_at: str) -> PhaseResult:
        return replace(super().result(interrupted, started_at), scrapes=tuple(self.scrapes))


def run_exchanges(
    spec: RunSpec,
    adapter: EndpointAdapter,
    target: HttpTarget,
    *,
    transport: Transport | None = None,
) -> PhaseResult:
    """Run an exchanges phase to completion (the target's HTTP client on the owned loop, as
    any phase's: loadgen/choice.py; or the given transport's)."""
    from auditkit import aio
    from auditkit.loadgen.choice import default_transport

    assert spec.exchanges is not None
    targets = (target, second_target(target, spec.exchanges.second_key_env))
    driver = ExchangeDriver(spec, adapter, targets, transport or default_transport(target))
    started = datetime.now(UTC).isoformat(timespec="seconds")

    async def main() -> PhaseResult:
        await driver.run(asyncio.Event())
        return driver.result(False, started)

    with quiet_gc():
        if transport is not None and transport.loop_factory is not None:
            with asyncio.Runner(loop_factory=transport.loop_factory) as runner:
                return runner.run(main())
        return aio.wait(aio.submit(main()))
