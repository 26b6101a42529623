"""probes.catalogue: which probes exist and what each sends (built from a fake prompt source)."""

from __future__ import annotations

import pandas as pd

from auditkit import probes
from auditkit.probes.catalogue import CATALOGUE, LONG_PROMPT_ROWS, ProbeOptions


class Prompts:
    """A prompt source that numbers its prompts: 'p<serial> r<row> r<row>…'."""

    def __init__(self) -> None:
        self.serial = 0
        self.row = 0

    def fresh_texts(self, n: int, rows: int = 1) -> list[str]:
        out = []
        for _ in range(n):
            self.serial += 1
            parts = []
            for _ in range(rows):
                parts.append(f"r{self.row}")
                self.row += 1
            out.append(f"[p{self.serial}] " + " ".join(parts))
        return out


def test_catalogue_lists_the_four_probes_with_functions() -> None:
    names = ["repeat_vs_distinct", "cold_vs_warm", "shared_prefix", "output_identity"]
    assert list(CATALOGUE) == names
    assert list(probes.PROBES) == names
    assert all(CATALOGUE[n].name == n and CATALOGUE[n].label for n in names)
    assert CATALOGUE["cold_vs_warm"].label == "(b) cold vs warm repeats"


def test_repeat_vs_distinct_sends_k_distinct_then_one_prompt_k_times() -> None:
    distinct, repeated = CATALOGUE["repeat_vs_distinct"].groups(Prompts(), ProbeOptions(k=5))
    assert distinct.name == "distinct" and len(set(distinct.texts)) == 5
    assert repeated.name == "repeated" and len(repeated.texts) == 5
    assert len(set(repeated.texts)) == 1 and not set(repeated.texts) & set(distinct.texts)
    assert all(len(t.split(" r")) == LONG_PROMPT_ROWS + 1 for t in distinct.texts)


def test_cold_vs_warm_sends_one_long_prompt_k_times() -> None:
    (group,) = CATALOGUE["cold_vs_warm"].groups(Prompts(), ProbeOptions(k=4))
    assert len(group.texts) == 4 and len(set(group.texts)) == 1
    assert group.texts[0].count(" r") == LONG_PROMPT_ROWS and group.temperature is None


def test_shared_prefix_groups_share_a_prefix_only_in_the_shared_group() -> None:
    unique, shared = CATALOGUE["shared_prefix"].groups(Prompts(), ProbeOptions(k=3, prefix_rows=2))
    assert (unique.name, shared.name) == ("unique prefixes", "shared prefix")

    def prefix(text: str) -> str:
        return text.rsplit("\n\nTask: ", 1)[0]

    def suffix(text: str) -> str:
        return text.rsplit("\n\nTask: ", 1)[1]

    assert len({prefix(t) for t in unique.texts}) == 3
    assert len({prefix(t) for t in shared.texts}) == 1
    assert prefix(shared.texts[0]).count("\n\n") == 1  # prefix_rows heads
    for group in (unique, shared):
        assert len({suffix(t) for t in group.texts}) == 3
        assert not any(suffix(t).startswith("[") for t in group.texts)  # tag stripped


def test_output_identity_sends_one_prompt_at_the_temperature() -> None:
    (group,) = CATALOGUE["output_identity"].groups(Prompts(), ProbeOptions(k=3, temperature=0.5))
    assert group.name == "same prompt, T=0.5" and group.temperature == 0.5
    assert len(group.texts) == 3 and len(set(group.texts)) == 1


def test_output_identity_analysis_gets_the_temperature() -> None:
    records = pd.DataFrame(
        {"group": "g", "step": [1, 2], "latency_ms": 1.0, "ttft_ms": None, "decode_ms": None}
        | {"output_sha256": ["a", "a"], "status": "ok"}
    )
    found = CATALOGUE["output_identity"].analysis(records, ProbeOptions(temperature=1.25))
    assert "temperature 1.25" in found.finding and found.signals["identical"] is True
