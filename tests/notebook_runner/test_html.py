"""The HTML report leads with the answer: title, verdict, results; the parameters and the phase
log last, folded (the executed notebook keeps papermill's order)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from auditkit.notebook_runner.html import report_order
from auditkit.resources import notebooks_dir


def _executed(name: str) -> nbformat.NotebookNode:
    """A shipped notebook as papermill leaves it: an injected-parameters cell after the
    parameters cell, and a phase log printed by the run cell."""
    nb = nbformat.read(str(notebooks_dir() / f"{name}.ipynb"), as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell(
        "samples = 64\n", metadata={"tags": ["injected-parameters"]}
    )
    nb.cells.insert(at + 1, injected)
    for cell in nb.cells:
        if cell.cell_type == "code" and "run_" in cell.source:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="phase <x>\n")]
    return nb


@pytest.mark.parametrize("name", ["test04", "audit", "review_results", "suite"])
def test_every_report_opens_with_the_verdict(name: str) -> None:
    nb = _executed(name)
    cells = report_order(nb.cells)
    # the title's heading, then the answer; the introduction after it
    assert cells[0].source == nb.cells[0].source.split("\n")[0]
    assert all(c.metadata.get("transient", {}).get("remove_source") for c in cells[1:3]
               if c.cell_type == "code")  # fmt: skip
    first = "".join(c.source for c in cells[1:3])
    assert "verdict" in first.lower(), first
    sources = [c.source for c in cells]
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in cells)
    assert not any("parameters" in c.metadata.get("tags", []) for c in cells)
    appendix = cells[-1]
    assert appendix.cell_type == "markdown" and appendix.source.startswith("## How this ran")
    # one line per folded block: a blank line would end markdown's HTML block
    assert all(line.startswith("<details>") for line in appendix.source.splitlines()[2:])
    assert appendix.source.count("<details>") >= 3  # given, defaults, setup
    assert "samples = 64" in appendix.source  # the -p values stay readable, folded
    if name != "review_results":
        assert "phase &lt;x&gt;" in appendix.source  # the phase log, escaped, folded
    # nothing is lost: every other cell is still in the report, in the notebook's order
    kept = [c for c in nb.cells if c.source in sources]
    assert [c.source for c in kept] == [s for s in sources if s in {c.source for c in kept}]


def test_a_failed_setup_cell_stays_in_view() -> None:
    nb = _executed("test04")
    run = next(c for c in nb.cells if "run_audit(" in c.source)
    run.outputs = [nbformat.v4.new_output("error", ename="X", evalue="boom", traceback=[])]
    cells = report_order(nb.cells)
    assert run in cells and cells.index(run) < len(cells) - 1


def test_a_notebook_without_tags_is_left_as_it_is(tmp_path: Path) -> None:
    cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("1")]
    assert report_order(cells) == cells


def test_a_typoed_parameter_names_the_closest_not_all_hundred() -> None:
    from auditkit.audits import get_test
    from auditkit.notebook_runner.params import unknown_message
    from auditkit.options import audit_options

    test = get_test("test04")
    known = sorted(o.param for o in audit_options(test.key, test.settings_model))
    assert len(known) > 50
    message = unknown_message("mock_cahce", known, "test04")
    assert "did you mean mock_cache?" in message and len(message) < 200, message
    assert "`auditkit run test04 --help` lists all" in message
    vague = unknown_message("concurrency_max", known, "test04")
    assert "max_concurrency" in vague and len(vague) < 300, vague
