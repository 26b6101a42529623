"""Datasets in three formats, column mapping, clear errors, and sample orders."""

import json
from pathlib import Path

import pandas as pd
import pytest

from auditkit.config import DatasetConfig
from auditkit.data import Sample, SampleOrder, load_dataset, median_cost_index, resolve_path
from auditkit.errors import InputError


def test_shipped_dataset_resolves_from_any_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ds = load_dataset(DatasetConfig())
    assert len(ds) >= 512
    assert resolve_path("data/prompts.jsonl").is_file()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_formats_and_column_mapping(tmp_path: Path, fmt: str) -> None:
    frame = pd.DataFrame({"question": [f"what is {i}?" for i in range(5)]})
    path = tmp_path / f"d.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n")
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    ds = load_dataset(DatasetConfig(path=str(path), prompt_column="question"))
    assert [s.prompt for s in ds.samples] == list(frame["question"])


def test_messages_column(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi there"}]}) + "\n")
    ds = load_dataset(DatasetConfig(path=str(path)))
    assert ds[0].messages == ({"role": "user", "content": "hi there"},)
    assert ds[0].text == "hi there"


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.jsonl", b"", "empty"),
        ("bad.jsonl", b'{"prompt": "a"}\n{"prompt": \n', "bad.jsonl:2: malformed JSON"),
        ("nocol.jsonl", b'{"text": "a"}\n', "no 'prompt' or 'messages' column"),
        (
            "latin.jsonl",
            '{"prompt": "caf\u00e9"}\n'.encode("latin-1"),
            "latin.jsonl:1: not valid UTF-8",
        ),
        ("data.txt", b"hello\n", "unsupported dataset format"),
        ("list.jsonl", b"[1, 2]\n", "must be a JSON object"),
    ],
)
def test_bad_datasets(tmp_path: Path, name: str, content: bytes, needle: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        load_dataset(DatasetConfig(path=str(path)))
    assert needle in info.value.one_line()


def test_missing_dataset(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="dataset file not found"):
        load_dataset(DatasetConfig(path=str(tmp_path / "none.jsonl")))


def test_orders_are_seeded_and_distinct() -> None:
    a = SampleOrder.without_replacement(7).indices(100, 100)
    assert sorted(a) == list(range(100))
    assert a == SampleOrder.without_replacement(7).indices(100, 100)
    assert a != SampleOrder.without_replacement(8).indices(100, 100)
    w = SampleOrder.with_replacement(1).indices(50, 10)
    assert len(w) == 50 and set(w) <= set(range(10))
    assert SampleOrder.single(3).indices(4, 10) == [3, 3, 3, 3]
    assert SampleOrder.repeated_block(8, 4).indices(8, 10) == [8, 9, 0, 1, 8, 9, 0, 1]


def test_median_index_of_shipped_data_is_typical() -> None:
    ds = load_dataset(DatasetConfig())
    lengths = sorted(ds.prompt_lengths())
    median = lengths[len(lengths) // 2]
    assert abs(ds.prompt_lengths()[median_cost_index(ds)] - median) <= 1


# --- salted samples ---------------------------------------------------------------------------


def test_salted_prompt_gets_the_prefix_and_the_original_is_unchanged() -> None:
    sample = Sample(4, "what is 2 + 2?")
    salted = sample.salted("[run ab12cd34]")
    assert salted == Sample(4, "[run ab12cd34] what is 2 + 2?")
    assert sample.prompt == "what is 2 + 2?"
    assert sample.salted("[run ab12cd34]") == salted  # same salt, same bytes


def test_salted_messages_prefix_the_first_user_message() -> None:
    messages = (
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    )
    sample = Sample(0, None, messages)
    salted = sample.salted("[s]")
    assert [m["content"] for m in salted.messages or ()] == ["be brief", "[s] hi", "hello", "again"]
    assert messages[1]["content"] == "hi"  # copies, not edits
    assert salted.text.startswith("be brief\n[s] hi")


def test_salted_list_of_parts_prefixes_the_first_text_part() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "describe"}]
    salted = Sample(0, None, ({"role": "user", "content": parts},)).salted("[s]")
    assert salted.messages is not None
    assert salted.messages[0]["content"] == [parts[0], {"type": "text", "text": "[s] describe"}]
    assert parts[1]["text"] == "describe"
    only_image = Sample(0, None, ({"role": "user", "content": [parts[0]]},)).salted("[s]")
    assert only_image.messages is not None
    assert only_image.messages[0]["content"] == [{"type": "text", "text": "[s]"}, parts[0]]


def test_salted_without_a_user_message_prefixes_the_first_message() -> None:
    salted = Sample(0, "p", ({"role": "system", "content": "sys"},)).salted("[s]")
    assert salted.prompt == "[s] p"
    assert salted.messages == ({"role": "system", "content": "[s] sys"},)


def test_excluding_keeps_the_order_a_subsequence_so_skip_never_reissues() -> None:
    full = SampleOrder.without_replacement(5)
    issued = full.indices(40, 50)
    unissued = set(range(50)) - set(issued)
    excluded = {3, min(unissued)}
    later = full.skip(40).excluding(excluded)
    rest = later.indices(len(unissued - excluded) - 1, 50)
    assert len(set(rest)) == len(rest)
    assert set(rest) <= unissued - excluded  # rows not yet issued, never an excluded one
