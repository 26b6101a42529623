"""Keep the shipped notebooks free of outputs: a JupyterLab pre-save hook and a cleaner.

The notebooks in `auditkit/notebooks/` are templates (papermill runs them; nbval and the
hygiene test read them), so an executed copy must never be saved over them. This module is a
Jupyter Server extension: `jupyter/jupyter_server_config.d/auditkit.json` (installed into the
venv's `etc/jupyter/` with the package, and by `make`) enables it, and its load hook registers
`pre_save_hook` with the server's contents manager. Jupyter reads the `.d` folder's JSON only
to enable extensions, so a `ContentsManager.pre_save_hook` setting there would be ignored.
Saving one of these notebooks in JupyterLab (autosave included) writes it without outputs,
execution counts or widget state. Other notebooks are saved untouched.

    python -m auditkit.nbclean notebooks/*.ipynb          # strip in place
    python -m auditkit.nbclean --check notebooks/*.ipynb  # exit 1 if any has outputs
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

from auditkit.resources import notebooks_dir


def strip(nb: MutableMapping[str, Any]) -> bool:
    """Remove outputs, execution counts and widget state from a notebook (dict or
    NotebookNode) in place; True if anything was removed."""
    changed = False
    metadata = nb.get("metadata", {})
    if "widgets" in metadata:
        del metadata["widgets"]
        changed = True
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            cell["outputs"] = []
            changed = True
        if cell.get("execution_count") is not None:
            cell["execution_count"] = None
            changed = True
    return changed


def is_shipped(path: str | Path) -> bool:
    """True for a notebook in auditkit's notebooks folder (a template, kept clean)."""
    return Path(path).resolve().parent == notebooks_dir().resolve()


def pre_save_hook(
    model: MutableMapping[str, Any], path: str, contents_manager: Any = None, **_: Any
) -> None:
    """Jupyter Server's ContentsManager.pre_save_hook: strip a shipped notebook before it is
    written (`path` is relative to the server's root_dir)."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), MutableMapping):
        return
    root = Path(getattr(contents_manager, "root_dir", None) or ".")
    if is_shipped(root / path.lstrip("/")):
        strip(model["content"])


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Jupyter Server's entry: this module is the extension."""
    return [{"module": "auditkit.nbclean"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the hook with the running server's contents manager (beside any the user
    configured: register_pre_save_hook keeps them)."""
    serverapp.contents_manager.register_pre_save_hook(pre_save_hook)
    serverapp.log.info("auditkit: shipped notebooks are saved without outputs")


def main(argv: Sequence[str] | None = None) -> int:
    """Strip (or with --check, list) notebooks that carry outputs."""
    import nbformat

    parser = argparse.ArgumentParser(prog="python -m auditkit.nbclean", description=__doc__)
    parser.add_argument("notebooks", nargs="*", help="files (default: the shipped notebooks)")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if dirty")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or sorted(notebooks_dir().glob("*.ipynb"))
    dirty = []
    for path in paths:
        nb = nbformat.read(str(path), as_version=nbformat.NO_CONVERT)
        if strip(nb):
            dirty.append(path)
            if not args.check:
                nbformat.write(nb, str(path))
    verb = "has outputs" if args.check else "stripped"
    for path in dirty:
        print(f"{path}: {verb}")
    return 1 if dirty and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
