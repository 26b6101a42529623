"""How a mock server's service time depends on when a request comes: cold start, drift, heavy
tail, and the first request on a new connection (`MockConfig.behaviour`).

Pure: no I/O, no asyncio. The engine asks *how long*; the served mock sleeps on the real clock,
`SimulatedSUT` on a virtual one, so a simulated run shows the same shape as a served one.
The output-cache behaviours (admission, TTL, normalised keys, partial, prepopulated) are in
`caches.py`; request coalescing needs the in-flight answers, so it is in `engine.py`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Hashable

from auditkit.config import BehaviourConfig
from auditkit.mock.latency import LruCache, Timing


class ServiceShape:
    """Cold start (the first requests pay a fixed extra), drift (service time changes
    geometrically with the request count) and a heavy tail (a share of requests take a multiple
    of their time). `number` is a request's 1-based arrival number among generation requests."""

    def __init__(self, cfg: BehaviourConfig) -> None:
        self.cfg = cfg

    def cold_s(self, number: int) -> float:
        """Extra time of request `number` on a cold server (every kind of answer pays it: a
        cold proxy is slow to answer from its cache too)."""
        if number <= self.cfg.cold_start_requests:
            return self.cfg.cold_start_ms * 1e-3
        return 0.0

    def drift(self, number: int) -> float:
        """Service-time factor of request `number`: falls by `drift_per_1000` for every 1000
        requests before it (geometric, so it never reaches zero; negative: rises)."""
        share = self.cfg.drift_per_1000
        if share == 0.0:
            return 1.0
        return float((1.0 - share) ** ((number - 1) / 1000.0))

    def is_tail(self, rng: random.Random) -> bool:
        """Whether a computed request lands in the tail (one draw, only when `tail_rate` > 0:
        with no tail the server's random sequence is the one it always had)."""
        rate = self.cfg.tail_rate
        return rate > 0.0 and rng.random() < rate

    def shape(self, timing: Timing, number: int, tail: bool) -> Timing:
        """A computed request's timing with drift and (if `tail`) the tail multiplier applied."""
        factor = self.drift(number) * (self.cfg.tail_multiplier if tail else 1.0)
        if factor == 1.0:
            return timing
        return dataclasses.replace(
            timing,
            base_s=timing.base_s * factor,
            prefill_s=timing.prefill_s * factor,
            decode_per_token_s=timing.decode_per_token_s * factor,
        )


class Connections:
    """The connections a server has seen: the first request on a new one pays
    `connection_setup_ms` (a server or proxy that is slow to set up a connection).

    A connection is whatever identifies it to the caller (the peer's address and port over TCP,
    a fake transport's connection number). Remembered in a bounded LRU: a connection not used
    for `capacity` newer ones counts as new again.
    """

    def __init__(self, setup_ms: float, capacity: int = 10_000) -> None:
        self.setup_s = setup_ms * 1e-3
        self.opened = 0
        self._seen: LruCache[Hashable, bool] = LruCache(capacity)

    def first_use_s(self, connection: Hashable | None) -> float:
        """The extra time of a request on `connection` (None: unknown, no extra)."""
        if connection is None:
            return 0.0
        if self._seen.get(connection) is not None:
            return 0.0
        self._seen.put(connection, True)
        self.opened += 1
        return self.setup_s
