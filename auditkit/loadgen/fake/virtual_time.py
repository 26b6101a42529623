"""An asyncio event loop on virtual time: sleeping costs nothing, and time is exact.

The loop is a stock `SelectorEventLoop` whose selector, asked to wait `timeout` seconds for I/O,
advances the virtual clock by `timeout` instead of blocking: the loop then runs its next timer at
once. Real file descriptors (the loop's own wake-up pipe, a signal) are still polled without
waiting, so Ctrl-C and `call_soon_threadsafe` keep working. Virtual time is kept in integer
nanoseconds, so a phase's timestamps are exact sums of the delays slept.

Asked to wait forever with nothing scheduled, the loop raises `VirtualLoopDeadlock`: in virtual
time nothing outside the loop will ever wake it, so the program would hang.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualLoopDeadlock(RuntimeError):
    """Every task waits, no timer is scheduled and no I/O can arrive."""


class _VirtualSelector(selectors.BaseSelector):
    """A real selector that is never waited on: waiting moves virtual time instead."""

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.now_ns = 0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise VirtualLoopDeadlock(
                "virtual loop deadlock: every task is waiting, no timer is scheduled and no I/O "
                "can arrive (a fake response that never comes, or an Event nobody sets?)"
            )
        # the loop asks for exactly (next timer - now); rounding to the nanosecond keeps
        # virtual time an exact integer and lands on the timer within the loop's resolution
        self.now_ns += round(timeout * 1e9)
        return []

    def close(self) -> None:
        self._real.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose `time()` is virtual and starts at 0."""

    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now_ns / 1e9

    @property
    def now_ns(self) -> int:
        """Virtual nanoseconds since the loop was made."""
        return self._virtual.now_ns


class VirtualClock:
    """The `Clock` of whichever `VirtualTimeLoop` is running."""

    realtime = False

    def now_ns(self) -> int:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeLoop):
            raise RuntimeError(
                "a virtual-time transport must run on a VirtualTimeLoop: use loadgen.run_phase "
                "(it makes one) or auditkit.loadgen.fake.run_virtual"
            )
        return loop.now_ns


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh virtual-time loop."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)
