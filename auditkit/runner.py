"""The orchestrator: validate everything, pre-flight, run the phases, verify, write artifacts.

Used by the CLI and the notebooks alike. Data flows one way (DESIGN §1).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from auditkit import __version__, artifacts, run_rules
from auditkit.audits import DEFAULT_TEST, AuditTest, get_test
from auditkit.calibration import client_bound_reason, client_ceiling
from auditkit.config import AuditConfig
from auditkit.data import Dataset, load_dataset
from auditkit.endpoints import EndpointAdapter, make_adapter, urls
from auditkit.errors import (
    EXIT_EXECUTION,
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_PASS,
    InputError,
    Interrupted,
    SetupError,
)
from auditkit.loadgen import HttpTarget, PhaseInterrupted, Transport, resolve_api_key, run_phase
from auditkit.loadgen.choice import resolve_client
from auditkit.loadgen.exchanges import run_exchanges
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT
from auditkit.loadgen.ray_hosts import connect as connect_ray
from auditkit.loadgen.workers import (
    SPLITTABLE,
    expected_rate,
    median_service_ns,
    phase_workers,
)
from auditkit.plan import RunSpec
from auditkit.preflight import check_output_dir, discover_model
from auditkit.results import AuditResult, PhaseResult, PhaseSummary

#: the endpoint an in-memory transport stands for (no mock is started, nothing is resolved)
IN_MEMORY_URL = "http://in-memory.invalid"
ProgressFactory = Callable[[RunSpec], tuple[Callable[[int, int], None], Callable[[], None]]]
Log = Callable[[str], None]


@dataclass
class Prepared:
    """Everything known before the first request: validated config, dataset and plan."""

    cfg: AuditConfig
    test: AuditTest
    dataset: Dataset
    specs: list[RunSpec]
    api_key: str | None


@dataclass
class AuditRun:
    """A finished audit: the verdict, the phases and where the artifacts are."""

    result: AuditResult[Any]
    phases: list[PhaseResult]
    folder: Path
    endpoint_url: str
    model: str
    mock_stats: dict[str, object] = field(default_factory=dict)
    decision: str = "auditkit"

    @property
    def exit_code(self) -> int:
        return verdict_exit_code(decided_verdict(self.result, self.decision))


def verdict_exit_code(verdict: str) -> int:
    """PASS 0, FAIL 1, INCONCLUSIVE 5, INVALID 4 (DESIGN §10)."""
    codes = {"PASS": EXIT_PASS, "FAIL": EXIT_FAIL, "INCONCLUSIVE": EXIT_INCONCLUSIVE}
    return codes.get(verdict, EXIT_EXECUTION)


def decided_verdict(result: AuditResult[Any], decision: str) -> str:
    """The verdict the exit code follows: auditkit's, or with `decision: upstream` the
    upstream rule's (when the audit has one)."""
    if decision == "upstream" and result.upstream_verdict is not None:
        return result.upstream_verdict
    return result.verdict


def prepare(cfg: AuditConfig, test_id: str = DEFAULT_TEST) -> Prepared:
    """Load and validate every input; raises InputError before anything is sent.
    With load.run_rules the MLPerf floors are applied first (shared ones, then the audit's)."""
    test = get_test(test_id)
    if cfg.load.run_rules:
        cfg = test.with_run_rules(run_rules.apply(cfg))
    cfg = test.dataset_defaults(cfg)
    dataset = load_dataset(cfg.dataset)
    cfg = test.resolve(cfg, dataset)
    test.validate(cfg, dataset)
    specs = test.plan(cfg, dataset)
    for spec in specs:
        validate_spec(spec, dataset)
    api_key = resolve_api_key(cfg.endpoint)
    return Prepared(cfg, test, dataset, specs, api_key)


