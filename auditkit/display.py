"""Notebook rendering of results: the verdict panel (HTML) and the per-phase summary table.

The panel is self-contained HTML with inline CSS (no CDN, no scripts) so it survives nbconvert
exports and offline viewing. Objects returned here render through `_repr_html_`, so a notebook
cell can end with the call and needs no IPython import.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from auditkit.audits import REGISTRY
from auditkit.audits.base import generic_advice
from auditkit.results import AuditResult, PhaseResult, PhaseSummary

VERDICT_STYLE: dict[str, tuple[str, str, str]] = {
    # verdict: (badge background, panel border, one-line meaning)
    "PASS": ("#1a7f37", "#1a7f37", "the audit's rule holds"),
    "FAIL": ("#cf222e", "#cf222e", "the audit's rule does not hold"),
    "INCONCLUSIVE": ("#6e7781", "#8c959f", "the evidence did not settle it: run longer"),
    "INVALID": ("#9a6700", "#bf8700", "the run cannot support a PASS or FAIL verdict"),
}


@dataclass(frozen=True)
class HtmlPanel:
    """An HTML fragment that Jupyter renders (and `str()` returns as markup)."""

    markup: str

    def _repr_html_(self) -> str:
        return self.markup

    def __str__(self) -> str:
        return self.markup


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def verdict_html(result: AuditResult[Any]) -> str:
    """The verdict panel: badge, the scores and the rule as a formula (when the audit compares
    two scores), the reason, the audit's own evidence rows and the notes."""
    colour, border, meaning = VERDICT_STYLE.get(result.verdict, VERDICT_STYLE["INVALID"])
    e = html.escape
    rows = _score_rows(result)
    rows.append(("Reason", e(result.reason)))
    test = REGISTRY.get(result.test.lower())
    if test is not None:
        rows.extend((e(label), e(text)) for label, text in test.panel_rows(result))
    for note in result.notes:
        rows.append(("Note", e(note)))
    body = "".join(
        "<tr>"
        f"<th style='text-align:left;vertical-align:top;padding:3px 12px 3px 0;"
        f"white-space:nowrap;color:#57606a;font-weight:600'>{k}</th>"
        f"<td style='padding:3px 0;text-align:left'>{v}</td></tr>"
        for k, v in rows
    )
    step = (
        "<div class='auditkit-next' style='margin-top:8px;padding-top:6px;"
        f"border-top:1px solid #d0d7de'><b>Next:</b> {e(next_step(result))}</div>"
    )
    return (
        f"<div class='auditkit-verdict' style='border:2px solid {border};border-radius:8px;"
        "padding:12px 16px;margin:6px 0;font-family:system-ui,-apple-system,Segoe UI,"
        "Helvetica,Arial,sans-serif;font-size:14px;line-height:1.4;max-width:900px'>"
        "<div style='display:flex;align-items:center;gap:12px;margin-bottom:8px'>"
        f"<span style='background:{colour};color:#fff;font-weight:700;font-size:20px;"
        f"padding:4px 14px;border-radius:6px;letter-spacing:0.05em'>{e(result.verdict)}</span>"
        f"<span style='font-size:16px'><b>{e(result.test)}</b> · {e(result.scenario)} · "
        f"{e(meaning)}</span></div>"
        f"<table style='border-collapse:collapse;margin:0'>{body}</table>{step}</div>"
    )


def next_step(result: AuditResult[Any]) -> str:
    """The one action that helps most after this verdict, from the audit that gave it (shown
    under the panel and by the CLI)."""
    test = REGISTRY.get(result.test.lower())
    return test.advice(result) if test is not None else generic_advice(result)


def _score_rows(result: AuditResult[Any]) -> list[tuple[str, str]]:
    """Rows for the headline comparison (reference vs audit score under a threshold)."""
    e = html.escape
    ref, aud, t = result.reference_score, result.audit_score, result.threshold
    if t is None and ref is None and aud is None:
        return []
    if ref is not None and aud is not None and t is not None:
        limit = ref * (1 + t)
        holds = aud < limit
        formula = (
            f"audit_score &lt; reference_score × (1 + threshold)<br>"
            f"{_fmt(aud)} &lt; {_fmt(ref)} × (1 + {t:g}) = {_fmt(limit)} "
            f"&nbsp;→&nbsp; <b>{'true' if holds else 'false'}</b>"
        )
    else:
        formula = "audit_score &lt; reference_score × (1 + threshold) (not evaluated: no scores)"
    ratio = f"{result.ratio:.3f}×" if result.ratio is not None else "—"
    threshold = "—" if t is None else f"{t:g}"
    return [
        ("Reference score", f"{_fmt(ref, 6)} <small>({e(result.score_name)})</small>"),
        ("Audit score", f"{_fmt(aud, 6)} <small>(ratio {ratio})</small>"),
        # the source often carries its own parentheses: a separator, not another pair
        ("Threshold", f"{threshold} <small>· {e(result.threshold_source)}</small>"),
        ("Rule", f"<code style='font-size:0.95em'>{formula}</code>"),
    ]


