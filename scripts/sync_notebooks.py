"""Regenerate the `parameters` cell of every audit notebook from the config models.

The config fields are the one source of options (auditkit.options): this writes them into each
registered audit's own notebook, so the notebook, the CLI and the YAML cannot drift apart.

    python scripts/sync_notebooks.py          # rewrite the cells that changed
    python scripts/sync_notebooks.py --check  # exit 1 if a notebook is out of date
"""

from __future__ import annotations

import argparse
import sys

import nbformat

from auditkit.audits import REGISTRY
from auditkit.options import audit_options, render_parameters
from auditkit.resources import notebook

#: defaults that differ in notebooks (none today: `auditkit run`, `auditkit notebook` and the
#: notebooks all write to auditkit-out/)
NOTEBOOK_DEFAULTS: dict[str, str] = {}


def expected_cell(key: str) -> str:
    """The parameters cell an audit's notebook must have."""
    test = REGISTRY[key]
    return render_parameters(audit_options(test.key, test.settings_model), NOTEBOOK_DEFAULTS)


def sync(check: bool) -> list[str]:
    """Rewrite (or, with check, only list) the audit notebooks whose parameters cell differs."""
    stale: list[str] = []
    for key, test in sorted(REGISTRY.items()):
        if not test.notebook:
            continue
        path = notebook(test.notebook)
        nb = nbformat.read(str(path), as_version=4)
        cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        if len(cells) != 1:
            raise SystemExit(f"{path}: needs exactly one cell tagged 'parameters'")
        want = expected_cell(key).rstrip("\n")
        if cells[0].source != want:
            stale.append(str(path))
            if not check:
                cells[0].source = want
                nbformat.write(nb, str(path))
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if stale")
    args = parser.parse_args()
    stale = sync(args.check)
    for path in stale:
        print(f"{'out of date' if args.check else 'updated'}: {path}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
