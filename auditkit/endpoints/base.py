"""What every endpoint adapter provides: request bodies out, parsed responses in.

Adapters are transport-agnostic (bytes in, bytes out) so the measured hot path can use the
fastest transport while pre-flight uses httpx.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from auditkit.data import Sample


class ResponseError(Exception):
    """The SUT answered, but not with a usable result (counts as protocol_error)."""


@dataclass(frozen=True)
class ParsedResponse:
    """The parts of a response the audit keeps."""

    text: str
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    #: what content-level audits (TEST06) check; the load path ignores them
    first_chunk: str | None = None  # streamed: the first content chunk's text
    finish_reason: str | None = None
    chunks: int = 0  # streamed: content chunks received
    logprob_tokens: int | None = None  # tokens listed in `logprobs`, when the server sent them
    logprob_texts: tuple[str, ...] | None = None  # and those tokens' texts, in order

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


class StreamParser(Protocol):
    """Consumes SSE `data:` payloads of one streamed response."""

    def feed(self, data: str) -> bool:
        """Take one event's data; True when it carried the first output content."""
        ...

    def finish(self) -> ParsedResponse:
        """The whole response; raises ResponseError if the stream did not end properly."""
        ...


class EndpointAdapter(Protocol):
    """Builds requests and parses responses for one API flavour."""

    api: str
    path: str
    stream: bool

    def build_body(self, sample: Sample) -> bytes:
        """The JSON request body for a sample."""
        ...

    def parse_body(self, body: bytes) -> ParsedResponse:
        """Parse a complete (non-streamed) response body."""
        ...

    def stream_parser(self) -> StreamParser:
        """A fresh parser for one streamed response."""
        ...
