"""Server-sent events decoded line by line, after the WHATWG HTML standard's "interpreting an
event stream" rules: `data` lines join with "\\n", `event` names the type (default "message"),
`id` sets the last event id (kept across events; ignored if it contains NUL), `retry` takes
ASCII digits only, lines starting with ":" are comments, a field without ":" has an empty value,
one space after the colon is dropped, unknown fields are ignored, and a blank line dispatches the
event (none when no data line was seen).

Why our own decoder rather than a library: the transport hands us lines (aiohttp's stream, the
fake's chunks), and no maintained package decodes lines it did not read itself. httpx-sse's
line decoder is private (`httpx_sse._decoders`) and its public API reads httpx responses only;
sseclient-py parses a *synchronous* byte iterator (feeding it aiohttp's async stream needs a
thread per request, which would blur the TTFT it exists to measure); aiohttp-sse-client2 owns the
connection (a GET EventSource with reconnects, last released 2023) and cannot read our POST's
response; assel, a sans-io parser, is new and has one maintainer. The rules fit in 40 lines and
tests/loadgen/test_sse.py pins them.

One deliberate leniency: `flush()` dispatches a final event that lacks its blank line (the
standard discards it): endpoints that end with `data: [DONE]` and close are common, and treating
that as truncation would fail a sound stream.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


def split_lines(raw: bytes) -> list[str]:
    """The SSE lines in one transport line: its terminator (LF, CRLF) removed, and split at a
    lone CR, which the standard also accepts as a line end (transports split at LF only)."""
    text = raw.decode("utf-8")
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    if "\r" in text:
        return text.replace("\r\n", "\r").split("\r")
    return [text]


def split_block(raw: bytes) -> list[str]:
    """The SSE lines of a block of whole lines (what `split_lines` gives for each of them, in
    order): one decode and one split for a whole network read instead of one per line, which
    was most of a streaming client's work per query. A final CR or LF ends the last line."""
    text = raw.decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


class SSEDecoder:
    """Feed it one line at a time (no terminator); it returns an event on each dispatch."""

    __slots__ = ("_data", "_event", "_first", "_last_id", "_retry")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None
        self._first = True

    def decode(self, line: str) -> ServerSentEvent | None:
        """Process one line; the event it dispatches, if any."""
        if self._first:
            self._first = False
            if line.startswith("\ufeff"):  # a byte-order mark may open the stream
                line = line[1:]
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def decode_data(self, lines: list[str]) -> list[str]:
        """The data of each event these lines dispatch: what `decode` gives line by line,
        without building the events (the streaming hot path reads only their data)."""
        out: list[str] = []
        for line in lines:
            if not line:  # dispatch (or reset an event without data)
                data = self._data
                if data:
                    out.append(data[0] if len(data) == 1 else "\n".join(data))
                    self._data = []
                self._event, self._retry, self._first = "", None, False
            elif not self._first and line.startswith("data: "):
                self._data.append(line[6:])
            else:
                self.decode(line)  # a non-blank line never dispatches
        return out

    def flush(self) -> ServerSentEvent | None:
        """At end of stream: the pending event, if it lacked its blank line (see module doc)."""
        return self._dispatch()

    def _dispatch(self) -> ServerSentEvent | None:
        data, event, retry = self._data, self._event, self._retry
        self._data, self._event, self._retry = [], "", None
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event or "message", self._last_id, retry)