def validate_spec(spec: RunSpec, dataset: Dataset) -> None:
    """Generic checks every phase must pass, whatever the test."""
    if spec.samples < 1:
        raise InputError(f"phase {spec.name}: needs at least one sample")
    if spec.order.kind in ("single", "block") and spec.order.index >= len(dataset):
        raise InputError(
            f"phase {spec.name}: sample index {spec.order.index} is out of range for a dataset "
            f"of {len(dataset)} rows"
        )


@contextlib.contextmanager
def endpoint_url(
    cfg: AuditConfig, transport: Transport | None = None
) -> Iterator[tuple[str, dict[str, object]]]:
    """The SUT's base URL: cfg.endpoint.url, or an embedded mock started for the run (none
    when a transport is given: an in-memory transport is its own endpoint)."""
    if cfg.endpoint.url or transport is not None:
        # a base URL ending in /v1 (the OpenAI client's habit) means the same server
        url = cfg.endpoint.url and urls.base_url(cfg.endpoint.url, cfg.endpoint.api)
        yield url or IN_MEMORY_URL, {}
        return
    # its own process: a mock sharing the client's interpreter (and GIL) would make the
    # phases measure the client's scheduling as much as the SUT
    from auditkit.mock import MockProcess

    stats: dict[str, object] = {}
    with MockProcess(cfg.mock) as server:
        try:
            yield server.url, stats
        finally:
            # the mock's counters are context; a mock that died must not hide the real error
            with contextlib.suppress(SetupError):
                stats.update(server.stats())


def run_audit(
    cfg: AuditConfig,
    test_id: str = DEFAULT_TEST,
    *,
    progress: ProgressFactory | None = None,
    log: Log | None = None,
    transport: Transport | None = None,
) -> AuditRun:
    """Run one audit end to end (see _run_audit), holding its folder's run lock: a second run
    into the same folder at the same time stops with one line."""
    with artifacts.run_lock(cfg.output_dir, get_test(test_id)):
        return _run_audit(cfg, test_id, progress=progress, log=log, transport=transport)


