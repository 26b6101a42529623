"""`unless_client_leaves`, the mock's way to stop work for a client that left (ASGI's
`http.disconnect`), driven by a fake `receive` and events: no server, no clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from auditkit.mock.responses import unless_client_leaves


class FakeClient:
    """A `receive` that reports http.disconnect once `leave()` is called."""

    def __init__(self) -> None:
        self.left = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "http.disconnect"}

    def leave(self) -> None:
        self.left.set()


def test_work_that_finishes_returns_true() -> None:
    async def main() -> tuple[bool, list[str]]:
        client, steps = FakeClient(), []

        async def work() -> None:
            steps.append("ran")
            await asyncio.sleep(0)

        return await unless_client_leaves(work(), client.receive), steps

    assert asyncio.run(main()) == (True, ["ran"])


def test_client_leaving_cancels_the_work_and_runs_its_cleanup() -> None:
    async def main() -> tuple[bool, list[str]]:
        client, steps = FakeClient(), []
        never = asyncio.Event()

        async def work() -> None:
            try:
                steps.append("started")
                client.leave()
                await never.wait()
                steps.append("never reached")
            finally:
                steps.append("cleaned up")

        outcome = await unless_client_leaves(work(), client.receive)
        current = asyncio.current_task()
        assert current is not None and current.cancelling() == 0  # nothing left pending
        return outcome, steps

    assert asyncio.run(main()) == (False, ["started", "cleaned up"])


def test_errors_in_the_work_propagate() -> None:
    async def main() -> None:
        async def work() -> None:
            raise ValueError("broken")

        await unless_client_leaves(work(), FakeClient().receive)

    with pytest.raises(ValueError, match="broken"):
        asyncio.run(main())


def test_cancellation_from_outside_is_not_swallowed() -> None:
    async def main() -> list[str]:
        steps: list[str] = []
        started = asyncio.Event()

        async def work() -> None:
            started.set()
            await asyncio.Event().wait()

        async def respond() -> None:
            await unless_client_leaves(work(), FakeClient().receive)
            steps.append("returned normally")

        task = asyncio.ensure_future(respond())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return steps

    assert asyncio.run(main()) == []
