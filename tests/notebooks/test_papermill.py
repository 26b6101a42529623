"""test04.ipynb headless: through papermill's API and through `auditkit notebook`.

Verdicts are asserted on the simulated mock (`mock_simulated`: the mock's latency model on a
virtual clock, exact whatever the machine is doing). Runs over real HTTP: test_packaging's and
test_secrets' notebook runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from auditkit.cli import main
from auditkit.notebook_runner.html import REMOTE_PATTERN
from auditkit.resources import notebook
from tests.conftest import NotebookRun

NOTEBOOK = notebook("test04.ipynb")
# on the simulated mock the verdict is exact with fewer samples; one reference and one audit
# phase (not 16 alternating blocks) is what these tests read, and costs a fraction of the time
QUICK = {"samples": 128, "design": "sequential"}
AUDITKIT = [sys.executable, "-m", "auditkit.cli"]


def verdict(output_dir: Path) -> str:
    data = json.loads((output_dir / "TEST04" / "audit_result.json").read_text())
    return str(data["verdict"])


@pytest.mark.slow
def test_papermill_api(tmp_path: Path) -> None:
    """papermill's own API (not our CLI) runs the notebook and it renders the verdict panel and
    the plots. One kernel run: PASS through a kernel is `test_cli_pass_exit_0_with_html`'s."""
    cache, expected = "output", "FAIL"
    out = tmp_path / "run"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "test04.ipynb"),
        parameters={
            **QUICK,
            "mock_cache": cache,
            "mock_simulated": True,
            "output_dir": str(out),
        },
        kernel_name="python3",
        execution_timeout=120,
        progress_bar=False,
        cwd=str(tmp_path),  # "from elsewhere": the dataset still resolves via the project root
    )
    assert verdict(out) == expected
    executed = nbformat.read(str(tmp_path / "test04.ipynb"), as_version=4)
    html_outputs = [
        o["data"]["text/html"]
        for c in executed.cells
        for o in c.get("outputs", [])
        if "text/html" in o.get("data", {})
    ]
    assert any(f">{expected}</span>" in h for h in html_outputs)  # the verdict panel
    pngs = sum(
        "image/png" in o.get("data", {}) for c in executed.cells for o in c.get("outputs", [])
    )
    assert pngs >= 3  # latency over time, ECDF, rolling QPS


@pytest.mark.slow
def test_papermill_bad_parameter_stops_with_one_line(tmp_path: Path) -> None:
    target = tmp_path / "bad.ipynb"
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(NOTEBOOK), str(target), parameters={"samples": -5}, kernel_name="python3",
            progress_bar=False, execution_timeout=60,
        )  # fmt: skip
    assert info.value.ename == "NotebookStop"
    errors = [
        o
        for c in nbformat.read(str(target), as_version=4).cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert len(errors) == 1
    assert errors[0]["traceback"] == ["auditkit: parameter samples: Input should be greater "
                                      "than or equal to 1 (got -5)"]  # fmt: skip


def in_process(*args: str) -> int:
    """`auditkit notebook test04 ARGS` through main() in this process (no interpreter start,
    no imports: a child `auditkit` spends ~2 s importing papermill, pandas and scipy)."""
    saved = signal.getsignal(signal.SIGTERM)  # main() installs its own
    try:
        return main(["notebook", "test04", *args])
    finally:
        signal.signal(signal.SIGTERM, saved)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [*AUDITKIT, "notebook", "test04", *args], cwd=cwd, capture_output=True, text=True,
        timeout=240, env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_cli_pass_exit_0_with_html(test04_notebook_with_html: NotebookRun) -> None:
    # a child `auditkit notebook test04 --html` (shared with test_review's HTML checks)
    proc, out = test04_notebook_with_html.proc, test04_notebook_with_html.out
    assert proc.returncode == 0, proc.stderr
    assert "TEST04 PASS" in proc.stdout
    html = (out / "test04.html").read_text()
    assert "auditkit-verdict" in html and "data:image/png;base64" in html
    assert ">PASS</span>" in html  # the verdict panel says it
    assert not REMOTE_PATTERN.search(html)
    assert not re.search(r"https?://[^\s\"'<>]*(cdn|unpkg|jsdelivr)", html, re.I)  # no CDN hosts
    assert verdict(out) == "PASS"
    assert (out / "test04.ipynb").exists()
    log = out / "test04.kernel.log"  # kept only when the kernel said something
    assert not log.exists() or log.stat().st_size > 0


# FAIL through a kernel, exit 1 and "TEST… FAIL" from main(): the in-test plug-in's
# tests/audits/test_plugin_framework.py::test_plugin_runs_through_the_notebook_runner, and
# test_papermill_api's FAIL here. A child `auditkit notebook test04` over real HTTP (the
# embedded mock) reaching a verdict: tests/test_packaging.py, and
# tests/reliability/test_secrets.py::test_notebook_audit_writes_no_key (a real server).


@pytest.mark.slow
def test_cli_bad_parameter_exit_2_one_line_from_a_real_process(tmp_path: Path) -> None:
    proc = cli("-p", "bogus", "1", "--output-dir", "o", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown parameter 'bogus'" in lines[0], proc.stderr
    assert not (tmp_path / "o" / "test04.ipynb").exists()  # rejected before running


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "samples", "-5"], "parameter samples: Input should be greater than or equal to 1"),
        (["-p", "samples", "lots"], "parameter samples: expected int, got 'lots'"),
        (["-p", "sampels", "64"], "did you mean samples?"),
        (["-p", "samples", "4096"], "exceeds the dataset's 1024 rows"),
    ],
)
def test_cli_bad_parameter_exit_2_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    # each message through main() in this process (the child process path is the test above)
    code = in_process(*args, "--output-dir", str(tmp_path / "o"))
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert out == ""
    assert not (tmp_path / "o" / "test04.ipynb").exists()  # rejected before running


# exit 3 through the kernel (a dead endpoint in the run cell): test_overwrite_keeps_run.py's
# test_notebook_overwrite_with_a_dead_endpoint_keeps_the_earlier_verdict


def test_coercion_by_annotation() -> None:
    from auditkit.notebook_runner.params import coerce_value

    assert coerce_value("url", "None", "Optional[str]") is None
    assert coerce_value("stream", "true", "bool") is True
    assert coerce_value("threshold", "0.2", "Optional[float]") == 0.2
    assert coerce_value("sample_index", "median", "Union[int, str]") == "median"
    assert coerce_value("headers", '{"X-Trace": "1"}', "dict") == {"X-Trace": "1"}
    assert coerce_value("sample_index", "7", "Union[int, str]") == 7