def _run_audit(
    cfg: AuditConfig,
    test_id: str,
    *,
    progress: ProgressFactory | None,
    log: Log | None,
    transport: Transport | None,
) -> AuditRun:
    """Run one audit end to end. Raises InputError/SetupError before any phase runs,
    Interrupted (records kept, no verdict) on Ctrl-C.

    `transport` swaps the HTTP client for another (e.g. `auditkit.loadgen.fake`'s in-memory
    one on a virtual clock); then no mock is started and the client guard is off (a virtual
    clock has no client ceiling to measure)."""
    say = log or (lambda _msg: None)
    prepared = prepare(cfg, test_id)
    cfg = prepared.cfg  # with the run rules applied, if asked for
    if transport is None and not cfg.endpoint.url and cfg.mock.simulated:
        transport = FakeTransport(SimulatedSUT(cfg.mock))
    test = prepared.test
    target = artifacts.test_dir(cfg.output_dir, test.id)
    # never two runs in one folder: an earlier run moves to previous/ now (nothing is lost);
    # with overwrite its files go only once the endpoint has answered (a dead endpoint must
    # not cost the user the earlier run)
    if not cfg.overwrite:
        moved = artifacts.claim_output_dir(cfg.output_dir, test)
        if moved is not None:
            say(f"{test.id}: the earlier run moved to {moved}")
    created = _missing_dirs(target)
    folder = check_output_dir(target)
    artifacts.remove_stale_tmp(folder)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        with endpoint_url(cfg, transport) as (base_url, mock_stats):
            http = HttpTarget.from_config(cfg.endpoint, base_url, prepared.api_key)
            if transport is None:
                model = discover_model(cfg.endpoint, base_url, dict(http.headers))
            else:
                # an in-memory transport stands for the mock unless the test says otherwise
                model = cfg.endpoint.model or cfg.mock.model
            adapter = make_adapter(cfg.endpoint, model)
            if cfg.overwrite:
                artifacts.claim_output_dir(cfg.output_dir, test, overwrite=True)
            run_cfg = cfg.redacted()
            run_cfg["endpoint"]["url"] = base_url if cfg.endpoint.url else None
            run_cfg["endpoint"]["model"] = model
            artifacts.write_config(folder, run_cfg)
            # the one line that says which endpoint answers (a notebook's plan line before it
            # names the mock too, but only as the plan)
            if cfg.endpoint.url:
                where = f"endpoint {base_url}"
            elif cfg.mock.simulated:
                where = f"simulated mock on a virtual clock (cache={cfg.mock.cache})"
            else:
                where = f"embedded mock started at {base_url} (cache={cfg.mock.cache})"
            say(f"{test.id}: {where}, model {model}, api {cfg.endpoint.api}")
            runner = PhaseRunner(prepared, adapter, http, transport, folder, progress, say)
            phases = runner.run(prepared.specs)
            if len(phases) < len(prepared.specs):
                result = invalid_result(prepared, phases)
            else:
                result = test.verify(phases, cfg)
            # an unsettled decision may ask for more rounds, within the audit's budget
            while result.verdict == "INCONCLUSIVE":
                more = test.extend(cfg, prepared.dataset, phases)
                if not more:
                    break
                say(f"{test.id}: not settled yet ({result.reason}); one more round")
                ran = runner.run(more)
                phases += ran
                result = test.verify(phases, cfg)
                if len(ran) < len(more) or not all(p.summary.complete for p in ran):
                    # the planned phases' upstream verdict stands; auditkit's cannot
                    skipped = [s.name for s in more[len(ran) :]]
                    why = f"extra round did not complete (not run: {', '.join(skipped)})"
                    if result.verdict != "INVALID":
                        result = result.model_copy(
                            update={"verdict": "INVALID", "reason": f"INVALID: {why}"}
                        )
                    break
    except (InputError, SetupError):
        # failed pre-flight: leave no empty audit folder behind that looks like a run happened
        # (only empty folders this run created are removed)
        _remove_empty(created)
        raise
    notes: tuple[str, ...] = ()
    if not cfg.endpoint.verify_tls:
        notes = (
            "WARNING: TLS verification was off (endpoint.verify_tls: false / --insecure): the "
            "endpoint's certificate was not checked",
        )
    result = result.with_notes(*notes).model_copy(
        update={
            "auditkit_version": __version__,
            "started_at": started,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    artifacts.write_result(folder, result, test)
    return AuditRun(result, phases, folder, base_url, model, dict(mock_stats), cfg.decision)


def _missing_dirs(path: Path) -> list[Path]:
    """`path` and those of its ancestors that do not exist yet, deepest first."""
    out: list[Path] = []
    p = Path(path)
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def _remove_empty(dirs: list[Path]) -> None:
    """Remove the given folders (deepest first) if they are still empty."""
    for d in dirs:
        with contextlib.suppress(OSError):
            d.rmdir()


#: the fastest rate (requests/s) a phase of this process reached and the shortest median
#: service time (ns) one saw, by endpoint base URL: a suite's later audits size their first
#: phases by what the earlier ones saw
_FASTEST: dict[str, tuple[float | None, float | None]] = {}


class PhaseRunner:
    """Runs phases in order, writing each one's records as soon as it ends. A phase that did
    not complete stops the run (the next phase could not make it valid)."""

    def __init__(
        self,
        prepared: Prepared,
        adapter: EndpointAdapter,
        http: HttpTarget,
        transport: Transport | None,
        folder: Path,
        progress: ProgressFactory | None,
        say: Log,
    ) -> None:
        self.prepared = prepared
        self.adapter = adapter
        self.http = http
        self.transport = transport
        self.folder = folder
        self.progress = progress
        self.say = say
        self.guard = prepared.cfg.load.client_guard and transport is None
        #: the client's ceiling by (concurrency, client delay, streamed, tokens a response),
        #: calibrated when a phase needs it
        self.ceilings: dict[tuple[int, float, bool, int], float] = {}
        #: the server answered a streamed phase with whole bodies (it ignores `stream`): the
        #: guard then judges by the non-streamed ceiling, which is what the client did
        self.whole_answers = False
        #: the fastest rate a phase reached against this endpoint and the shortest median
        #: service time, in this run or an earlier audit of the same process (a suite's):
        #: workers: auto sizes offline phases by them (expected_rate)
        self.fastest, self.quickest_ns = _FASTEST.get(http.base_url, (None, None))
        #: the worker count last logged (said again only when it changes)
        self.workers_said = 1
        #: phases finished so far, every round (an interruption says they are kept)
        self.finished: list[str] = []
        if prepared.cfg.load.ray_address is not None and transport is None:
            # before any phase: a missing extra or an unreachable cluster is a setup error now
            connect_ray(prepared.cfg.load.ray_address)
        for spec in prepared.specs:
            self.ceiling(spec)

    def ceiling(self, spec: RunSpec) -> float | None:
        """The client's own rate at this phase's load (one process), which the guard judges
        the phase by; None when the guard is off or the phase does not run the client at its
        top speed (single-/multi-stream, one query at a time)."""
        load = spec.load
        if not self.guard or load.scenario not in SPLITTABLE:
            return None
        # calibrated as the phase reads its responses: a streamed one parses every chunk
        stream = self.streams(spec) and not self.whole_answers
        tokens = self.prepared.cfg.endpoint.max_tokens if stream else 1
        key = (load.max_concurrency, load.client_delay_ms, stream, tokens)
        if key not in self.ceilings:
            concurrency, delay = key[:2]
            try:
                self.ceilings[key] = client_ceiling(
                    concurrency, delay, resolve_client(self.http), stream, tokens
                )
            except PhaseInterrupted:
                raise Interrupted(
                    "interrupted during client calibration; no verdict written"
                ) from None
            how = f" (streamed, {tokens} chunks a response)" if stream else ""
            self.say(f"client ceiling against a null endpoint{how}: {self.ceilings[key]:.0f} req/s")
        return self.ceilings[key]

    def streams(self, spec: RunSpec) -> bool:
        """Whether the phase asks for streamed answers."""
        return self.adapter.stream if spec.stream is None else spec.stream

    def run(self, specs: list[RunSpec]) -> list[PhaseResult]:
        """Run `specs` in order; stops after the first phase that did not complete."""
        phases: list[PhaseResult] = []
        for spec in specs:
            phase = self._one(spec)
            phases.append(phase)
            self.finished.append(spec.name)
            if not phase.summary.complete:
                break
        return phases

    def _one(self, spec: RunSpec) -> PhaseResult:
        self.say(f"phase {spec.describe()}")
        callback, close = self.progress(spec) if self.progress else (None, lambda: None)
        # the run's client knobs (workers, the guard's fraction); the phase's own load pattern
        # is spec.load, frozen by the plan
        client = self.prepared.cfg.load
        ceiling = self.ceiling(spec)
        workers = (
            1
            if self.transport
            else phase_workers(client, spec, ceiling, self.fastest, self.quickest_ns)
        )
        # which client ran (phase.json, the guard's reason); None: an in-memory transport
        http_client = None if self.transport else resolve_client(self.http)
        if workers != self.workers_said:
            expected = expected_rate(spec.load, self.fastest, self.quickest_ns)
            why = (
                f" (expected up to {expected:.0f}/s, one {http_client} process good for "
                f"{client.client_bound_fraction * ceiling:.0f}/s before the client guard)"
                if client.workers == "auto" and workers > 1 and expected and ceiling
                else ""
            )
            self.say(f"from phase {spec.name} on: {workers} load-generator processes{why}")
            self.workers_said = workers
        try:
            if spec.exchanges is not None:  # explicit prompts, one at a time, two clients
                phase = run_exchanges(spec, self.adapter, self.http, transport=self.transport)
            else:
                phase = run_phase(
                    spec,
                    self.prepared.dataset,
                    self.adapter,
                    self.http,
                    progress=callback,
                    transport=self.transport,
                    records_dir=self.folder / spec.name,
                    workers=workers,
                    ray_address=client.ray_address,
                    max_clock_offset_ms=client.max_clock_offset_ms,
                )
        except PhaseInterrupted as exc:
            close()
            artifacts.write_phase(self.folder, exc.partial)
            done = len(self.finished)
            raise Interrupted(
                f"interrupted during the {spec.name} phase; kept in {self.folder}: "
                f"{done} finished phase{'' if done == 1 else 's'} and the "
                f"{exc.partial.summary.completed} completed records of {spec.name}; "
                "no verdict written"
            ) from None
        close()
        rate = phase.summary.samples_per_second
        self.fastest = max(self.fastest or 0.0, rate)
        if self.transport is None:  # what a later phase could reach, for `workers: auto`
            # a chunk at a time: a phase of millions of queries is never read whole here
            median = median_service_ns(functools.partial(_service_ns, phase))
            if median is not None:
                self.quickest_ns = min(self.quickest_ns or median, median)
            _FASTEST[self.http.base_url] = (self.fastest, self.quickest_ns)
        update: dict[str, Any] = {"http_client": http_client, "workers": workers}
        if ceiling is not None and self.streams(spec) and not self.whole_answers:
            answers = phase.columns("status", "first_token_ns")
            ok = answers[answers["status"] == "ok"]
            if len(ok) and ok["first_token_ns"].isna().all():
                self.whole_answers = True
                ceiling = self.ceiling(spec)
        if self.guard:
            # N processes: N single-process ceilings (an estimate; docs/scale.md)
            reason = client_bound_reason(
                phase.summary,
                ceiling,
                client.client_bound_fraction,
                workers=workers,
                client=http_client,
                load_average=os.getloadavg()[0],
            )
            update |= {
                "client_ceiling_qps": ceiling * workers if ceiling else None,
                "client_bound": reason,
            }
        phase = dataclasses.replace(phase, summary=phase.summary.model_copy(update=update))
        artifacts.write_phase(self.folder, phase)
        s = phase.summary
        if s.hosts:
            self.say(
                f"phase {spec.name} over {len(s.hosts)} Ray hosts: "
                + ", ".join(
                    f"{h.host} {len(h.workers)} workers {h.records} records clock "
                    f"{h.clock_offset_ns / 1e6:+.3f}±{h.clock_uncertainty_ns / 1e6:.3f} ms"
                    for h in s.hosts
                )
            )
        self.say(
            f"phase {spec.name}: {s.completed}/{s.requested} ok, {s.failed} failed, {_score(s)}"
        )
        return phase


def _score(s: PhaseSummary) -> str:
    """A phase's score for the log, or in words why it has none (a block of a block design
    is often too short for the early-stopping estimate; the pooled blocks are scored)."""
    if s.score is not None:
        return f"score {s.score:.4g} ({s.score_name})"
    why = next((r for r in s.invalid_reasons if "early stopping" in r), None)
    if why is not None:
        return f"no score of its own: {why}; the verdict pools the blocks"
    return "no score: " + ("; ".join(s.invalid_reasons) or "no completed queries")


def invalid_result(prepared: Prepared, phases: list[PhaseResult]) -> AuditResult[Any]:
    """INVALID because a phase failed before the plan finished (no PASS/FAIL from partial data)."""
    ran = {p.name: p.summary for p in phases}
    reasons = [f"{s.name}: {r}" for s in ran.values() for r in s.invalid_reasons]
    skipped = [s.name for s in prepared.specs if s.name not in ran]
    reason = "; ".join(reasons) + f"; not run: {', '.join(skipped)}"
    return prepared.test.invalid(prepared.cfg, ran, reason)


def _service_ns(phase: PhaseResult) -> Iterator[np.ndarray]:
    """Each completed query's service time (sent -> completed, ns), a chunk at a time."""
    for times in phase.chunks("status", "sent_ns", "completed_ns"):
        ok = times[times["status"] == "ok"]
        yield (ok["completed_ns"] - ok["sent_ns"]).to_numpy(dtype=float)
