"""Clocks for the load generator: where every timestamp of a phase comes from.

A transport brings its clock: the real one reads `time.perf_counter_ns()`; the fake transport's
reads its virtual-time loop (fake/virtual_time.py), so a simulated phase is timed exactly.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A monotonic nanosecond clock."""

    #: False for virtual clocks: loop lag and other wall-clock diagnostics mean nothing there
    realtime: bool

    def now_ns(self) -> int:
        """Nanoseconds since an arbitrary origin (only differences are meaningful)."""
        ...


class PerfCounterClock:
    """The real clock: `time.perf_counter_ns()` (monotonic, the finest the OS offers)."""

    realtime = True
    # the builtin itself, not a method wrapping it: read several times per request
    now_ns = staticmethod(time.perf_counter_ns)


PERF_COUNTER = PerfCounterClock()
