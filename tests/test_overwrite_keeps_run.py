"""`--overwrite` removes an earlier run only once the endpoint has answered: with an unreachable
endpoint (127.0.0.1, a closed port) the run stops with exit 3 and the earlier run's files stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditkit.audits import load_config
from auditkit.cli import main
from auditkit.runner import run_audit
from tests.reliability.conftest import closed_port


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_audit_overwrite_with_a_dead_endpoint_keeps_the_earlier_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    over = {
        "mock": {"simulated": True},
        "output_dir": str(out),
        "test01": {"samples": 24, "log_samples": 8, "warmup": 0},
    }
    run_audit(load_config(None, over), "test01")  # the earlier run, on a virtual clock
    before = _files(out)
    assert "TEST01/audit_result.json" in before
    url = f"http://127.0.0.1:{closed_port()}"
    code = main(["run", "test01", "--url", url, "--output-dir", str(out), "--overwrite"])
    assert code == 3
    assert "unreachable" in capsys.readouterr().err
    assert _files(out) == before


def test_suite_overwrite_with_a_dead_endpoint_keeps_every_audits_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    for name in ("TEST01/audit_result.json", "TEST04/verify_performance.txt"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("earlier run\n")
    (out / "suite_result.json").write_text("{}\n")
    before = _files(out)
    url = f"http://127.0.0.1:{closed_port()}"
    code = main(["run", "suite", "--url", url, "--output-dir", str(out), "--overwrite"])
    assert code == 3, capsys.readouterr().err
    assert "unreachable" in capsys.readouterr().err
    assert _files(out) == before


@pytest.mark.slow
def test_notebook_overwrite_with_a_dead_endpoint_keeps_the_earlier_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    for name in ("TEST04/audit_result.json", "TEST04/verify_performance.txt"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text('{"verdict": "PASS"}\n')
    before = _files(out)
    url = f"http://127.0.0.1:{closed_port()}"
    argv = ["notebook", "test04", "-p", "url", url, "-p", "overwrite", "true"]
    code = main([*argv, "--output-dir", str(out)])
    # valid parameters, the endpoint down: the run cell's SetupError keeps its documented exit
    # code (3) through the kernel, and says why (this is test_papermill's exit-3 kernel run too)
    err = capsys.readouterr().err
    assert code == 3, err
    assert "unreachable" in err
    assert (out / "test04.ipynb").is_file()
    after = _files(out)
    assert {k: v for k, v in after.items() if k.startswith("TEST04/")} == before
