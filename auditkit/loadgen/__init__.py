"""The load generator: runs one phase (a RunSpec) against an endpoint and returns its records.

Modules, one job each: `target` (where to send, with which limits), `transport` (the seam: the
protocol every transport implements, and error classification), `h1_transport` (auditkit's own
HTTP/1.1 client, the default for http://), `aiohttp_transport` (https://), `choice` (which of the
two a phase uses), `clock`, `sse` (event-stream decoding), `supply` (which sample
each query sends), `schedulers` (the four scenarios), `recorder` (per-request records),
`driver` (one phase: requests, loop lag, stop, result) and `blocking` (`run_phase` for
synchronous callers). `fake/` answers in memory on a virtual clock, for tests and simulations.

Timing is the transport's clock in the coroutine that does the I/O, relative to the phase start;
latency counts from the *scheduled* time, so client-side queueing is included.
"""

from auditkit.loadgen.blocking import run_phase as run_phase
from auditkit.loadgen.driver import PhaseInterrupted as PhaseInterrupted
from auditkit.loadgen.driver import run_phase_async as run_phase_async
from auditkit.loadgen.h1_transport import H1Transport as H1Transport
from auditkit.loadgen.recorder import QueryRecord as QueryRecord
from auditkit.loadgen.target import HttpTarget as HttpTarget
from auditkit.loadgen.target import resolve_api_key as resolve_api_key
from auditkit.loadgen.transport import Transport as Transport
from auditkit.loadgen.transport import classify_error as classify_error


def __getattr__(name: str) -> object:
    # AiohttpTransport on first use: importing aiohttp costs every process a fraction of a
    # CPU-second, and the default transport for http:// is h1
    if name == "AiohttpTransport":
        from auditkit.loadgen.aiohttp_transport import AiohttpTransport

        return AiohttpTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
