"""Which query the phase sends at each position: dataset row, variant and prebuilt body."""

from __future__ import annotations

import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator

from auditkit.data import Dataset, Sample, synthetic_prompt
from auditkit.endpoints.base import EndpointAdapter
from auditkit.plan import RunSpec, WarmupRule

#: one query: (dataset row, variant: "main" | "twin" | "control" | "warmup", request body)
Query = tuple[int, str, bytes]
VARIANTS = ("main", "twin", "control", "warmup")


class PlannedQueries:
    """A phase's planned queries, built before its clock starts and kept compact: the row (4
    bytes) and variant (1 byte) of each, the body only where it is not its row's shared main
    body (twins, controls, warm-ups carry their own). A list of tuples cost ~80 bytes a query:
    240 MB for a 3M-query phase."""

    def __init__(
        self, queries: Iterator[Query], count: int, shared: dict[int, bytes], rows: int
    ) -> None:
        self.rows = array("i" if rows < 2**31 else "q")
        self.variants = bytearray()
        #: position → body, for queries whose body is not `shared[row]`
        self.bodies: dict[int, bytes] = {}
        self.shared = shared
        codes = {v: i for i, v in enumerate(VARIANTS)}
        for position in range(count):
            index, variant, body = next(queries)
            self.rows.append(index)
            self.variants.append(codes[variant])
            if shared.get(index) is not body:
                self.bodies[position] = body

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> Query:
        index = self.rows[position]
        body = self.bodies.get(position)
        if body is None:
            body = self.shared[index]
        return index, VARIANTS[self.variants[position]], body


class SampleSupply:
    """The phase's queries in order, extended without end when min_duration outlasts the plan.

    Main queries carry `spec.salt`; `spec.twins` salted twins are interleaved evenly, each right
    after the main query of the same row; a warm-up's queries each carry a fresh random prefix.
    """

    def __init__(self, spec: RunSpec, dataset: Dataset, adapter: EndpointAdapter) -> None:
        self.spec = spec
        self.dataset = dataset
        self.adapter = adapter
        self.planned_count = spec.planned_queries
        self.min_duration_ns = int(spec.min_duration_s * 1e9)
        # bodies are built once per distinct (row, salt): the hot path sends prebuilt bytes
        self._bodies: dict[int, bytes] = {}
        self._twinned: Counter[int] = Counter()
        self._source = self._queries()
        self.planned = PlannedQueries(self._source, self.planned_count, self._bodies, len(dataset))

    def more(self, issued: int, last_ns: int) -> bool:
        """Keep issuing until both the planned queries and min_duration are reached.

        `last_ns` is the scenario's LoadGen clock for min_duration: the last issue (single/
        multi-stream), the last scheduled arrival (server) or now (offline, whose last completion
        then lands past min_duration, as LoadGen's max_latency check wants)."""
        return issued < self.planned_count or last_ns < self.min_duration_ns

    def query(self, position: int) -> Query:
        """The query at `position` of the phase's order (planned first, then extended)."""
        if position < len(self.planned):
            return self.planned[position]
        return next(self._source)

    # --- the order -------------------------------------------------------------------------

    def _queries(self) -> Iterator[Query]:
        spec = self.spec
        rows = spec.order.stream(len(self.dataset))
        if spec.fresh_prompts:
            # a fresh random prefix per query: warms the SUT without priming any cache with the
            # prompts the measured phases send
            for index in rows:
                yield index, "warmup", self._build(index, f"[warm-up {uuid.uuid4().hex}]")
        n, t = spec.samples, spec.twins
        twins = 0
        for mains, index in enumerate(rows, start=1):
            yield index, "main", self._main_body(index)
            # t twins per n mains, each centred in its share of the order: after main i,
            # round(i·t/n) twins are due (exactly t after main n; the rate holds past it)
            while t and twins < (2 * mains * t + n) // (2 * n):
                if spec.twin_kind == "synthetic":
                    yield index, "control", self._control_body(index, twins)
                else:
                    yield index, "twin", self._build(index, self._twin_prefix(index))
                twins += 1

    def _main_body(self, index: int) -> bytes:
        body = self._bodies.get(index)
        if body is None:
            body = self._bodies[index] = self._build(index, self.spec.salt)
        return body

    def _control_body(self, index: int, position: int) -> bytes:
        """A never-seen prompt as long in words as row `index`'s prompt with the phase's salt
        (what the main query sent): its cost, not its words."""
        assert self.spec.twin_salt is not None
        sample = self.dataset[index]
        sent = sample.salted(self.spec.salt) if self.spec.salt is not None else sample
        prompt = synthetic_prompt(f"{self.spec.twin_salt}/{position}", len(sent.text.split()))
        return self.adapter.build_body(Sample(index, prompt))

    def _twin_prefix(self, index: int) -> str:
        assert self.spec.twin_salt is not None
        seen = self._twinned[index]
        self._twinned[index] += 1
        return self.spec.twin_salt if not seen else f"{self.spec.twin_salt}#{seen + 1}"

    def _build(self, index: int, prefix: str | None) -> bytes:
        sample = self.dataset[index]
        return self.adapter.build_body(sample if prefix is None else sample.salted(prefix))


class WarmupGate:
    """Decides when a warm-up phase stops: its rule on the service times completed so far."""

    def __init__(self, rule: WarmupRule, elapsed_ns: Callable[[], int]) -> None:
        self.rule = rule
        self.elapsed_ns = elapsed_ns
        self.max_duration_ns = int(rule.max_duration_s * 1e9)
        self.latencies: list[int] = []

    def observe(self, service_ns: int) -> None:
        """One query completed (successfully) after `service_ns` from its send."""
        self.latencies.append(service_ns)

    def more(self, issued: int, _last_ns: int) -> bool:
        """Issue another query: not settled yet, and no cap reached (the caps count on the
        phase clock, whatever the scenario)."""
        if issued >= self.rule.max_queries or self.elapsed_ns() >= self.max_duration_ns:
            return False
        return not self.rule.settled(self.latencies)
