"""The audit suite: the applicable audits against one endpoint, one command, one table.

`run_suite` validates every audit first (nothing is sent if one cannot run), starts one embedded
mock (or one simulated SUT) for all of them, lets only the first audit warm the endpoint up (the
others' `warmup` is set to 0: the endpoint is warm by then), runs each through
`auditkit.runner.run_audit` (so each writes `<output_dir>/<TEST>/` and, when it has a
submission name, `<output_dir>/audit/audit_<name>.json`), and combines the verdicts:

    exit = 1 if any FAIL, else 4 if any INVALID, else 5 if any INCONCLUSIVE, else 0

Two runs never mix in one folder: once the endpoint answers, every audit's earlier run moves to
`<output_dir>/previous/` (with `overwrite` its files are removed instead). The
combined verdict goes to `<output_dir>/suite_result.json`, which `auditkit notebook suite` reads
for its exit code (as it reads audit_result.json for one audit).
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditkit import artifacts
from auditkit.audits import REGISTRY, build_config, get_test
from auditkit.config import AuditConfig
from auditkit.errors import (
    EXIT_EXECUTION,
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_PASS,
    InputError,
    did_you_mean,
)
from auditkit.loadgen import Transport
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT
from auditkit.mlperf_models import model_name, requirement, skipped_reasons
from auditkit.options import Option, common_options, model_options, to_overrides
from auditkit.results import SCHEMA_VERSION, check_schema_version
from auditkit.runner import AuditRun, Log, ProgressFactory, decided_verdict, endpoint_url, prepare
from auditkit.startup import load_plugins_once

#: the combined verdict, beside the audits' folders
SUITE_RESULT = "suite_result.json"
#: the combined exit code as a verdict word
EXIT_VERDICT = {EXIT_PASS: "PASS", EXIT_FAIL: "FAIL", EXIT_EXECUTION: "INVALID",
                EXIT_INCONCLUSIVE: "INCONCLUSIVE"}  # fmt: skip


@dataclass
class SuiteRun:
    """The suite's audits as they ran, and those skipped (key → why)."""

    runs: list[AuditRun]
    skipped: dict[str, str] = field(default_factory=dict)
    decision: str = "auditkit"
    #: the MLPerf model whose required audits ran (`--mlperf-model`), None: the whole suite
    mlperf_model: str | None = None

    def verdicts(self) -> dict[str, str]:
        return {r.result.test: decided_verdict(r.result, self.decision) for r in self.runs}

    @property
    def exit_code(self) -> int:
        return combined_exit_code(list(self.verdicts().values()))

    def record(self) -> dict[str, Any]:
        """suite_result.json: the combined verdict and exit code, each audit's verdict."""
        code = self.exit_code
        return {
            "schema_version": SCHEMA_VERSION,
            "verdict": EXIT_VERDICT.get(code, "INVALID"),
            "exit_code": code,
            "decision": self.decision,
            "verdicts": self.verdicts(),
            "skipped": dict(self.skipped),
            "mlperf_model": self.mlperf_model,
            "rows": self.rows(),
        }

    def rows(self) -> list[dict[str, str]]:
        """One row per audit: audit, verdict, key numbers, reason, next (the summary table)."""

        def row(name: str, verdict: str, numbers: str, reason: str, step: str) -> dict[str, str]:
            test = get_test(name)
            audit = f"{test.id}: {test.title}"
            return {
                "audit": audit,
                "verdict": verdict,
                "key numbers": numbers,
                "reason": reason,
                "next": step,
            }

        out = []
        for run in self.runs:
            r = run.result
            test = get_test(r.test)
            numbers = next(iter(test.summary_lines(r)), "")
            reason = r.reason.removeprefix(r.verdict + ": ")
            verdict = decided_verdict(r, self.decision)
            out.append(row(r.test, verdict, numbers, reason, test.advice(r)))
        skipped = [row(key, "SKIPPED", "", why, "") for key, why in self.skipped.items()]
        return out + skipped

    def table(self, width: int = 100) -> str:
        """The summary as text, verdict first: the combined verdict, then per audit its
        verdict, key numbers, reason and next step, wrapped to `width` columns."""
        from textwrap import fill

        rows = self.rows()
        code = self.exit_code
        counts = Counter(r["verdict"] for r in rows)
        tally = ", ".join(f"{n} {v}" for v, n in counts.items())
        lines = [f"suite {EXIT_VERDICT.get(code, 'INVALID')} (exit {code}): {tally}"]
        name = max(len(r["audit"]) for r in rows) if rows else 0
        for r in rows:
            lines.append(f"{r['audit']:<{name}}  {r['verdict']}")
            for label in ("key numbers", "reason", "next"):
                if r[label]:
                    lines.append(
                        fill(
                            f"{'numbers' if label == 'key numbers' else label}: {r[label]}",
                            width,
                            initial_indent="  ",
                            subsequent_indent="      ",
                            break_on_hyphens=False,
                            break_long_words=False,
                        )
                    )
        return "\n".join(lines)


