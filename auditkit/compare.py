"""Two finished runs side by side (`auditkit compare RUN_A RUN_B`, review_results' compare cell).

Read from the artifacts only: the verdicts and headline scores, the scored phases' counts,
latency percentiles, TTFT and token rates, and the settings that differ between the runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from auditkit.display import text_table, to_ms
from auditkit.errors import InputError
from auditkit.results import PhaseSummary
from auditkit.review import LoadedRun, load_run

COLUMNS = ("", "A", "B", "B/A")
#: settings that differ between any two runs and say nothing about them
IGNORED_SETTINGS = ("output_dir", "overwrite")


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.3f}" if a and b is not None else ""


def _phase_numbers(s: PhaseSummary) -> Iterator[tuple[str, float | None, int]]:
    yield "completed", float(s.completed), 9
    yield "failed", float(s.failed), 9
    yield "p50 latency (ms)", to_ms(s.latency.p50_ns), 4
    yield "p90 latency (ms)", to_ms(s.latency.p90_ns), 4
    yield "p99 latency (ms)", to_ms(s.latency.p99_ns), 4
    yield "p50 TTFT (ms)", to_ms(s.ttft.p50_ns) if s.ttft else None, 4
    yield "tokens/s", s.tokens_per_second, 4
    yield "score", s.score, 6


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def config_differences(a: LoadedRun, b: LoadedRun) -> list[tuple[str, Any, Any]]:
    """(dotted setting, value in A, value in B) for every setting that differs."""
    fa, fb = _flatten(a.result.config), _flatten(b.result.config)
    keys = sorted(set(fa) | set(fb))
    return [
        (k, fa.get(k), fb.get(k))
        for k in keys
        if fa.get(k) != fb.get(k) and k.split(".")[-1] not in IGNORED_SETTINGS
    ]


def check_comparable(a: LoadedRun, b: LoadedRun) -> None:
    """InputError (one line) unless both runs are of one audit and one scenario: scores of
    different scenarios are in different units, and different audits score different things."""
    ra, rb = a.result, b.result
    if (ra.test, ra.scenario) != (rb.test, rb.scenario):
        raise InputError(
            f"cannot compare a {ra.test} {ra.scenario} run with a {rb.test} {rb.scenario} run: "
            "their scores are not in the same units; compare two runs of one audit and scenario"
        )


def compare_rows(a: LoadedRun, b: LoadedRun) -> list[tuple[str, str, str, str]]:
    """The comparison as rows of text: (what, A, B, B/A); InputError for runs that do not
    compare (check_comparable)."""
    check_comparable(a, b)
    ra, rb = a.result, b.result
    rows: list[tuple[str, str, str, str]] = [
        ("test", ra.test, rb.test, ""),
        ("verdict", ra.verdict, rb.verdict, ""),
        ("upstream verdict", ra.upstream_verdict or "-", rb.upstream_verdict or "-", ""),
        ("scenario", ra.scenario, rb.scenario, ""),
    ]
    for label, va, vb in (
        (f"reference score ({ra.score_name or 'score'})", ra.reference_score, rb.reference_score),
        ("audit score", ra.audit_score, rb.audit_score),
        ("audit/reference ratio", ra.ratio, rb.ratio),
        ("threshold", ra.threshold, rb.threshold),
    ):
        rows.append((label, _num(va, 6), _num(vb, 6), _ratio(va, vb)))
    for phase in [*ra.phases, *(p for p in rb.phases if p not in ra.phases)]:
        sa, sb = ra.phases.get(phase), rb.phases.get(phase)
        na = dict((k, (v, d)) for k, v, d in _phase_numbers(sa)) if sa else {}
        nb = dict((k, (v, d)) for k, v, d in _phase_numbers(sb)) if sb else {}
        for key in dict.fromkeys([*na, *nb]):
            va, da = na.get(key, (None, 4))
            vb, _ = nb.get(key, (None, 4))
            if va is None and vb is None:
                continue  # e.g. no TTFT in either run (not streamed)
            rows.append((f"{phase}: {key}", _num(va, da), _num(vb, da), _ratio(va, vb)))
    for key, va, vb in config_differences(a, b):
        rows.append((f"setting {key}", str(va), str(vb), ""))
    rows.append(("finished", ra.finished_at or "-", rb.finished_at or "-", ""))
    return rows


def compare_table(a: LoadedRun | str, b: LoadedRun | str) -> pd.DataFrame:
    """The comparison as a DataFrame (notebooks); runs given as LoadedRun or paths."""
    ra = a if isinstance(a, LoadedRun) else load_run(a)
    rb = b if isinstance(b, LoadedRun) else load_run(b)
    frame = pd.DataFrame(compare_rows(ra, rb), columns=list(COLUMNS))
    return frame.set_index("")


def compare_text(a: LoadedRun, b: LoadedRun) -> str:
    """The comparison as the plain table `auditkit compare` prints, with A and B named."""
    head = f"A: {a.folder}\nB: {b.folder}\n"
    return head + text_table(COLUMNS, compare_rows(a, b))
