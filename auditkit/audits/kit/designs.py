"""How an audit lays out the phases of two roles it compares, and how their blocks are pooled
back into the one phase upstream's rule reads. Pure: plain counts in, `Slot`s out; the audit
turns each slot into a `RunSpec` (`spec`) with its own orders, loads and salts.

| design          | planned phases                                  | an extra round r      |
|-----------------|-------------------------------------------------|-----------------------|
| sequential      | R, A                                            | (none)                |
| counterbalanced | R_1 A_1 A_2 R_2 (halves: warm-up and drift cancel) | A R (r odd), R A    |
| alternating     | pairs R A, A R, R A, ... (R_i, A_i)             | half as many pairs, R_xr_j |

A phase's role, block and round are fields of its spec; its name (`reference_1`,
`audit_x1_2`, ...) is its folder name and is never parsed.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from auditkit.data import SampleOrder
from auditkit.errors import InputError
from auditkit.metrics import summarize
from auditkit.plan import LoadPattern, Role, RunSpec
from auditkit.results import PhaseResult, PhaseSummary


@dataclass(frozen=True)
class Slot:
    """One phase of a design: its role, block (None: the role's only phase in its round),
    round (0: planned), samples, the samples of its role laid out before it in the same call
    (`skip`: where its rows continue that role's order), control twins and minimum duration."""

    role: Role
    block: int | None
    round: int
    samples: int
    skip: int = 0
    twins: int = 0
    duration_s: float = 0.0

    @property
    def name(self) -> str:
        """The folder name: role, `x{round}` for an extra round, then the block number."""
        block = "" if self.block is None else str(self.block)
        return "_".join(p for p in (self.role, f"x{self.round}" * bool(self.round), block) if p)


def spec(slot: Slot, order: SampleOrder, load: LoadPattern, **kw: Any) -> RunSpec:
    """The slot's phase with `order` and `load` (salts, twin salt, ... in `kw`)."""
    return RunSpec(
        slot.name, order, slot.samples, load, slot.duration_s, twins=slot.twins, role=slot.role,
        block=slot.block, round=slot.round, **kw,
    )  # fmt: skip


def half(samples: int, unit: int) -> int:
    """The first of two blocks: half the samples in whole queries of `unit`, at least one."""
    return max(unit, (samples // unit // 2) * unit)


def split(total: int, parts: int, unit: int) -> list[int]:
    """`total` samples in `parts` blocks of whole queries of `unit` samples (remainder first)."""
    queries, rest = divmod(total // unit, parts)
    return [(queries + (1 if i < rest else 0)) * unit for i in range(parts)]


def check_blocks(key: str, design: str, blocks: int, smallest: int, unit: int, timed: bool) -> None:
    """A design that splits each phase in `blocks` blocks needs no min_duration (a block
    extended in time would run into the next block's rows) and a whole query in each block."""
    if timed:
        raise InputError(
            f"{key}.design {design} cannot be combined with load.min_duration_s (or "
            "--mlperf-run-rules): a block extended in time would reuse the next block's rows; "
            "use the sequential design for timed runs"
        )
    if smallest < blocks * unit:
        raise InputError(
            f"{key}.design {design} splits each phase in {blocks} blocks: it needs at least "
            f"{blocks * unit} samples in each phase (got {smallest})"
        )


def sequential(
    first: Role, second: Role, samples: tuple[int, int], duration_s: float, twins: int = 0
) -> list[Slot]:
    """One phase of each role, `first` then `second` (the control twins in `first`)."""
    return [
        Slot(first, None, 0, samples[0], twins=twins, duration_s=duration_s),
        Slot(second, None, 0, samples[1], duration_s=duration_s),
    ]


def counterbalanced(
    first: Role,
    second: Role,
    samples: tuple[int, int],
    unit: int,
    duration_s: float,
    twins: int = 0,
) -> list[Slot]:
    """R A A R: each role in two halves (`half`), the second role's back to back, so warm-up
    and linear drift cancel; the control twins go in the first block."""
    f1, s1 = half(samples[0], unit), half(samples[1], unit)
    d = duration_s / 2
    return [
        Slot(first, 1, 0, f1, twins=twins, duration_s=d),
        Slot(second, 1, 0, s1, duration_s=d),
        Slot(second, 2, 0, samples[1] - s1, skip=s1, duration_s=d),
        Slot(first, 2, 0, samples[0] - f1, skip=f1, duration_s=d),
    ]


def extra_round(
    first: Role, second: Role, round_: int, samples: tuple[int, int], skip: tuple[int, int]
) -> list[Slot]:
    """One more block of each role, `second` first in odd rounds (a planned R A A R ends on R),
    continuing each role's order after the `skip` rows its blocks issued so far."""
    a = Slot(first, None, round_, samples[0], skip=skip[0])
    b = Slot(second, None, round_, samples[1], skip=skip[1])
    return [b, a] if round_ % 2 else [a, b]


def alternating(
    first: Role,
    second: Role,
    sizes: tuple[list[int], list[int]],
    twins: list[int],
    round_: int = 0,
    skip: int = 0,
) -> list[Slot]:
    """Block pairs in the order F S, S F, F S, ...: a busy spell of client or server lands on
    both roles alike, and linear drift cancels within every two pairs. `sizes` are the blocks'
    samples of each role (one per pair); `twins` the first role's control twins per block
    (at most its samples); `skip` the first role's rows issued before this call."""
    slots: list[Slot] = []
    offset = skip
    for i, (f, s) in enumerate(zip(*sizes, strict=True)):
        a = Slot(first, i + 1, round_, f, skip=offset, twins=min(twins[i], f))
        b = Slot(second, i + 1, round_, s)
        offset += f
        slots += [a, b] if i % 2 == 0 else [b, a]
    return slots


def of_role(role: Role, phases: list[PhaseResult]) -> list[PhaseResult]:
    """The phases (blocks) of one role, in run order."""
    return [p for p in phases if p.spec.role == role]


def planned(phases: list[PhaseResult]) -> list[PhaseResult]:
    """The planned phases (round 0): what a LoadGen run has, what upstream's rule reads."""
    return [p for p in phases if p.spec.round == 0]


def rounds_done(phases: list[PhaseResult]) -> int:
    """Extra rounds run so far."""
    return max((p.spec.round for p in phases), default=0)


def issued(role: Role, phases: list[PhaseResult]) -> int:
    """Rows the blocks of one role issued so far (main queries, twins not counted): where an
    extra round continues its order (min_duration can carry a phase past its samples)."""
    return sum(
        int((p.columns("variant")["variant"] == "main").sum()) for p in of_role(role, phases)
    )


def pool(role: Role, phases: list[PhaseResult]) -> PhaseResult:
    """The one phase of `role` that upstream's rule reads: its only phase, or its blocks
    laid end to end (`pool_blocks`), named after the role."""
    blocks = of_role(role, phases)
    return blocks[0] if len(blocks) == 1 else pool_blocks(role, blocks)


#: how a pooled phase's order ends ("... in 8 blocks"): pool_blocks writes it, is_pooled reads it
POOLED_ORDER = re.compile(r" in \d+ blocks$")


def is_pooled(summary: PhaseSummary) -> bool:
    """True for the summary of blocks laid end to end (pool_blocks), not of one phase."""
    return bool(POOLED_ORDER.search(summary.order))


def pool_blocks(name: str, blocks: list[PhaseResult]) -> PhaseResult:
    """One phase from blocks: records laid end to end on one clock (each block shifted by the
    ones before it), then summarized as a single LoadGen phase."""
    frames: list[pd.DataFrame] = []
    shift = next_id = 0
    for block in blocks:
        frame = block.records.copy()
        for column in ("scheduled_ns", "sent_ns", "first_byte_ns", "first_token_ns"):
            frame[column] = frame[column] + shift
        frame["completed_ns"] = frame["completed_ns"] + shift
        frame["query_id"] = frame["query_id"] + next_id
        frame["phase"] = name
        # which block: the ratio pairs the i-th block of one role with the i-th of the other
        frame["block"] = len(frames) + 1
        frames.append(frame)
        if len(frame):  # an empty block (every query failed) shifts nothing
            next_id = int(frame["query_id"].max()) + 1
        shift += block.summary.duration_ns
    records = pd.concat(frames, ignore_index=True)
    first = blocks[0].spec
    spec_ = dataclasses.replace(
        first,
        name=name,
        samples=sum(b.spec.samples for b in blocks),
        twins=sum(b.spec.twins for b in blocks),
        min_duration_s=sum(b.spec.min_duration_s for b in blocks),
        block=None,
    )
    summary = summarize(records, spec_)
    lags = [b.summary.loop_lag_p99_ns for b in blocks if b.summary.loop_lag_p99_ns is not None]
    bound = [b.summary.client_bound for b in blocks if b.summary.client_bound]
    summary = summary.model_copy(
        update={
            "order": f"{first.order.describe()} in {len(blocks)} blocks",
            "loop_lag_p99_ns": max(lags) if lags else None,
            "client_bound": bound[0] if bound else None,
            "client_ceiling_qps": blocks[0].summary.client_ceiling_qps,
            "http_client": blocks[0].summary.http_client,
            "workers": max(b.summary.workers for b in blocks),
            "request_headers": blocks[0].summary.request_headers,
        }
    )
    return PhaseResult(spec_, records, summary)
