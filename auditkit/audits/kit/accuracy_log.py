"""LoadGen's accuracy log, `mlperf_log_accuracy.json`, byte for byte as LoadGen writes it
(loadgen/logging.cc `AsyncLog::LogAccuracy`, mlcommons/inference b66003e1). Pure: entries in,
text out, and back.

The file is `[`, then one entry per line, `,\\n` between entries, then `\\n]\\n`:

    { "seq_id" : 0, "qsl_idx" : 12, "data" : "0A1B" }

`data` (and `token_data`) are the response bytes as upper-case hex. LLM benchmarks add
`"token_count" : n`; those that time the first token add `"token_data"` (the first token's
bytes) before it. Upstream's scripts read the file with `json.load` and `bytes.fromhex`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

ACCURACY_LOG = "mlperf_log_accuracy.json"


@dataclass(frozen=True)
class AccuracyEntry:
    """One logged response: LoadGen's sequence id, the sample's index and its bytes."""

    seq_id: int
    qsl_idx: int
    data: bytes
    token_count: int | None = None
    token_data: bytes | None = None


def render_entry(entry: AccuracyEntry) -> str:
    """One entry as LoadGen prints it (no separator)."""
    text = f'{{ "seq_id" : {entry.seq_id}, "qsl_idx" : {entry.qsl_idx}'
    text += f', "data" : "{entry.data.hex().upper()}"'
    if entry.token_data is not None:
        text += f', "token_data" : "{entry.token_data.hex().upper()}"'
    if entry.token_count is not None:
        text += f', "token_count" : {entry.token_count}'
    return text + " }"


def render(entries: Iterable[AccuracyEntry]) -> str:
    """The whole file: `[`, entries each on a line of its own, `]`."""
    body = ",".join("\n" + render_entry(e) for e in entries)
    return "[" + body + "\n]\n"


def parse(text: str) -> list[AccuracyEntry]:
    """Entries read back from an accuracy log (LoadGen's or ours); a `ValueError` says what is
    wrong with a malformed one."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not an accuracy log (JSON error: {exc.msg} at line {exc.lineno})"
        ) from exc
    if not isinstance(raw, list):
        raise ValueError("not an accuracy log (expected a JSON list of entries)")
    entries = []
    for i, item in enumerate(raw):
        try:
            entries.append(
                AccuracyEntry(
                    seq_id=int(item["seq_id"]),
                    qsl_idx=int(item["qsl_idx"]),
                    data=bytes.fromhex(item["data"]),
                    token_count=None if "token_count" not in item else int(item["token_count"]),
                    token_data=None
                    if "token_data" not in item
                    else bytes.fromhex(item["token_data"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"accuracy log entry {i} is malformed: {exc}") from exc
    return entries
