"""Notebook support, one module per job:

- `bridge`: inside an audit notebook, its parameters → the run config (`audit_config`);
- `params`: `auditkit notebook -p` values checked against the notebook, typed by its
  annotations, credentials refused, all before a kernel starts;
- `kernel`: executing the notebook with papermill, errors mapped to exit codes;
- `outputs`: run folders given as parameters, and the verdict file the run left → exit code;
- `html`: the self-contained HTML report;
- `run`: `run_notebook`, what `auditkit notebook NAME` calls.
"""

from auditkit.errors import NotebookStop
from auditkit.notebook_runner.bridge import audit_config, describe_config
from auditkit.notebook_runner.html import REMOTE_PATTERN, export_html
from auditkit.notebook_runner.kernel import NotebookOutcome, kernel_manager_class
from auditkit.notebook_runner.params import coerce_value, notebook_parameters, resolve_parameters
from auditkit.notebook_runner.run import choose_notebook, run_notebook
from auditkit.resources import resolve_output_dir

__all__ = [
    "REMOTE_PATTERN",
    "NotebookOutcome",
    "NotebookStop",
    "audit_config",
    "choose_notebook",
    "coerce_value",
    "describe_config",
    "export_html",
    "kernel_manager_class",
    "notebook_parameters",
    "resolve_output_dir",
    "resolve_parameters",
    "run_notebook",
]
