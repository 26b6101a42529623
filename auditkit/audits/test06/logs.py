"""TEST06's upstream rule on an accuracy log, line for line as compliance/TEST06/
run_verification.py (mlcommons/inference b66003e1) prints it. Pure: entries in, lines out.

Each entry's `data` is int32 token ids (`--dtype int32`, the default):
- EOS check: from the last token backwards `while i > 0` (index 0 is never examined), FAIL
  when a second EOS is met before a non-EOS token: `[x, EOS, EOS]` fails, `[EOS, EOS]` passes;
- first-token check (not in Offline: `Skipped`): `token_data` equals `data` on their common
  prefix (`zip`); an entry without `token_data` fails it;
- sample-length check: `len(data) == token_count`.
`TEST06 verification complete` iff all three pass, else `... failed`.

Upstream's `--eos_token_id` has no `type=int`: given on the command line it is a string that
never equals a token, so the EOS check always passes. auditkit takes the id as a number (the
check upstream means); say so when comparing with a run of the script given `-e`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auditkit.audits.kit.accuracy_log import AccuracyEntry
from auditkit.errors import InputError

#: upstream's default --eos_token_id
UPSTREAM_EOS = 2
#: the scenario where upstream skips the first-token check (LoadGen's name)
NO_FIRST_TOKEN = "Offline"


def int32_ids(data: bytes) -> list[int] | None:
    """`np.frombuffer(data, int32)`; None when the length is not a multiple of 4 (numpy raises)."""
    if len(data) % 4:
        return None
    return [int.from_bytes(data[i : i + 4], "little", signed=True) for i in range(0, len(data), 4)]


def eos_ok(ids: Sequence[int], eos: int) -> bool:
    """upstream's eos_check on one entry."""
    i, n = len(ids) - 1, 0
    while i > 0:
        if ids[i] == eos:
            n += 1
        if n >= 2:
            return False
        if ids[i] != eos:
            break
        i -= 1
    return True


@dataclass(frozen=True)
class Test06Check:
    """The three checks (first token None: skipped), the console-only error lines, decision."""

    first_token: bool | None
    eos: bool
    sample_length: bool
    errors: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.eos and self.first_token is not False and self.sample_length

    def lines(self) -> list[str]:
        first = "Skipped" if self.first_token is None else str(self.first_token)
        return [
            f"First token check pass: {first}",
            f"EOS check pass: {self.eos}",
            f"Sample length check pass: {self.sample_length}",
            f"TEST06 verification {'complete' if self.passed else 'failed'}",
        ]


def verify(entries: Sequence[AccuracyEntry], scenario: str, eos_token_id: int) -> Test06Check:
    """run_verification.py on the entries of one accuracy log; `scenario` in LoadGen's
    spelling (Offline, Server, SingleStream, ...). InputError where the script would stop with
    a traceback (an entry's data not whole int32, or no token_count)."""
    errors: list[str] = []
    decoded = [int32_ids(e.data) for e in entries]
    eos = True
    for ids in decoded:
        if ids is None:
            errors.append("Unexpected error occured while doing the EOS check")
            eos = False
            break
        if not eos_ok(ids, eos_token_id):
            eos = False
            break
    first: bool | None = None
    if scenario != NO_FIRST_TOKEN:
        first = True
        for e, ids in zip(entries, decoded, strict=True):
            token = int32_ids(e.token_data) if e.token_data is not None else None
            if ids is None or token is None:
                errors.append("Unexpected error occured while doing the first token check")
                first = False
                break
            if any(a != b for a, b in zip(ids, token, strict=False)):
                first = False
                break
    length = True
    for i, (e, ids) in enumerate(zip(entries, decoded, strict=True)):
        if ids is None or e.token_count is None:
            what = "its data is not whole int32 tokens" if ids is None else "no token_count"
            raise InputError(
                f"accuracy log entry {i} (qsl_idx {e.qsl_idx}): {what}; upstream's "
                "sample-length check stops with an error on it"
            )
        if len(ids) != e.token_count:
            length = False
            break
    return Test06Check(first, eos, length, tuple(errors))
