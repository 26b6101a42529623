"""Clock offsets between client hosts and the driver, NTP-style. Pure (stdlib only).

A phase spread over several hosts (loadgen/ray_hosts.py) times every query on the host that
sent it, so a latency never mixes two clocks; what an offset moves is where that host's share
sits on the phase's time axis. Before the phase the driver asks each host for its clock a few
times: one round is (driver sends at `sent_ns`, host reads `host_ns`, driver gets the answer
at `received_ns`). The host read its clock somewhere inside the round trip, so
`offset = host_ns - (sent_ns + received_ns) / 2` is off by at most half the round trip: the
sample with the smallest round trip bounds the offset best (NTP's minimum-delay filter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from auditkit.errors import SetupError

#: rounds of ping-pong per host (the first one also warms the path: connections, imports)
ROUNDS = 8


@dataclass(frozen=True)
class ClockSample:
    """One round trip: driver clock at send and receive, the host's clock in between (ns)."""

    sent_ns: int
    host_ns: int
    received_ns: int

    @property
    def rtt_ns(self) -> int:
        return self.received_ns - self.sent_ns

    @property
    def offset_ns(self) -> int:
        """The host's clock minus the driver's, at the round trip's midpoint."""
        return self.host_ns - (self.sent_ns + self.received_ns) // 2


@dataclass(frozen=True)
class ClockOffset:
    """A host's clock offset to the driver (host − driver), from its min-RTT sample."""

    offset_ns: int
    rtt_ns: int
    #: the offset is right within this (half the round trip of the sample it came from)
    uncertainty_ns: int
    rounds: int

    def to_driver(self, host_ns: int) -> int:
        """A reading of the host's clock on the driver's clock."""
        return host_ns - self.offset_ns

    def to_host(self, driver_ns: int) -> int:
        """A reading of the driver's clock on the host's clock (the phase start, mapped)."""
        return driver_ns + self.offset_ns


def estimate_offset(samples: Sequence[ClockSample]) -> ClockOffset:
    """The offset from the sample with the smallest round trip (ValueError if none, or if a
    round trip is negative: the driver's clock must be monotonic)."""
    if not samples:
        raise ValueError("no clock samples")
    if any(s.rtt_ns < 0 for s in samples):
        raise ValueError("a clock sample's round trip is negative (the driver clock went back)")
    best = min(samples, key=lambda s: s.rtt_ns)
    return ClockOffset(
        offset_ns=best.offset_ns,
        rtt_ns=best.rtt_ns,
        uncertainty_ns=(best.rtt_ns + 1) // 2,
        rounds=len(samples),
    )


def check_offsets(offsets: Mapping[str, ClockOffset], bound_ms: float) -> None:
    """SetupError (exit 3, one line) when a host's offset is known less well than `bound_ms`:
    its timestamps could sit that far off the others' on the phase's time axis."""
    bound_ns = bound_ms * 1e6
    worst = max(offsets.items(), key=lambda kv: kv[1].uncertainty_ns, default=None)
    if worst is not None and worst[1].uncertainty_ns > bound_ns:
        host, off = worst
        raise SetupError(
            f"host {host}: clock offset known only within ±{off.uncertainty_ns / 1e6:.3f} ms "
            f"(min round trip {off.rtt_ns / 1e6:.3f} ms over {off.rounds} rounds), above the "
            f"{bound_ms:g} ms bound; use hosts nearer the driver or raise "
            "--max-clock-offset-ms"
        )
