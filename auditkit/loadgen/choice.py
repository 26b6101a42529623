"""Which HTTP client a phase uses: `endpoint.http_client` (auto | h1 | aiohttp), resolved.

`auto` takes auditkit's own HTTP/1.1 client (h1_transport.py, about twice aiohttp's rate per
process: docs/performance.md) wherever it works, plain http://, and aiohttp for https:// (TLS,
certificate errors, ALPN). `h1` with an https:// URL is refused at config time.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from auditkit.loadgen.h1_transport import H1Transport
from auditkit.loadgen.target import HttpTarget
from auditkit.loadgen.transport import Transport

Client = Literal["h1", "aiohttp"]


def resolve_client(target: HttpTarget) -> Client:
    """The client `target.http_client` stands for at this URL."""
    if target.http_client == "aiohttp":
        return "aiohttp"
    if target.http_client == "h1" or urlsplit(target.base_url).scheme == "http":
        return "h1"
    return "aiohttp"


def default_transport(target: HttpTarget) -> Transport:
    """A fresh transport of the client `resolve_client` picks."""
    if resolve_client(target) == "h1":
        return H1Transport()
    from auditkit.loadgen.aiohttp_transport import AiohttpTransport  # lazy: see loadgen/__init__

    return AiohttpTransport()