def combined_exit_code(verdicts: list[str]) -> int:
    """Any FAIL → 1, else any INVALID → 4, else any INCONCLUSIVE → 5, else 0."""
    if "FAIL" in verdicts:
        return EXIT_FAIL
    if "INVALID" in verdicts:
        return EXIT_EXECUTION
    if "INCONCLUSIVE" in verdicts:
        return EXIT_INCONCLUSIVE
    return EXIT_PASS


def suite_options() -> list[Option]:
    """`auditkit run suite` flags: the shared ones, then each audit's prefixed with its key
    (--test01-samples, --test06-stop-markers, ...), since the audits' own names overlap."""
    out = common_options()
    for key in suite_tests():
        out += model_options(REGISTRY[key].settings_model, (key,), f"{key}_", key)
    return out


def suite_tests() -> tuple[str, ...]:
    """The suite's audits: every registered one, MLPerf's TESTxx first, in the order of their
    ids (TEST01, TEST04, ..., then auditkit's own, e.g. PREFIX_CACHE: the first one warms up)."""
    order = sorted(REGISTRY.values(), key=lambda t: (not t.id.startswith("TEST"), t.id))
    return tuple(t.key for t in order)


def applicable(cfg: AuditConfig, tests: tuple[str, ...] | None = None) -> dict[str, str | None]:
    """Each audit → None if it applies to this endpoint config, else why it is skipped (the
    audit's own `applies`)."""
    return {key: get_test(key).applies(cfg) for key in tests or suite_tests()}


def _without_warmup(cfg: AuditConfig, key: str) -> AuditConfig:
    block = getattr(cfg, key, None)
    if block is None or "warmup" not in type(block).model_fields:
        return cfg
    return cfg.model_copy(update={key: block.model_copy(update={"warmup": 0})})


@contextlib.contextmanager
def _one_endpoint(cfg: AuditConfig) -> Iterator[tuple[AuditConfig, Transport | None]]:
    """One endpoint for every audit: the given URL, one simulated SUT, or one mock process."""
    transport: Transport | None = None
    if not cfg.endpoint.url and cfg.mock.simulated:
        transport = FakeTransport(SimulatedSUT(cfg.mock))
    if cfg.endpoint.url or transport is not None:
        yield cfg, transport
        return
    with endpoint_url(cfg, None) as (url, _stats):
        yield (
            cfg.model_copy(update={"endpoint": cfg.endpoint.model_copy(update={"url": url})}),
            None,
        )


def _check_endpoint(cfg: AuditConfig, key: str, transport: Transport | None) -> None:
    """SetupError (exit 3) unless the endpoint answers, as each audit checks it first."""
    if transport is not None or not cfg.endpoint.url:
        return  # an in-memory endpoint cannot be down
    from auditkit.endpoints import urls
    from auditkit.loadgen import HttpTarget
    from auditkit.preflight import discover_model

    url = urls.base_url(cfg.endpoint.url, cfg.endpoint.api)
    http = HttpTarget.from_config(cfg.endpoint, url, prepare(cfg, key).api_key)
    discover_model(cfg.endpoint, url, dict(http.headers))


def check_suite(
    cfg: AuditConfig, tests: tuple[str, ...] | None = None
) -> tuple[list[str], dict[str, str]]:
    """(the audits to run, those skipped → why), every one validated and its output folder
    claimable; InputError otherwise. Sends nothing and removes nothing."""
    chosen = tuple(get_test(t).key for t in (tests or suite_tests()))
    verdict = applicable(cfg, chosen)
    skipped = {k: why for k, why in verdict.items() if why is not None}
    keys = [k for k in chosen if verdict[k] is None]
    if not keys:
        raise InputError("no audit of the suite applies to this endpoint config")
    for key in keys:
        prepare(cfg, key)
    return keys, skipped


def check_notebook_parameters(values: dict[str, Any]) -> None:
    """The suite notebook's parameters (`tests`, `settings`, an absolute `output_dir`) checked
    as its kernel will check them, so `auditkit notebook suite` stops before a kernel starts."""
    cfg = suite_config(values.get("settings") or {}, output_dir=values["output_dir"])
    check_suite(cfg, parse_tests(values.get("tests")))


