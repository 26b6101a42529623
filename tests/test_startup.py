"""What an entry point does first."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: a child that blocks the slow IRI checker, then reads and validates notebooks with nbformat
_CHILD = """
import sys, time
from auditkit.startup import skip_slow_iri_format_checker
skip_slow_iri_format_checker()
import nbformat
from importlib.resources import files
nb = nbformat.reads(files("auditkit.notebooks").joinpath("test04.ipynb").read_text(), 4)
nbformat.validate(nb)
nb.cells[0]["cell_type"] = "no such type"
try:
    nbformat.validate(nb)
except nbformat.ValidationError:
    print("rejected")
print(sys.modules.get("rfc3987_syntax", "absent"))
"""


@pytest.mark.slow
def test_auditkit_notebook_validates_notebooks_without_the_slow_iri_checker() -> None:
    """`auditkit notebook` starts without rfc3987_syntax (2.3 CPU-s of parser building at
    import), and nbformat still accepts a shipped notebook and rejects a broken one."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["rejected", "None"]
