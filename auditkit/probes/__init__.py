"""Caching probes: small, replicated experiments that tell caching kinds apart.

Each probe sends `k` rounds of a cold query (a fresh prompt) beside a warm one (a repeat, in the
probe's pattern: back-to-back, interleaved, sharing a prefix, at T>0, or in flight at once) and
returns a ProbeResult: per-query records, a table of effects with confidence intervals, and a
plain-words finding that names nothing the interval does not support. The package splits the
work three ways:

- `catalogue`: which probes exist, what each sends, which analysis reads it (the signature table
  is there);
- `runner`: the probe target, and sending a probe's plan through the load generator as one
  phase, with live results;
- `analysis`: pure records → effects, findings, diagnosis.

The names below are the stable API (notebooks/investigate_caching.ipynb, auditkit.widgets).
"""

from __future__ import annotations

from auditkit.probes.analysis import Findings as Findings
from auditkit.probes.analysis import ProbeResult as ProbeResult
from auditkit.probes.analysis import diagnose as diagnose
from auditkit.probes.analysis import diagnose_kind as diagnose_kind
from auditkit.probes.analysis import history_row as history_row
from auditkit.probes.catalogue import CATALOGUE as CATALOGUE
from auditkit.probes.catalogue import run_probe as run_probe
from auditkit.probes.export import export_records as export_records
from auditkit.probes.runner import Plan as Plan
from auditkit.probes.runner import ProbeTarget as ProbeTarget
from auditkit.probes.runner import Send as Send
from auditkit.probes.runner import StopFlag as StopFlag
from auditkit.probes.runner import UpdateCallback as UpdateCallback
from auditkit.probes.runner import run_plan as run_plan
