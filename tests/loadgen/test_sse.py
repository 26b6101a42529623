"""The SSE line decoder follows the WHATWG event-stream field rules."""

from auditkit.loadgen.sse import ServerSentEvent, SSEDecoder, split_block, split_lines


def decode(text: str) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = []
    for raw in text.encode().splitlines(keepends=True):
        for line in split_lines(raw):
            event = decoder.decode(line)
            if event is not None:
                events.append(event)
    return events


def test_data_lines_join_with_newlines_and_a_blank_line_dispatches() -> None:
    assert decode("data: a\ndata: b\n\ndata: c\n\n") == [
        ServerSentEvent("a\nb"),
        ServerSentEvent("c"),
    ]


def test_one_leading_space_is_dropped_and_a_field_without_colon_is_empty() -> None:
    assert decode("data:  two spaces\n\ndata:x\n\ndata\n\n") == [
        ServerSentEvent(" two spaces"),
        ServerSentEvent("x"),
        ServerSentEvent(""),
    ]


def test_event_type_id_and_retry() -> None:
    events = decode("event: add\nid: 7\nretry: 1500\ndata: 5\n\ndata: next\n\n")
    assert events[0] == ServerSentEvent("5", "add", "7", 1500)
    # the last event id persists, the type and retry do not
    assert events[1] == ServerSentEvent("next", "message", "7", None)


def test_invalid_retry_and_id_with_nul_are_ignored() -> None:
    assert decode("retry: 12a\nid: a\0b\ndata: d\n\n") == [ServerSentEvent("d")]


def test_comments_unknown_fields_and_dataless_events_dispatch_nothing() -> None:
    assert decode(": keep-alive\n\nfoo: bar\n\nevent: ping\n\n") == []


def test_crlf_and_lone_cr_line_ends() -> None:
    assert decode("data: a\r\n\r\n") == [ServerSentEvent("a")]
    assert split_lines(b"data: a\rdata: b\r\r\n") == ["data: a", "data: b", ""]


def test_byte_order_mark_is_stripped_from_the_first_line_only() -> None:
    assert decode("\ufeffdata: a\n\n") == [ServerSentEvent("a")]


def test_flush_dispatches_a_final_event_without_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.decode("data: [DONE]") is None
    assert decoder.flush() == ServerSentEvent("[DONE]")
    assert decoder.flush() is None


def test_a_block_splits_as_its_lines_one_by_one() -> None:
    """split_block (a whole network read, cut after its last line end) gives what split_lines
    gives line by line: LF, CRLF and lone CR ends, empty lines kept."""
    texts = [
        b"data: a\n\ndata: b\r\n\r\n",
        b"data: a\rdata: b\r\r\n",
        b"data: a\r\r\n\n",
        b"\xef\xbb\xbfdata: \xc3\xa9\n\n: c\n",
        b"data: x\r",
        b"data: [DONE]",
    ]
    for raw in texts:
        one_by_one = [line for part in raw.splitlines(keepends=True) for line in split_lines(part)]
        assert split_block(raw) == one_by_one, raw


def test_decode_data_gives_the_data_decode_gives() -> None:
    text = (
        "\ufeffdata: a\ndata: b\n\n: c\n\nevent: e\nid: 3\ndata:x\n\ndata\n\n\n"
        "retry: 5\ndata: [DONE]\n\n"
    )
    lines = split_block(text.encode())
    slow = SSEDecoder()
    events = [e.data for line in lines if (e := slow.decode(line)) is not None]
    assert SSEDecoder().decode_data(lines) == events == ["a\nb", "x", "", "[DONE]"]
