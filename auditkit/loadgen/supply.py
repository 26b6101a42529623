"""Which dataset row each query sends, and its prebuilt request body."""

from __future__ import annotations

import uuid

from auditkit.data import Dataset, Sample
from auditkit.endpoints.base import EndpointAdapter
from auditkit.plan import RunSpec


class SampleSupply:
    """The phase's sample order, extended without end when min_duration outlasts it."""

    def __init__(self, spec: RunSpec, dataset: Dataset, adapter: EndpointAdapter) -> None:
        self.spec = spec
        self.dataset = dataset
        self.adapter = adapter
        # the order's rows without end: a min_duration phase keeps drawing past spec.samples
        self._source = spec.order.stream(len(dataset))
        self.planned = [next(self._source) for _ in range(spec.samples)]
        self.min_duration_ns = int(spec.min_duration_s * 1e9)
        self._salted = spec.order.kind == "salted"
        # bodies are built once per distinct sample: the hot path sends prebuilt bytes
        self._bodies = {i: adapter.build_body(dataset[i]) for i in set(self.planned)}

    def more(self, issued: int, last_ns: int) -> bool:
        """Keep issuing until both the planned samples and min_duration are reached.

        `last_ns` is the scenario's LoadGen clock for min_duration: the last issue (single/
        multi-stream), the last scheduled arrival (server) or now (offline, whose last completion
        then lands past min_duration, as LoadGen's max_latency check wants)."""
        return issued < self.spec.samples or last_ns < self.min_duration_ns

    def sample(self, position: int) -> int:
        """The dataset row at `position` of the phase's order (planned first, then extended)."""
        if position < len(self.planned):
            return self.planned[position]
        index = next(self._source)
        if index not in self._bodies:
            self._bodies[index] = self.adapter.build_body(self.dataset[index])
        return index

    def body(self, index: int) -> bytes:
        """The request body for dataset row `index`."""
        if not self._salted:
            return self._bodies[index]
        # a fresh random prefix per query: warms the SUT without priming any cache with the
        # prompts the measured phases send
        sample = self.dataset[index]
        salt = f"[warm-up {uuid.uuid4().hex}] "
        return self.adapter.build_body(Sample(sample.index, salt + sample.text, None))