def verdict_panel(result: AuditResult[Any]) -> HtmlPanel:
    """The verdict panel as a displayable object (end a notebook cell with it)."""
    return HtmlPanel(verdict_html(result))


SummariesLike = AuditResult[Any] | Mapping[str, PhaseSummary] | Iterable[PhaseResult | PhaseSummary]


def _summaries(src: SummariesLike) -> dict[str, PhaseSummary]:
    if isinstance(src, AuditResult):
        return dict(src.phases)
    if isinstance(src, Mapping):
        return dict(src)
    out: dict[str, PhaseSummary] = {}
    for item in src:
        s = item.summary if isinstance(item, PhaseResult) else item
        out[s.name] = s
    return out


def to_ms(ns: int | None) -> float | None:
    """Nanoseconds as milliseconds (None stays None)."""
    return None if ns is None else ns / 1e6


def summary_table(src: SummariesLike) -> pd.DataFrame:
    """One row per phase: counts, duration, throughput, latency percentiles (ms), score.
    TTFT and token-rate columns appear only when some phase has them (no "None" cells)."""
    rows = []
    for name, s in _summaries(src).items():
        rows.append(
            {
                "phase": name,
                "order": s.order,
                "requested": s.requested,
                "completed": s.completed,
                "failed": s.failed,
                "duration (s)": round(s.duration_ns / 1e9, 3),
                "throughput (samples/s)": round(s.samples_per_second, 1),
                "p50 latency (ms)": to_ms(s.latency.p50_ns),
                "p90 latency (ms)": to_ms(s.latency.p90_ns),
                "p99 latency (ms)": to_ms(s.latency.p99_ns),
                "p50 TTFT (ms)": to_ms(s.ttft.p50_ns) if s.ttft else None,
                "tokens/s": s.tokens_per_second,
                "distinct outputs": s.distinct_outputs,
                "score": s.score,
                "score name": s.score_name,
                "complete": s.complete,
                # the load generator beside its verdict on itself (client_bound)
                "client": _client_cell(s),
                "client-bound": s.client_bound is not None,
            }
        )
    frame = pd.DataFrame(rows).set_index("phase") if rows else pd.DataFrame()
    if "client" in frame and frame["client"].isna().all():  # in memory: no client ran
        frame = frame.drop(columns=["client", "client-bound"])
    for column in ("p50 TTFT (ms)", "tokens/s", "score"):
        if column in frame and frame[column].isna().all():
            frame = frame.drop(columns=column)
    return frame.round(3)


def _client_cell(s: PhaseSummary) -> str | None:
    """Which HTTP client ran the phase, in how many processes ("h1 × 2"); None in memory."""
    if s.http_client is None:
        return None
    return s.http_client if s.workers == 1 else f"{s.http_client} × {s.workers}"


PHASE_COLUMNS = ("phase", "ok/requested", "failed", "p50 ms", "p90 ms", "p99 ms", "TTFT p50 ms",
                 "tokens/s")  # fmt: skip


def phase_rows(src: SummariesLike) -> list[tuple[str, ...]]:
    """The CLI's per-phase table as text cells (PHASE_COLUMNS): latencies in ms, "-" where a
    phase has no value (TTFT needs streaming, tokens/s a token count)."""

    def ms(ns: int | None) -> str:
        return "-" if ns is None else f"{ns / 1e6:.1f}"

    rows: list[tuple[str, ...]] = []
    for name, s in _summaries(src).items():
        rows.append(
            (
                name,
                f"{s.completed}/{s.requested}",
                str(s.failed),
                ms(s.latency.p50_ns),
                ms(s.latency.p90_ns),
                ms(s.latency.p99_ns),
                ms(s.ttft.p50_ns if s.ttft else None),
                "-" if s.tokens_per_second is None else f"{s.tokens_per_second:.0f}",
            )
        )
    return rows


def text_table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A plain aligned table (first column left, the rest right)."""
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for row in table:
        cells = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def phase_table_text(src: SummariesLike) -> str:
    """The per-phase summary the CLI prints (count, failures, latency percentiles, TTFT,
    tokens/s), like guidellm's and vLLM's benchmark tables."""
    return text_table(PHASE_COLUMNS, phase_rows(src))
