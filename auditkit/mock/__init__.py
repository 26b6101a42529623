"""The embedded mock SUT (DESIGN §8): an OpenAI-compatible HTTP server with a latency model,
cache modes and fault injection, for notebooks (the default endpoint) and tests (the oracle)."""

from auditkit.mock.app import create_app
from auditkit.mock.server import MockServer, serve_forever

__all__ = ["MockServer", "create_app", "serve_forever"]
