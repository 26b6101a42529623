"""Read LoadGen's log files: mlperf_log_summary.txt and mlperf_log_detail.txt. Pure.

The summary is read the way upstream's compliance verify_performance.py scripts read it: line
by line, `Scenario` sets the mode, the mode decides which line holds the score, and a later
matching line overwrites an earlier one. On top of that, auditkit refuses what upstream would
silently misread (no scenario, no result line, no score, a cut-off file): `LogFormatError`
names the file and the problem.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from auditkit.errors import InputError

AUDITKIT_SCENARIO = {
    "Offline": "offline",
    "SingleStream": "single-stream",
    "MultiStream": "multi-stream",
    "Server": "server",
}
# upstream's patterns (re.match, i.e. anchored at the line start)
SCORE_PATTERNS = {
    "SingleStream": re.compile(r".*Early stopping (90th|90.0th|99.9th) percentile estimate"),
    "MultiStream": re.compile(r".*Early stopping (99th|99.0th) percentile estimate"),
    "Server": re.compile(r"Completed samples per second"),
    "Offline": re.compile(r"Samples per second"),
}
TARGET_LATENCY = re.compile(r"target_latency \(ns\)")
ERROR_LINE = re.compile(r"\d+ ERROR")
TRAILER = re.compile(r"(No errors encountered during test\.|\d+ ERRORS? encountered)")
STAT_LINE = re.compile(r"(Min|Max|Mean|\d+\.\d+ percentile) latency \(ns\)\s*:\s*(\d+)\s*$")
STAT_KEYS = {"Min": "min_ns", "Max": "max_ns", "Mean": "mean_ns"}
PERCENTILE_KEYS = {
    "50.00": "p50_ns",
    "90.00": "p90_ns",
    "95.00": "p95_ns",
    "97.00": "p97_ns",
    "99.00": "p99_ns",
    "99.90": "p999_ns",
}
MAX_SUMMARY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class LogFile:
    """A LoadGen run's files as text: the summary and, when it lies beside it, the detail log."""

    source: str
    summary: str
    detail: str | None = None
    #: mlperf_log_accuracy.json, when read (`read_run_dir`)
    accuracy: str | None = None
    #: the paths the texts came from (what upstream's scripts print)
    detail_path: str | None = None
    accuracy_path: str | None = None


class LogFormatError(InputError):
    """A LoadGen log file that cannot be read as one (exit code 2, one line)."""


@dataclass(frozen=True)
class LoadGenSummary:
    """What a mlperf_log_summary.txt says, as upstream's compliance scripts would read it."""

    source: str
    scenario: str  # LoadGen's spelling: Offline, SingleStream, MultiStream, Server
    valid: bool
    score_text: str | None  # the raw value upstream parses
    score: float | None  # upstream's number: the value, or 1e9 / value for Single/MultiStream
    early_stopping_latency_ns: int | None
    target_latency_text: str | None
    errors: int
    error_lines: tuple[str, ...] = ()
    recommendations: tuple[str, ...] = ()
    latency: dict[str, int] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def auditkit_scenario(self) -> str:
        return AUDITKIT_SCENARIO[self.scenario]

    @property
    def target_latency_ns(self) -> int | None:
        if self.target_latency_text is None:
            return None
        try:
            return int(float(self.target_latency_text))
        except ValueError:
            return None


def _value(line: str) -> str:
    """upstream's `line.split(": ", 1)[1].strip()`."""
    parts = line.split(": ", 1)
    return parts[1].strip() if len(parts) == 2 else ""


def parse_summary(text: str, source: str = "summary") -> LoadGenSummary:
    """Parse summary text; LogFormatError (naming `source`) when it is not a complete summary."""

    def bad(problem: str) -> LogFormatError:
        return LogFormatError(f"{source}: {problem}")

    scenario = ""
    valid: bool | None = None
    score_text: str | None = None
    score_line = 0
    target: str | None = None
    errors = 0
    error_lines: list[str] = []
    recommendations: list[str] = []
    latency: dict[str, int] = {}
    fields: dict[str, str] = {}
    trailer = False
    in_recommendations = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if re.match("Scenario", line):
            scenario = _value(line)
            if scenario not in SCORE_PATTERNS:
                known = ", ".join(SCORE_PATTERNS)
                raise bad(f"line {lineno}: unknown scenario {scenario!r} (expected one of {known})")
            continue
        pattern = SCORE_PATTERNS.get(scenario)
        if pattern is not None and pattern.match(line):
            score_text, score_line = _value(line), lineno
            continue
        if scenario == "Server" and TARGET_LATENCY.match(line):
            target = _value(line)
            continue
        if re.match("Result is", line):
            verdict = _value(line)
            if verdict not in ("VALID", "INVALID"):
                raise bad(f"line {lineno}: 'Result is' must be VALID or INVALID (got {verdict!r})")
            valid = verdict == "VALID"
            continue
        if ERROR_LINE.match(line):
            errors += int(line.split(" ", 1)[0])
            error_lines.append(line.strip())
        if TRAILER.match(line):
            trailer = True
        if line.startswith("Recommendations:"):
            in_recommendations = True
            continue
        if in_recommendations:
            if line.startswith(" * "):
                recommendations.append(line[3:].strip())
                continue
            in_recommendations = False
        stat = STAT_LINE.match(line)
        if stat:
            word = stat.group(1)
            key = STAT_KEYS.get(word) or PERCENTILE_KEYS.get(word.split()[0])
            # MultiStream prints per-query stats only; other scenarios per-sample stats only
            if key is not None and key not in latency:
                latency[key] = int(stat.group(2))
            continue
        if " : " in line and not line.startswith(" "):
            key, _, value = line.partition(" : ")
            fields.setdefault(key.strip(), value.strip())
    if not scenario:
        raise bad("no 'Scenario :' line; is this a LoadGen mlperf_log_summary.txt?")
    if valid is None:
        raise bad("no 'Result is :' line (truncated, or not a LoadGen summary)")
    if not trailer:
        raise bad(
            "truncated: no closing 'No errors encountered during test.' or "
            "'N ERROR(S) encountered' line"
        )
    if scenario == "Server" and target is None:
        raise bad("Server summary has no 'target_latency (ns):' line under Test Parameters Used")
    score: float | None = None
    es_ns: int | None = None
    if score_text is not None:
        try:
            number = float(score_text)
        except ValueError:
            raise bad(f"line {score_line}: score {score_text!r} is not a number") from None
        if scenario in ("SingleStream", "MultiStream"):
            if number <= 0:
                raise bad(f"line {score_line}: latency estimate must be positive")
            es_ns = int(number)
            score = 1e9 / number
        else:
            score = number
    elif valid:
        what = SCORE_PATTERNS[scenario].pattern.lstrip(".*")
        raise bad(f"VALID {scenario} summary has no '{what}' line (truncated?)")
    return LoadGenSummary(
        source=source,
        scenario=scenario,
        valid=valid,
        score_text=score_text,
        score=score,
        early_stopping_latency_ns=es_ns,
        target_latency_text=target,
        errors=errors,
        error_lines=tuple(error_lines),
        recommendations=tuple(recommendations),
        latency=latency,
        fields=fields,
    )