def run_suite(
    cfg: AuditConfig,
    tests: tuple[str, ...] | None = None,
    *,
    progress: ProgressFactory | None = None,
    log: Log | None = None,
    mlperf_model: str | None = None,
) -> SuiteRun:
    """Run the applicable audits of `tests` (default: `suite_tests()`) against one endpoint;
    with `mlperf_model`, the audits and thresholds the v6.1 submission checker requires of
    that model (`auditkit.mlperf_models`). InputError before anything is sent if any of them
    cannot run with `cfg`."""
    from auditkit.runner import run_audit

    say = log or (lambda _msg: None)
    required: dict[str, str] = {}
    if mlperf_model is not None:
        cfg, tests, required = for_mlperf_model(cfg, mlperf_model, tests)
        mlperf_model = model_name(mlperf_model)
    keys, skipped = check_suite(cfg, tests)
    skipped = {**required, **skipped}
    result_path = suite_result_path(cfg.output_dir)
    runs: list[AuditRun] = []
    with _one_endpoint(cfg) as (shared, shared_transport):
        # nothing of an earlier run goes before the endpoint answers: a dead endpoint keeps it
        _check_endpoint(shared, keys[0], shared_transport)
        result_path.unlink(missing_ok=True)  # never a previous run's verdict if this one dies
        # every audit's earlier run at once (moved to previous/, or removed with overwrite):
        # a suite stopped halfway mixes no two runs
        for key in keys:
            artifacts.claim_output_dir(cfg.output_dir, get_test(key), overwrite=cfg.overwrite)
        for i, key in enumerate(keys):
            run_cfg = shared if i == 0 else _without_warmup(shared, key)
            say(f"suite: {get_test(key).id} ({i + 1} of {len(keys)})")
            runs.append(
                run_audit(run_cfg, key, progress=progress, log=log, transport=shared_transport)
            )
    suite = SuiteRun(runs, skipped, cfg.decision, mlperf_model)
    result_path.parent.mkdir(parents=True, exist_ok=True)
    artifacts.atomic_write_json(result_path, suite.record())
    return suite


def for_mlperf_model(
    cfg: AuditConfig, name: str, tests: tuple[str, ...] | None = None
) -> tuple[AuditConfig, tuple[str, ...], dict[str, str]]:
    """(cfg with the checker's thresholds set, the audits it requires of model `name`, the
    suite's other audits → why they are skipped); `tests` must not be given as well."""
    if tests is not None:
        raise InputError("give --mlperf-model or --tests, not both")
    model, req = requirement(name)
    update = {}
    for key, fixed in req.settings.items():
        block = getattr(cfg, key, None)
        if block is not None:
            update[key] = block.model_copy(update=fixed)
    tests = req.tests + req.own
    return cfg.model_copy(update=update), tests, skipped_reasons(model, req, suite_tests())


def suite_result_path(output_dir: str | Path) -> Path:
    """Where the suite writes its combined verdict."""
    return Path(output_dir) / SUITE_RESULT


def read_suite_result(output_dir: str | Path) -> tuple[int, str] | None:
    """(exit code, combined verdict) of the suite run in output_dir; None when it wrote none."""
    path = suite_result_path(output_dir)
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    check_schema_version(saved, SUITE_RESULT, path)
    return int(saved["exit_code"]), str(saved["verdict"])


def suite_config(settings: dict[str, Any] | None = None, **params: Any) -> AuditConfig:
    """The suite's parameters by name (its CLI flags without the dashes: `url`,
    `test01_samples`, `mock_fake_first_token`, ...) validated into the run config; InputError
    with one line naming an unknown or bad parameter (what the suite notebook calls)."""
    load_plugins_once()  # the suite notebook's first cell calls this: plug-ins join here
    options = suite_options()
    by_param = {o.param: o for o in options}
    values = {**(settings or {}), **params}
    for name in values:
        if name not in by_param:
            raise InputError(f"unknown suite parameter {name!r}{did_you_mean(name, by_param)}")
    return build_config(to_overrides(options, values), "suite parameters")


def parse_tests(text: str | None) -> tuple[str, ...] | None:
    """`test01,test06` → ("test01", "test06"); None/empty: the whole suite."""
    if not text:
        return None
    return tuple(get_test(t.strip()).key for t in text.split(",") if t.strip())


def suite_summary(run: SuiteRun) -> list[dict[str, Any]]:
    """The summary rows (for a DataFrame in the notebook)."""
    return [dict(r) for r in run.rows()]
