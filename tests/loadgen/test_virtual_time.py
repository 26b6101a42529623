"""The virtual-time loop: sleeping moves a virtual clock, exactly, and costs no real time."""

import asyncio

import pytest

from auditkit.loadgen.fake import VirtualClock, VirtualLoopDeadlock, VirtualTimeLoop, run_virtual


def test_sleeps_advance_virtual_time_exactly() -> None:
    async def main() -> tuple[int, int, float]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        await asyncio.sleep(3600)
        first = loop.now_ns
        await asyncio.gather(asyncio.sleep(0.25), asyncio.sleep(1.5), asyncio.sleep(0.001))
        return first, loop.now_ns, loop.time()

    first, later, seconds = run_virtual(main())
    assert first == 3_600_000_000_000
    assert later == 3_601_500_000_000
    assert seconds == 3601.5


def test_timers_fire_in_order_at_their_virtual_times() -> None:
    clock = VirtualClock()
    fired: list[tuple[str, int]] = []

    async def after(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        fired.append((name, clock.now_ns()))

    async def main() -> None:
        await asyncio.gather(after("b", 0.002), after("a", 0.001), after("c", 7.0))

    run_virtual(main())
    assert fired == [("a", 1_000_000), ("b", 2_000_000), ("c", 7_000_000_000)]


def test_waiting_forever_is_reported_as_a_deadlock() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    with pytest.raises(VirtualLoopDeadlock, match="virtual loop deadlock"):
        run_virtual(main())


def test_the_virtual_clock_refuses_a_real_loop() -> None:
    async def main() -> int:
        return VirtualClock().now_ns()

    with pytest.raises(RuntimeError, match="VirtualTimeLoop"):
        asyncio.run(main())


def test_each_loop_starts_at_zero() -> None:
    async def main() -> int:
        await asyncio.sleep(5)
        return VirtualClock().now_ns()

    assert run_virtual(main()) == run_virtual(main()) == 5_000_000_000
