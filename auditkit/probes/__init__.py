"""Caching probes: small, targeted experiments that tell caching kinds apart.

Each probe sends a few groups of queries one at a time and returns a ProbeResult: per-query
records, a per-group table and a plain-words finding. The package splits the work three ways:

- `catalogue`: which probes exist, what each sends, which analysis reads it (the signature table
  is there);
- `runner`: the probe target and issuing groups through the load generator, with live results;
- `analysis`: pure records → tables, findings, diagnosis.

The names below are the stable API (notebooks/investigate_caching.ipynb, auditkit.widgets).
"""

from __future__ import annotations

from auditkit.probes.analysis import (
    DROP_RATIO,
    PROBE_COLUMNS,
    Findings,
    ProbeResult,
    classify_warm,
    diagnose,
    group_table,
    to_probe_records,
)
from auditkit.probes.catalogue import (
    CATALOGUE,
    LONG_PROMPT_ROWS,
    PROBES,
    Probe,
    ProbeOptions,
    cold_vs_warm,
    output_identity,
    repeat_vs_distinct,
    shared_prefix,
)
from auditkit.probes.runner import Group, ProbeTarget, StopFlag, UpdateCallback, run_groups

__all__ = [
    "CATALOGUE",
    "DROP_RATIO",
    "LONG_PROMPT_ROWS",
    "PROBES",
    "PROBE_COLUMNS",
    "Findings",
    "Group",
    "Probe",
    "ProbeOptions",
    "ProbeResult",
    "ProbeTarget",
    "StopFlag",
    "UpdateCallback",
    "classify_warm",
    "cold_vs_warm",
    "diagnose",
    "group_table",
    "output_identity",
    "repeat_vs_distinct",
    "run_groups",
    "shared_prefix",
    "to_probe_records",
]
