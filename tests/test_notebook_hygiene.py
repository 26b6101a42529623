"""Committed notebooks carry no outputs or execution counts and use the python3 kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from auditkit.resources import notebooks_dir

NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))
REPO_LINK = Path(__file__).resolve().parent.parent / "notebooks"


def test_notebooks_exist() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"test04.ipynb", "audit.ipynb", "investigate_caching.ipynb"} <= names
    assert "review_results.ipynb" in names
    # the repository's notebooks/ is the package's folder (one copy, shipped in the wheel)
    assert REPO_LINK.resolve() == notebooks_dir().resolve()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_clean(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell has outputs"
            assert cell.execution_count is None, f"{path.name}: cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_of_annotated_literals(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for line in tagged[0].source.splitlines():
        if line.strip() and not line.startswith(("#", "from typing import")):
            assert ": " in line and " = " in line and "  # " in line, line
