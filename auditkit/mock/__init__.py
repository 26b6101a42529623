"""The embedded mock SUT (DESIGN §8): an OpenAI-compatible HTTP server with a latency model,
cache modes, real servers' behaviours (cold starts, drift, tails, cache variants, coalescing;
docs/mock.md) and fault injection, for notebooks (the default endpoint) and tests (the oracle).

`MockServer` serves it from a thread of the caller's process, `MockProcess` from a child
process (same interface; timing then does not depend on the caller's CPU use), `serve_forever`
in the foreground.
"""

from auditkit.mock.process import MockProcess as MockProcess
from auditkit.mock.server import MockServer as MockServer
from auditkit.mock.server import serve_forever as serve_forever
