"""Notebook support, one module per job:

- `bridge`: inside an audit notebook, its parameters → the run config (`audit_config`);
- `params`: `auditkit notebook -p` values checked against the notebook, typed by its
  annotations, credentials refused, all before a kernel starts;
- `kernel`: executing the notebook with papermill, errors mapped to exit codes;
- `outputs`: run folders given as parameters, and the verdict file the run left → exit code;
- `html`: the self-contained HTML report;
- `run`: `run_notebook`, what `auditkit notebook NAME` calls.
"""

from auditkit.errors import NotebookStop as NotebookStop
from auditkit.notebook_runner.bridge import audit_config as audit_config
from auditkit.notebook_runner.bridge import describe_config as describe_config
from auditkit.notebook_runner.run import run_notebook as run_notebook
