"""test04.ipynb headless: through papermill's API and through `auditkit notebook`.

Verdicts are asserted on the simulated mock (`mock_simulated`: the mock's latency model on a
virtual clock, exact whatever the machine is doing); one run goes over real HTTP to the mock in
its own process and asserts that a verdict was reached and rendered.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from auditkit.notebook_runner import REMOTE_PATTERN
from auditkit.resources import notebook

NOTEBOOK = notebook("test04.ipynb")
# the FAIL case is unmistakable with fewer samples; the PASS case keeps the default 256 so a
# busy CI machine's noise cannot push the audit phase over the 10% margin
QUICK = {"samples": 128}
SIMULATED = ("-p", "mock_simulated", "true")
AUDITKIT = [sys.executable, "-m", "auditkit.cli"]


def verdict(output_dir: Path) -> str:
    data = json.loads((output_dir / "TEST04" / "audit_result.json").read_text())
    return str(data["verdict"])


@pytest.mark.parametrize(("cache", "expected"), [("none", "PASS"), ("output", "FAIL")])
def test_papermill_api(tmp_path: Path, cache: str, expected: str) -> None:
    out = tmp_path / "run"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "test04.ipynb"),
        parameters={
            **(QUICK if cache == "output" else {}),
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


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [*AUDITKIT, "notebook", "test04", *args], cwd=cwd, capture_output=True, text=True,
        timeout=240, env=env,
    )  # fmt: skip


def test_cli_pass_exit_0_with_html(tmp_path: Path) -> None:
    proc = cli(*SIMULATED, "--html", "--output-dir", "o", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "TEST04 PASS" in proc.stdout
    html = (tmp_path / "o" / "test04.html").read_text()
    assert "auditkit-verdict" in html and "data:image/png;base64" in html
    assert not REMOTE_PATTERN.search(html)
    assert not re.search(r"https?://[^\s\"'<>]*(cdn|unpkg|jsdelivr)", html, re.I)  # no CDN hosts
    assert verdict(tmp_path / "o") == "PASS"
    assert (tmp_path / "o" / "test04.ipynb").exists()


def test_cli_fail_exit_1(tmp_path: Path) -> None:
    proc = cli(
        *SIMULATED, "-p", "samples", "128", "-p", "mock_cache", "output", "--output-dir", "o",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "TEST04 FAIL" in proc.stdout


def test_cli_over_real_http_reaches_a_verdict(tmp_path: Path) -> None:
    proc = cli("-p", "samples", "128", "--output-dir", "o", cwd=tmp_path)
    assert proc.returncode in (0, 1, 5), proc.stderr  # a verdict, whichever
    assert verdict(tmp_path / "o") in ("PASS", "FAIL", "INCONCLUSIVE")
    assert f"TEST04 {verdict(tmp_path / 'o')}" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "bogus", "1"], "unknown parameter 'bogus'"),
        (["-p", "samples", "-5"], "parameter samples: Input should be greater than or equal to 1"),
        (["-p", "samples", "lots"], "parameter samples: expected int, got 'lots'"),
        (["-p", "sampels", "64"], "did you mean samples?"),
        (["-p", "samples", "4096"], "exceeds the dataset's 1024 rows"),
    ],
)
def test_cli_bad_parameter_exit_2_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    proc = cli(*args, "--output-dir", "o", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "o" / "test04.ipynb").exists()  # rejected before running


def test_cli_unreachable_endpoint_in_the_notebook_exit_3(tmp_path: Path) -> None:
    # valid parameters, but the endpoint is down: the run cell raises SetupError, which keeps
    # its documented exit code (3) through the kernel
    proc = cli("-p", "url", "http://127.0.0.1:9", "-p", "samples", "8", "--output-dir", "o",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "unreachable" in proc.stderr
    assert (tmp_path / "o" / "test04.ipynb").exists()
    assert not (tmp_path / "o" / "TEST04" / "audit_result.json").exists()


def test_coercion_by_annotation() -> None:
    from auditkit.notebook_runner import coerce_value

    assert coerce_value("url", "None", "Optional[str]") is None
    assert coerce_value("stream", "true", "bool") is True
    assert coerce_value("threshold", "0.2", "Optional[float]") == 0.2
    assert coerce_value("sample_index", "median", "Union[int, str]") == "median"
    assert coerce_value("headers", '{"X-Trace": "1"}', "dict") == {"X-Trace": "1"}
    assert coerce_value("sample_index", "7", "Union[int, str]") == 7
