"""The five audits give the same verdicts and files on the same simulated runs as the code they
were recorded with (tests/audits/golden/, recorded before the audit kit refactor, issue 19).

Each case runs one audit end to end on the virtual clock (fixed seeds and salt, so a run is
exact) and compares every file it writes, except the Parquet records and the volatile fields
(times, versions, temporary paths), with the recorded one. JSON and YAML files may gain keys (a
new field is not a changed verdict); every recorded key must keep its value.

An intended change of output re-records them: `AUDITKIT_WRITE_GOLDEN=1 pytest
tests/audits/test_same_verdicts.py`, and the diff of tests/audits/golden/ says what changed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from auditkit.audits import load_config
from auditkit.runner import run_audit

GOLDEN = Path(__file__).with_name("golden")
WRITE = os.environ.get("AUDITKIT_WRITE_GOLDEN") == "1"
#: keys whose values differ from run to run (or carry no verdict): left out of the comparison
VOLATILE = {"started_at", "finished_at", "auditkit_version", "schema_version", "output_dir"}

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "test04_offline_none": ("test04", {"test04": {"run_salt": "g0ld3n"}}),
    "test04_offline_output": (
        "test04",
        {"test04": {"run_salt": "g0ld3n"}, "mock": {"cache": "output"}},
    ),
    "test04_single_sequential_prefix": (
        "test04",
        {
            "test04": {"run_salt": "g0ld3n", "design": "sequential", "samples": 128},
            "load": {"scenario": "single-stream"},
            "mock": {"cache": "prefix"},
        },
    ),
    "test04_single_counterbalanced_none": (
        "test04",
        {
            "test04": {"run_salt": "g0ld3n", "design": "counterbalanced", "samples": 256},
            "load": {"scenario": "single-stream"},
        },
    ),
    "test04_extra_rounds": (
        "test04",
        {
            "test04": {"run_salt": "g0ld3n", "samples": 128, "rounds": 2},
            "load": {"scenario": "single-stream"},
            "mock": {"jitter_cv": 0.3},
        },
    ),
    "test05_pass": ("test05", {"test05": {"samples": 64, "warmup": 8}}),
    "test05_fast_order": (
        "test05",
        {"test05": {"samples": 64, "warmup": 8}, "mock": {"misbehaviour": {"fast_order_seed": 0}}},
    ),
    "test05_extra_rounds": ("test05", {"test05": {"samples": 8, "warmup": 8, "rounds": 2}}),
    "test01_pass": ("test01", {"test01": {"samples": 24, "log_samples": 12, "warmup": 4}}),
    "test01_change_under_load": (
        "test01",
        {
            "test01": {"samples": 24, "log_samples": 12, "warmup": 4},
            "mock": {"misbehaviour": {"change_under_load": True}},
        },
    ),
    "test06_pass": ("test06", {"test06": {"samples": 20, "warmup": 4}}),
    "test06_inflate_tokens": (
        "test06",
        {"test06": {"samples": 20, "warmup": 4}, "mock": {"misbehaviour": {"inflate_tokens": 2}}},
    ),
    "test06_fake_first_token": (
        "test06",
        {
            "test06": {"samples": 20, "warmup": 4},
            "mock": {"misbehaviour": {"fake_first_token": True}},
        },
    ),
    "test06_repeat_stop": (
        "test06",
        {"test06": {"samples": 20, "warmup": 4}, "mock": {"misbehaviour": {"repeat_stop": 2}}},
    ),
    "test09_pass": ("test09", {"test09": {"samples": 24, "warmup": 4}}),
    "test09_truncate_under_load": (
        "test09",
        {
            "test09": {"samples": 24, "warmup": 4},
            "mock": {"misbehaviour": {"truncate_under_load": 0.5}},
        },
    ),
}


#: JSON numbers may move in their last bits when a library computes the same formula another
#: way (scipy.stats' p-values, now computed without it); the text files stay byte for byte
FLOAT_REL_TOL = 1e-12


def _stable(value: Any) -> Any:
    """`value` without its volatile keys, at any depth."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _text(path: Path, root: Path) -> str:
    text = path.read_text()
    return "\n".join(
        line for line in text.replace(str(root), "<out>").splitlines() if "output_dir" not in line
    )


def snapshot(root: Path) -> dict[str, Any]:
    """Every file a run wrote under `root` (relative path → content), records left out."""
    out: dict[str, Any] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".parquet":
            continue
        if path.suffix == ".json":
            out[rel] = _stable(json.loads(path.read_text()))
        else:
            out[rel] = _text(path, root)
    return out


def _missing(golden: Any, now: Any, where: str) -> list[str]:
    """Where `now` differs from `golden` (keys `now` adds to a JSON object are allowed)."""
    if isinstance(golden, dict) and isinstance(now, dict):
        out: list[str] = []
        for key, value in golden.items():
            if key not in now:
                out.append(f"{where}.{key}: missing")
            else:
                out += _missing(value, now[key], f"{where}.{key}")
        return out
    if isinstance(golden, list) and isinstance(now, list) and len(golden) == len(now):
        return [d for i, (g, n) in enumerate(zip(golden, now, strict=True))
                for d in _missing(g, n, f"{where}[{i}]")]  # fmt: skip
    if _floats(golden, now) and math.isclose(golden, now, rel_tol=FLOAT_REL_TOL):
        return []
    if golden != now:
        return [f"{where}: {str(golden)[:160]!r} -> {str(now)[:160]!r}"]
    return []


def _floats(*values: Any) -> bool:
    return all(isinstance(v, float) for v in values)


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_verdict_and_files_as_recorded(case: str, tmp_path: Path) -> None:
    key, over = CASES[case]
    cfg = load_config(
        None,
        {
            **over,
            "mock": {"simulated": True, **over.get("mock", {})},
            "output_dir": str(tmp_path),
        },
    )
    run = run_audit(cfg, key)
    now = {"verdict": run.result.verdict, "files": snapshot(tmp_path)}
    path = GOLDEN / f"{case}.json"
    if WRITE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    golden = json.loads(path.read_text())
    # config.yaml is read as YAML, like the JSON files: a new audit's block or a new mock knob
    # adds keys to it, which changes no verdict; every recorded setting must keep its value
    for files in (golden["files"], now["files"]):
        for name in [n for n in files if n.endswith(".yaml")]:
            files[name] = yaml.safe_load(files[name])
    problems = _missing(golden, now, case)
    assert not problems, "\n".join(problems[:20])
