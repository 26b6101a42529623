"""review.py and review_results.ipynb (issue 14 items 2 and 5): a review shows the run that is
there or stops with one line naming the absolute path it tried; every layout renders (warm-up,
counterbalanced blocks) without empty tables or warnings; the HTML report's fixes."""

from __future__ import annotations

import json
import re
import signal
import warnings
from pathlib import Path

import nbformat
import pytest

from auditkit import display, plots
from auditkit.audits import build_config
from auditkit.cli import main
from auditkit.notebook_runner import NotebookStop, run_notebook
from auditkit.review import demo_run, load_run, locate
from auditkit.runner import run_audit
from tests.conftest import NotebookRun

QUICK = {"samples": 64, "allow_small": True, "rounds": 0}


@pytest.fixture(scope="module")
def counterbalanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cb")
    cfg = build_config(
        {
            "output_dir": str(out),
            "mock": {"simulated": True},
            "test04": {**QUICK, "design": "counterbalanced"},
        }
    )
    run_audit(cfg)
    return out


def test_a_missing_run_is_one_line_naming_the_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotebookStop) as info:
        locate("typo")
    message = info.value.one_line()
    assert f"no finished run at {tmp_path.resolve() / 'typo'}" in message
    assert "does not exist" in message
    assert not (tmp_path / "typo").exists()  # nothing was run or created


def test_an_interrupted_run_is_named_as_such(tmp_path: Path) -> None:
    phase = tmp_path / "TEST04" / "reference"
    phase.mkdir(parents=True)
    (phase / "phase.json").write_text("{}")
    with pytest.raises(NotebookStop, match="interrupted run has no verdict"):
        locate(tmp_path)


def test_relative_paths_are_taken_from_the_working_directory(
    counterbalanced: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(counterbalanced.parent)
    assert locate(counterbalanced.name) == counterbalanced / "TEST04"


def test_every_phase_folder_loads_in_run_order(counterbalanced: Path) -> None:
    saved = load_run(counterbalanced)
    assert list(saved.records) == [
        "warmup",
        "reference_1",
        "audit_1",
        "audit_2",
        "reference_2",
        "control",
    ]
    assert list(saved.summaries) == list(saved.records)
    table = display.summary_table(saved.summaries)
    assert len(table) == 6 and not table.empty


def test_plots_of_a_counterbalanced_run_draw_without_warnings(counterbalanced: Path) -> None:
    saved = load_run(counterbalanced)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for helper in (plots.latency_over_time, plots.latency_ecdf, plots.throughput_over_time):
            fig = helper(saved.records)
            assert fig.axes


def test_demo_is_explicit_and_never_writes_into_a_results_dir(tmp_path: Path) -> None:
    folder = demo_run(output_dir=tmp_path / "demo")
    assert folder == tmp_path / "demo" / "TEST04"
    assert load_run(folder).result.verdict in ("PASS", "INCONCLUSIVE")


def test_auditkit_notebook_review_results_typo_exits_2_before_any_kernel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # main() in this process, from tmp_path (a child `auditkit notebook` stopping with exit 2
    # before any kernel is test_papermill's)
    monkeypatch.chdir(tmp_path)
    saved = signal.getsignal(signal.SIGTERM)  # main() installs its own
    try:
        code = main(["notebook", "review_results", "-p", "results_dir", "no-such-run",
                     "--output-dir", str(tmp_path / "nb")])  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, saved)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path.resolve() / "no-such-run") in lines[0]
    assert not (tmp_path / "nb").exists() and not (tmp_path / "no-such-run").exists()


def _outputs(nb: nbformat.NotebookNode) -> list[dict]:  # type: ignore[type-arg]
    return [o for c in nb.cells for o in c.get("outputs", [])]


