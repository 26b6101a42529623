"""Files that ship inside the package (the default dataset, the notebooks), found with
importlib.resources so a wheel install works from any folder, not only from a repo checkout.

The repository's top-level `data/` and `notebooks/` are links to these folders.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_DATASET = "prompts.jsonl"
CHOICES_DATASET = "choices.jsonl"


def _package_dir(name: str) -> Path:
    # the wheel installs auditkit as plain files (zip-safe = false), so the traversable is a
    # real directory; papermill and the dataset readers need real paths
    return Path(str(resources.files("auditkit") / name))


def datasets_dir() -> Path:
    """Folder of the datasets shipped with auditkit."""
    return _package_dir("datasets")


def default_dataset() -> Path:
    """The 1024 synthetic prompts (scripts/make_prompts.py) every audit uses by default."""
    return datasets_dir() / DEFAULT_DATASET


def choices_dataset() -> Path:
    """The 200 multiple-choice questions with their answers (scripts/make_choices.py): TEST07's
    compliance set against the embedded mock."""
    return datasets_dir() / CHOICES_DATASET


def notebooks_dir() -> Path:
    """Folder of the notebooks shipped with auditkit."""
    return _package_dir("notebooks")


def notebook(name: str) -> Path:
    """A shipped notebook by file name, e.g. `audit.ipynb`."""
    return notebooks_dir() / name


def notebook_names() -> list[str]:
    """Names (without .ipynb) of the shipped notebooks."""
    return sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))


def resolve_output_dir(path: str | Path) -> Path:
    """Where a notebook writes artifacts, as an absolute path.

    Absolute paths stay. A relative path is taken from the working directory, except when the
    kernel runs in the shipped notebooks' folder of a repository checkout (JupyterLab and nbval
    start kernels there): then it is taken from the checkout's root, so `out` means <repo>/out
    wherever it runs from.
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    cwd = Path.cwd().resolve()
    base = cwd
    shipped = notebooks_dir().resolve()
    checkout = shipped.parent.parent
    if cwd == shipped and (checkout / "pyproject.toml").is_file():
        base = checkout
    return (base / p).resolve()
