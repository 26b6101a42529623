"""TEST07's accuracy metrics: how an output is scored against its reference answer. Pure.

A metric reads the answer out of an output (`extract`) and says whether it is the reference
(`correct`); the score is 100 × correct / logged entries, printed as upstream's accuracy
scripts print it (`'exact_match': 62.150`, three decimals) for run_verification.py's default
`--score-pattern`. More metrics join with `register_metric`.

`exact_match` is gpt-oss-120b's (language/gpt-oss-120b/eval_accuracy.py and
eval_mlperf_accuracy.py in mlcommons/inference b66003e1; its TEST07 set is GPQA, options A to D):

    final  = the text after `<|channel|>final…<|message|>` up to `<|return|>` (harmony's final
             channel; the whole output when there is none), `**bold**` unwrapped
    letter = 1. a letter A-D at the start of `final` (only non-letters before it, a non-letter
                or the end after it); else 2. `Answer: X` / `Answer. X` in `final`; else
             3. the last `ANSWER` / `FINAL ANSWER` `[:=] X` or `(X)` in the whole output
    correct iff letter == reference (case-insensitive)

Upstream weights each sub-dataset by its repeats (gpqa_diamond 5, aime25 8, ...): for a set of
one dataset, as TEST07's is, that is correct / total.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from auditkit.errors import InputError, did_you_mean

_FINAL = re.compile(r"<\|channel\|>final[^<]*<\|message\|>(.*?)(?:<\|return\|>|$)", re.DOTALL)
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def final_section(text: str) -> str:
    """Harmony's final channel of an output, or the whole (stripped) output without one."""
    text = text.strip()
    match = _FINAL.search(text)
    return match.group(1).strip() if match else text


def choice(text: str, letters: str = "ABCD") -> str | None:
    """The option letter an output gives (see the module docstring), None when none is found."""
    text = text.strip()
    if not text:
        return None
    last = letters[-1]
    final = _BOLD.sub(r"\1", final_section(text))
    if final.startswith(("['", '["')) and final.endswith(("']", '"]')):
        final = final[2:-2].strip()
    final = final.replace(r"\n", "\n").replace(r"\'", "'")
    start = re.match(rf"^[^a-zA-Z]*([A-{last}])(?:[^a-zA-Z]|$)", final.strip(), re.IGNORECASE)
    if start:
        return start.group(1).upper()
    stated = re.search(rf"\b(?:Answer|ANSWER)\s*[:.]?\s*([A-{last}])\b", final, re.IGNORECASE)
    if stated:
        return stated.group(1).upper()
    whole = text.replace(r"\n", "\n").replace(r"\'", "'")
    pattern = (
        rf"\b(?:ANSWER|FINAL\s*ANSWER)\b\s*[:=]?\s*(?:\(?\s*([A-{last}])\s*\)?)(?:\s*$|[^A-Za-z])"
    )
    found = list(re.finditer(pattern, whole, re.IGNORECASE))
    if found:
        return found[-1].group(1).upper()
    return None


def normalised(text: str) -> str:
    """Casefolded, punctuation as spaces, whitespace collapsed (NFKC first)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return " ".join(text.split())


@dataclass(frozen=True)
class Metric:
    """How outputs are scored: the answer read from an output, and whether it is right."""

    name: str
    description: str
    extract: Callable[[str], str | None]
    correct: Callable[[str | None, str], bool]


def _letter_matches(got: str | None, reference: str) -> bool:
    return got is not None and got in "ABCD" and got == reference.strip().upper()


def _text_matches(got: str | None, reference: str) -> bool:
    return (
        got is not None and bool(normalised(reference)) and normalised(got) == normalised(reference)
    )


METRICS: dict[str, Metric] = {
    "exact_match": Metric(
        "exact_match",
        "gpt-oss-120b's: the option letter (A-D) of the final channel equals the reference",
        choice,
        _letter_matches,
    ),
    "exact_text": Metric(
        "exact_text",
        "the final channel (or whole output), normalised, equals the normalised reference",
        final_section,
        _text_matches,
    ),
}


def register_metric(metric: Metric) -> Metric:
    """Add (or replace) a metric; returns it."""
    METRICS[metric.name] = metric
    return metric


def get_metric(name: str) -> Metric:
    """A metric by name; InputError naming the known ones otherwise."""
    metric = METRICS.get(name)
    if metric is None:
        hint = did_you_mean(name, list(METRICS))
        raise InputError(f"test07.metric {name!r} is unknown{hint} (known: {', '.join(METRICS)})")
    return metric


def score_line(name: str, score: float) -> str:
    """The line upstream's accuracy script prints for the checker: `'exact_match': 62.150`."""
    return f"'{name}': {score:.3f}"


def printed_score(score: float) -> float:
    """The score as run_verification.py reads it back from that line (three decimals)."""
    return float(f"{score:.3f}")
