"""The accuracy log is LoadGen's, byte for byte, and reads back."""

from __future__ import annotations

import json

import pytest

from auditkit.audits.kit.accuracy_log import AccuracyEntry, parse, render


def test_the_file_is_laid_out_as_loadgen_writes_it() -> None:
    entries = [AccuracyEntry(0, 12, b"\x0a\x1b"), AccuracyEntry(1, 3, b"")]
    assert render(entries) == (
        '[\n{ "seq_id" : 0, "qsl_idx" : 12, "data" : "0A1B" },\n'
        '{ "seq_id" : 1, "qsl_idx" : 3, "data" : "" }\n]\n'
    )
    assert render([]) == "[\n]\n"


def test_llm_entries_carry_first_token_and_count_in_loadgens_order() -> None:
    entry = AccuracyEntry(7, 2, b"\x01\x00\x00\x00", token_count=1, token_data=b"\x01\x00\x00\x00")
    assert render([entry]).splitlines()[1] == (
        '{ "seq_id" : 7, "qsl_idx" : 2, "data" : "01000000", '
        '"token_data" : "01000000", "token_count" : 1 }'
    )


def test_what_upstream_reads_with_json_load_reads_back_the_same() -> None:
    entries = [AccuracyEntry(i, i * 3, bytes([i, 255 - i]), token_count=i) for i in range(5)]
    text = render(entries)
    assert [bytes.fromhex(e["data"]) for e in json.loads(text)] == [e.data for e in entries]
    assert parse(text) == entries


@pytest.mark.parametrize(
    "text", ["{", "{}", '[{"seq_id": 0}]', '[{"seq_id":0,"qsl_idx":1,"data":"zz"}]']
)
def test_a_malformed_log_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="accuracy log"):
        parse(text)
