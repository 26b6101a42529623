"""The in-memory fake for tests and what-if simulations: a transport answered by a handler on a
virtual-time event loop (no sockets, no sleeping), and a simulated OpenAI-compatible SUT.

    sut = SimulatedSUT(MockConfig(slots=4, cache="output"))
    target = HttpTarget("http://sut.invalid")
    result = run_phase(spec, dataset, adapter, target, transport=FakeTransport(sut))
"""

from auditkit.loadgen.fake.sut import (
    Behaviour,
    CachePolicy,
    ColdStart,
    NoCache,
    OutputCache,
    PrefixCache,
    RequestInfo,
    SimulatedSUT,
    cache_policy,
)
from auditkit.loadgen.fake.transport import FakeRequest, FakeResponse, FakeTransport, Handler
from auditkit.loadgen.fake.virtual_time import (
    VirtualClock,
    VirtualLoopDeadlock,
    VirtualTimeLoop,
    run_virtual,
)

__all__ = [
    "Behaviour",
    "CachePolicy",
    "ColdStart",
    "FakeRequest",
    "FakeResponse",
    "FakeTransport",
    "Handler",
    "NoCache",
    "OutputCache",
    "PrefixCache",
    "RequestInfo",
    "SimulatedSUT",
    "VirtualClock",
    "VirtualLoopDeadlock",
    "VirtualTimeLoop",
    "cache_policy",
    "run_virtual",
]