@pytest.mark.slow
def test_review_notebook_renders_a_counterbalanced_run_and_its_html(
    counterbalanced: Path, tmp_path: Path
) -> None:
    outcome = run_notebook(
        "review_results",
        {"results_dir": str(counterbalanced), "compare_with": str(counterbalanced)},
        out_dir=tmp_path,
        html=True,
    )
    assert outcome.exit_code == 0, outcome.message
    nb = nbformat.read(str(outcome.notebook), as_version=4)
    outputs = _outputs(nb)
    stderr = [o["text"] for o in outputs if o.get("name") == "stderr"]
    assert not stderr, stderr  # no matplotlib/pandas warnings
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
    assert outcome.html is not None
    page = outcome.html.read_text(encoding="utf-8")
    assert "reference_2" in page and "audit_1" in page  # the blocks' table is not empty
    assert "Next:" in page  # the verdict panel says what to do next
    assert "audit_output_caching_test.json" in page  # the artifacts list includes out/audit/
    assert "B/A" in page  # the compare cell rendered
    # no kernel-transport warning anywhere (the runner's kernel uses IPC)
    assert "without encryption" not in page


@pytest.mark.slow
def test_html_report_fixes_on_a_live_notebook(test04_notebook_with_html: NotebookRun) -> None:
    """test04.ipynb executed and exported as `make demo` does (`auditkit notebook test04
    --html`, run once for this and test_papermill): no frozen progress bar text, no "None" for
    TTFT, no nested brackets in the threshold, the panel's next step, the submission record in
    the artifacts list."""
    run = test04_notebook_with_html
    assert run.proc.returncode == 0, run.proc.stderr
    page = (run.out / "test04.html").read_text(encoding="utf-8")
    assert not re.search(r"\b0%\|", page)  # a tqdm bar's stale text fallback
    assert not re.search(r"<td>\s*(None|NaN)\s*</td>", page)  # e.g. TTFT when not streamed
    assert "Next:" in page
    threshold = re.search(r"<th[^>]*>Threshold</th><td[^>]*>(.*?)</td>", page, re.S)
    assert threshold is not None
    text = re.sub(r"<[^>]+>", "", threshold.group(1))
    assert "((" not in text and text.count("(") <= 1, text
    assert "audit_output_caching_test.json" in page


@pytest.mark.parametrize("verdict", ["PASS", "FAIL", "INCONCLUSIVE", "INVALID"])
def test_every_verdict_has_a_next_step(counterbalanced: Path, verdict: str) -> None:
    result = load_run(counterbalanced).result.model_copy(update={"verdict": verdict})
    step = display.next_step(result)
    assert step and step != display.next_step(
        result.model_copy(update={"verdict": "PASS" if verdict != "PASS" else "FAIL"})
    )
    assert "Next:" in display.verdict_html(result)


def test_saved_result_json_lists_phases(counterbalanced: Path) -> None:
    data = json.loads((counterbalanced / "TEST04" / "audit_result.json").read_text())
    assert data["phases"]


def test_reviewing_a_fail_run_reports_its_verdict_and_exit_code(tmp_path: Path) -> None:
    from auditkit.notebook_runner.kernel import NotebookOutcome
    from auditkit.notebook_runner.outputs import reviewed_verdict

    cfg = build_config(
        {"output_dir": str(tmp_path), "mock": {"simulated": True, "cache": "output"},
         "test04": {**QUICK, "design": "sequential"}}
    )  # fmt: skip
    folder = run_audit(cfg).folder
    outcome = NotebookOutcome(0, "executed")
    reviewed_verdict(outcome, {"results_dir": str(folder)})
    assert (outcome.exit_code, outcome.verdict) == (1, "FAIL")
    assert outcome.message == "reviewed TEST04 FAIL"


@pytest.mark.slow
def test_html_report_opens_with_the_verdict_in_a_real_browser(
    test04_notebook_with_html: NotebookRun, tmp_path: Path
) -> None:
    """The report in headless Chromium (scripts/ui_check.py --report): the verdict panel on the
    first screen at 1280x800, the parameters folded. Skipped without chromium + selenium."""
    import importlib.util
    import shutil
    import sys

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("needs Debian's chromium and chromium-driver")
    if importlib.util.find_spec("selenium") is None:
        pytest.skip("needs selenium (pip install -e '.[ui]')")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    try:
        import ui_check
    finally:
        sys.path.pop(0)
    html = test04_notebook_with_html.out / "test04.html"
    assert ui_check.report(html, tmp_path, [(1280, 800)]) == 0
    assert (tmp_path / "report_1280x800_first_screen.png").stat().st_size > 10_000
