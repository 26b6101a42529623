"""The in-memory fake for tests and what-if simulations: a transport answered by a handler on a
virtual-time event loop (no sockets, no sleeping; timestamps exact to the nanosecond), and a
simulated OpenAI-compatible SUT: the embedded mock's engine without HTTP.

A simulated server (its caches persist across the phases that share it):

    sut = SimulatedSUT(MockConfig(slots=4, cache="output", jitter_cv=0.0))
    transport, target = FakeTransport(sut), HttpTarget("http://sut.invalid")
    result = run_phase(spec, dataset, adapter, target, transport=transport)

A hand-written handler, in the spirit of httpx.MockTransport (sync or async; raise, or return
`FakeResponse(error=...)`, to fail the exchange as a client library would):

    def handler(request: FakeRequest) -> FakeResponse:
        if request.path == "/v1/models":
            return FakeResponse.json({"data": [{"id": "m"}]})
        return FakeResponse.json(completion, delay_s=0.010)  # answers after 10 virtual ms

`run_phase` runs a fake phase on a fresh `VirtualTimeLoop`; from async code, use
`run_virtual(run_phase_async(..., transport=transport))`.
"""

from auditkit.loadgen.fake.sut import Behaviour as Behaviour
from auditkit.loadgen.fake.sut import ColdStart as ColdStart
from auditkit.loadgen.fake.sut import RequestInfo as RequestInfo
from auditkit.loadgen.fake.sut import SimulatedSUT as SimulatedSUT
from auditkit.loadgen.fake.transport import FakeRequest as FakeRequest
from auditkit.loadgen.fake.transport import FakeResponse as FakeResponse
from auditkit.loadgen.fake.transport import FakeTransport as FakeTransport
from auditkit.loadgen.fake.virtual_time import VirtualClock as VirtualClock
from auditkit.loadgen.fake.virtual_time import VirtualLoopDeadlock as VirtualLoopDeadlock
from auditkit.loadgen.fake.virtual_time import VirtualTimeLoop as VirtualTimeLoop
from auditkit.loadgen.fake.virtual_time import run_virtual as run_virtual