def read_text(path: str | Path) -> str:
    """A log file's text; LogFormatError naming the file when it cannot be read as UTF-8."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_SUMMARY_BYTES:
            raise LogFormatError(f"{p}: {size} bytes is too large for a LoadGen summary")
        return p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise LogFormatError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise LogFormatError(f"{p}: is a directory, expected mlperf_log_summary.txt") from None
    except UnicodeDecodeError:
        raise LogFormatError(f"{p}: not UTF-8 text (is this a LoadGen summary?)") from None
    except OSError as exc:
        raise LogFormatError(f"{p}: cannot read ({exc.strerror})") from None


def read_summary(path: str | Path) -> LoadGenSummary:
    """Parse a mlperf_log_summary.txt file."""
    return parse_summary(read_text(path), str(path))


def read_log_file(summary_path: str | Path) -> LogFile:
    """A summary file and the mlperf_log_detail.txt beside it (if any) as a LogFile."""
    path = Path(summary_path)
    detail = path.with_name("mlperf_log_detail.txt")
    return LogFile(
        source=str(path),
        summary=read_text(path),
        detail=read_text(detail) if detail.is_file() and detail != path else None,
    )


MLLOG = ":::MLLOG"


def parse_detail(text: str, source: str = "detail log") -> dict[str, object]:
    """A mlperf_log_detail.txt's `:::MLLOG` values by key, read as upstream's MLPerfLog reads
    them (tools/submission/log_parser.py): JSON after the marker, the first message of a key
    wins, values at full precision. LogFormatError when the first line has no marker or a
    marked line is not JSON (MLPerfLog's strict mode)."""
    values: dict[str, object] = {}
    for i, line in enumerate(text.splitlines()):
        line = line.rstrip()
        if i == 0 and not line.startswith(MLLOG):
            raise LogFormatError(f"{source}: not a LoadGen detail log (no {MLLOG} on line 1)")
        if not line.startswith(MLLOG):
            continue
        try:
            message = json.loads(line[len(MLLOG) :])
            values.setdefault(str(message["key"]), message.get("value"))
        except (ValueError, KeyError, TypeError):
            raise LogFormatError(f"{source}: line {i + 1} is not a valid {MLLOG} record") from None
    return values


ACCURACY_FILE = "mlperf_log_accuracy.json"


def read_run_dir(path: str | Path) -> LogFile:
    """A LoadGen run's files from its folder (or any file in it): the summary, the detail log
    and the accuracy log, each when present (no size cap on the accuracy log: LLM runs log
    every answer). LogFormatError when the path does not exist or holds none of them."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    if not p.exists():
        raise LogFormatError(f"{p}: not found")
    files = {
        name: (p if p.is_file() and p.name == name else folder / name)
        for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", ACCURACY_FILE)
    }
    if p.is_file() and p.name not in files:
        # a file under another name: an accuracy log if it ends .json, else a detail log
        files[ACCURACY_FILE if p.suffix == ".json" else "mlperf_log_detail.txt"] = p
    found = {name: f for name, f in files.items() if f.is_file()}
    if not found:
        raise LogFormatError(
            f"{p}: no mlperf_log_summary.txt, mlperf_log_detail.txt or {ACCURACY_FILE} there"
        )
    accuracy = found.get(ACCURACY_FILE)
    detail = found.get("mlperf_log_detail.txt")
    summary = found.get("mlperf_log_summary.txt")
    try:
        accuracy_text = accuracy.read_bytes().decode("utf-8") if accuracy else None
    except (OSError, UnicodeDecodeError) as exc:
        raise LogFormatError(f"{accuracy}: cannot read as UTF-8 text ({exc})") from None
    return LogFile(
        source=str(p),
        summary=read_text(summary) if summary else "",
        detail=read_text(detail) if detail else None,
        accuracy=accuracy_text,
        detail_path=str(detail) if detail else None,
        accuracy_path=str(accuracy) if accuracy else None,
    )
