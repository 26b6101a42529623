"""`auditkit notebook NAME`: choose the notebook, check its parameters, execute it, and turn
its verdict into the exit code."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditkit.audits import REGISTRY, AuditTest, get_test
from auditkit.errors import EXIT_PASS, InputError, did_you_mean
from auditkit.notebook_runner.bridge import audit_config
from auditkit.notebook_runner.html import export_html
from auditkit.notebook_runner.kernel import NotebookOutcome, execute
from auditkit.notebook_runner.outputs import (
    audit_verdict,
    check_run_paths,
    reviewed_verdict,
    stamp,
    suite_verdict,
)
from auditkit.notebook_runner.params import (
    generic_values,
    notebook_parameters,
    refuse_secrets,
    resolve_parameters,
)
from auditkit.resources import notebook, notebook_names, resolve_output_dir
from auditkit.startup import load_plugins_once
from auditkit.suite import SUITE_RESULT, check_notebook_parameters

#: the notebook that runs any audit without a notebook of its own (parameters: test, settings)
GENERIC_NOTEBOOK = "audit.ipynb"
DEFAULT_CELL_TIMEOUT_S = 600


@dataclass(frozen=True)
class NotebookChoice:
    """Which notebook `auditkit notebook NAME` runs, and for which audit (if any)."""

    source: Path
    test: AuditTest | None
    generic: bool = False


def choose_notebook(name: str) -> NotebookChoice:
    """An audit's key runs its own notebook (or the generic audit notebook); any other name is
    a shipped notebook (review_results, investigate_caching). InputError with a suggestion."""
    if name.lower() in REGISTRY:
        test = get_test(name)
        if test.notebook:
            return NotebookChoice(notebook(test.notebook), test)
        return NotebookChoice(notebook(GENERIC_NOTEBOOK), test, generic=True)
    shipped = [n for n in notebook_names() if n != Path(GENERIC_NOTEBOOK).stem]
    if name in shipped:
        return NotebookChoice(notebook(f"{name}.ipynb"), None)
    known = sorted({*REGISTRY, *shipped})
    hint = did_you_mean(name, known)
    raise InputError(f"unknown notebook {name!r}{hint} (available: {', '.join(known)})")


def _checked_values(
    choice: NotebookChoice, given: dict[str, Any], out: Path
) -> tuple[dict[str, Any], str]:
    """The notebook's parameters, checked as its kernel will check them (InputError, exit 2,
    before any kernel starts), and the folder its verdict goes to."""
    test = choice.test
    if choice.generic and test is not None:
        settings = generic_values(test, given)
        output_dir = str(resolve_output_dir(settings.pop("output_dir", out)))
        audit_config(test.key, **settings, output_dir=output_dir)
        return {"test": test.key, "settings": settings, "output_dir": output_dir}, output_dir
    declared = notebook_parameters(choice.source)
    values = resolve_parameters(declared, given)
    suite = choice.source.stem == "suite"
    if test is not None or suite:
        # artifacts (and the suite's verdict, which the runner reads) default to the runner's
        # output folder, as an absolute path, so the kernel's working directory cannot move them
        values["output_dir"] = str(Path(values.get("output_dir", out)).expanduser().resolve())
    if test is None:
        values = check_run_paths(choice.source.stem, declared, values)
    else:
        audit_config(test.key, {k: v["default"] for k, v in declared.items()} | values)
    if suite:
        check_notebook_parameters(values)
    return values, str(values.get("output_dir", out))


def run_notebook(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    out_dir: str | Path = "auditkit-out",
    html: bool = False,
    cell_timeout_s: int = DEFAULT_CELL_TIMEOUT_S,
    log: Callable[[str], None] | None = None,
) -> NotebookOutcome:
    """Run a shipped notebook with papermill and map its verdict to an exit code.

    Exit codes: 0 PASS (or a non-audit notebook that ran cleanly), 1 FAIL, 2 unknown/invalid
    parameter (nothing executed), 4 INVALID verdict, crashed notebook, or no verdict written;
    the suite notebook: the suite's combined code (suite_result.json; 5 INCONCLUSIVE).
    """
    say = log or (lambda _m: None)
    started = time.monotonic()
    load_plugins_once()
    choice = choose_notebook(name)
    given = dict(params or {})
    refuse_secrets(given)
    out = Path(out_dir).expanduser().resolve()
    test = choice.test
    values, output_dir = _checked_values(choice, given, out)
    result_file = Path(output_dir) / test.id / "audit_result.json" if test else None
    # never report a previous run's verdict if this one dies early, yet keep that run whole
    # (a dead endpoint must not cost it its verdict): a verdict file unchanged since now is
    # not this run's
    earlier = stamp(result_file) if result_file is not None else None
    earlier_suite = stamp(Path(output_dir) / SUITE_RESULT)
    executed = out / f"{test.key if test is not None else name}.ipynb"
    out.mkdir(parents=True, exist_ok=True)
    say(f"running {choice.source.name} → {executed}")
    outcome = execute(choice.source, executed, values, cell_timeout_s)
    outcome.notebook = executed
    if outcome.exit_code == EXIT_PASS and result_file is not None and test is not None:
        decision = values.get("decision", values.get("settings", {}).get("decision"))
        audit_verdict(outcome, test, result_file, earlier, decision)
    if outcome.exit_code == EXIT_PASS and choice.source.stem == "review_results":
        reviewed_verdict(outcome, values)
    if outcome.exit_code == EXIT_PASS and choice.source.stem == "suite":
        suite_verdict(outcome, Path(output_dir), earlier_suite)
    if html and executed.exists():
        outcome.html = export_html(executed, executed.with_suffix(".html"))
    outcome.seconds = time.monotonic() - started
    return outcome
