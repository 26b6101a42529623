"""Injected faults as a client sees them: which answer replaces normal service, and the
connection-level misbehaviour (reset, hang, slow trickle) behind it.

Which fault a request gets is drawn by `LatencyModel.draw_fault` (seeded, in `latency.py`);
this module turns the drawn kind into a response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from auditkit.mock.connection import reset_connection
from auditkit.mock.latency import FaultKind, generate_words
from auditkit.mock.protocol import Job
from auditkit.mock.render import MALFORMED_BODY, injected_error_body, render_whole
from auditkit.mock.responses import (
    EVENT_STREAM,
    JSON,
    json_response,
    settle,
    unless_client_leaves,
    wait_for_disconnect,
)

#: A hanging request waits this long (or until the client leaves or the server stops).
HANG_S = 3600.0
#: A slow-loris response trickles its body one byte at a time over about this long.
SLOW_LORIS_S = 3.0
#: Lower bound on the slow-loris inter-byte gap, to bound its CPU cost.
SLOW_LORIS_MIN_GAP_S = 0.005
#: Faults that act inside a normal stream rather than replacing the answer.
IN_STREAM_FAULTS: frozenset[FaultKind] = frozenset({"truncate", "stream_error"})


def fault_response(
    fault: FaultKind, job: Job, next_seq: Callable[[], int], shutdown: asyncio.Event
) -> Response | None:
    """The response for a fault that replaces normal service (None: serve normally; the
    in-stream faults act inside the stream). `next_seq` numbers response ids; `shutdown` is set
    when the server stops (a hanging request then drops its connection)."""
    if fault == "error":
        return json_response(injected_error_body(), 500)
    if fault == "hang":
        return HangResponse(shutdown)
    if fault in ("reset", "die"):
        return AbortResponse()
    if fault == "malformed":
        return json_response(MALFORMED_BODY)
    if fault == "slow_loris":
        media_type = EVENT_STREAM if job.stream else JSON
        return TrickleResponse(slow_loris_body(job, next_seq()), media_type=media_type)
    return None


def slow_loris_body(job: Job, seq: int) -> bytes:
    """What the `slow_loris` fault trickles: a complete, valid answer (no slot, no compute);
    only its delivery is slow."""
    return render_whole(job, generate_words(job.seed_text, job.output_tokens), 0, seq)


def trickle_gap(size: int) -> float:
    """The pause between the bytes of a slow-loris body of `size` bytes."""
    return max(SLOW_LORIS_S / max(size, 1), SLOW_LORIS_MIN_GAP_S)


def in_stream_cutoff(fault: FaultKind | None, n_pieces: int) -> int | None:
    """After how many content chunks an in-stream fault strikes (None: no such fault)."""
    if fault in IN_STREAM_FAULTS:
        return max(1, n_pieces // 2)  # about half-way through the content
    return None


async def abort_connection(scope: Scope, receive: Receive) -> None:
    """Drop the client's connection with a TCP RST and no HTTP response at all."""
    if not reset_connection(scope):
        # No socket to reset (e.g. an in-memory test client): failing loudly is the closest
        # thing to a reset available here.
        raise ConnectionResetError("auditkit mock: injected connection reset")
    await settle(receive)


class AbortResponse(Response):
    """Reset the connection instead of answering (faults `reset` and `die_after`)."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002 (ASGI)
        await abort_connection(scope, receive)


class HangResponse(Response):
    """Never answer: wait for the client to give up or the server to stop, then drop it."""

    def __init__(self, shutdown: asyncio.Event) -> None:
        super().__init__()
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        gone = asyncio.ensure_future(wait_for_disconnect(receive))
        stopping = asyncio.ensure_future(self.shutdown.wait())
        try:
            await asyncio.wait(
                {gone, stopping}, timeout=HANG_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            client_left = gone.done() and not gone.cancelled()
            gone.cancel()
            stopping.cancel()
        if not client_left:
            await abort_connection(scope, receive)


class TrickleResponse(Response):
    """Send a valid body one byte at a time over ~SLOW_LORIS_S seconds (fault `slow_loris`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        # The client giving up stops the trickle.
        await unless_client_leaves(self._trickle(send), receive)

    async def _trickle(self, send: Send) -> None:
        body = bytes(self.body)
        gap = trickle_gap(len(body))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SLOW_LORIS_S
        pos = 0
        while pos < len(body) - 1 and loop.time() < deadline:
            await send(
                {"type": "http.response.body", "body": body[pos : pos + 1], "more_body": True}
            )
            pos += 1
            await asyncio.sleep(gap)
        await send({"type": "http.response.body", "body": body[pos:], "more_body": False})
