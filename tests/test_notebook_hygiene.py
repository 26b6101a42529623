"""Committed notebooks carry no outputs or execution counts and use the python3 kernel; JupyterLab
saves them that way (the pre-save hook: tests/test_jupyter_hook.py saves through a real Jupyter
Server), and `make strip-notebooks` cleans one by hand."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from auditkit import nbclean
from auditkit.resources import notebooks_dir

NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))
ROOT = Path(__file__).resolve().parent.parent
REPO_LINK = ROOT / "notebooks"
HOW_TO_CLEAN = (
    "outputs were saved into a shipped notebook; clean it with `make strip-notebooks` "
    "(or `.venv/bin/python -m auditkit.nbclean`), then rerun"
)


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
    assert "widgets" not in nb.metadata, f"{path.name}: {HOW_TO_CLEAN}"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: {HOW_TO_CLEAN}"
            assert cell.execution_count is None, f"{path.name}: {HOW_TO_CLEAN}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_of_annotated_literals(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for line in tagged[0].source.splitlines():
        if line.strip() and not line.startswith(("#", "from typing import")):
            assert ": " in line and " = " in line and "  # " in line, line


def _dirty(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(nb)
    nb.metadata["widgets"] = {"state": {}}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n")]
            cell.execution_count = 7
    return nb


def test_pre_save_hook_strips_shipped_notebooks_only(tmp_path: Path) -> None:
    shipped = NOTEBOOKS[0]
    nb = _dirty(nbformat.read(str(shipped), as_version=4))
    model = {"type": "notebook", "content": nb}
    manager = type("CM", (), {"root_dir": str(ROOT)})()
    # JupyterLab started at the repo root saves notebooks/<name>.ipynb (the link) …
    nbclean.pre_save_hook(model=model, path=f"notebooks/{shipped.name}", contents_manager=manager)
    assert all(c.get("outputs", []) == [] for c in nb.cells)
    assert "widgets" not in nb.metadata
    # … a user's own notebook keeps its outputs
    own = _dirty(nb)
    nbclean.pre_save_hook(
        model={"type": "notebook", "content": own},
        path="mine.ipynb",
        contents_manager=type("CM", (), {"root_dir": str(tmp_path)})(),
    )
    assert any(c.get("outputs") for c in own.cells)


def test_cleaner_strips_in_place_and_check_reports(tmp_path: Path) -> None:
    path = tmp_path / "dirty.ipynb"
    nbformat.write(_dirty(nbformat.read(str(NOTEBOOKS[0]), as_version=4)), str(path))
    assert nbclean.main(["--check", str(path)]) == 1
    assert nbclean.main([str(path)]) == 0
    assert nbclean.main(["--check", str(path)]) == 0
    clean = nbformat.read(str(path), as_version=4)
    assert all(c.get("execution_count") is None for c in clean.cells if c.cell_type == "code")
