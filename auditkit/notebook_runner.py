"""Notebook support: the parameters → config bridge used inside notebooks, and the
`auditkit notebook` runner (papermill + nbconvert) that turns a verdict into an exit code.

papermill only warns about unknown parameters and passes every `-p` value as a string; the
runner rejects unknown names, coerces values by the annotation in the notebook's `parameters`
cell and validates them like the notebook will, all before a kernel starts. Executing needs no
event loop of ours: papermill.execute_notebook must not be called from inside a running loop
(nteract/papermill#490), and the CLI calls it from plain Python.
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from auditkit.config import AuditConfig
from auditkit.data import PROJECT_ROOT
from auditkit.errors import (
    EXIT_EXECUTION,
    EXIT_INPUT,
    EXIT_PASS,
    AuditkitError,
    InputError,
)

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS: dict[str, str] = {"test04": "test04.ipynb"}
DEFAULT_CELL_TIMEOUT_S = 600
# a remote resource the browser would fetch: src/href attributes and ES-module imports
REMOTE_PATTERN = re.compile(
    r"""(?:(?:src|href)\s*=\s*|import\(\s*|Url\s*=\s*)["']https?://""", re.I
)
SCRIPT_BLOCK = re.compile(r"<script\b[^>]*>.*?</script>", re.I | re.S)
# parameter names that smell like a credential (api_key_env, which holds a NAME, is allowed)
SECRET_PARAMETER = re.compile(
    r"(api[-_]?key|token|secret|password|passwd|credential|authorization|bearer)", re.I
)


class NotebookStop(InputError):
    """A bad parameter stops the notebook with one line instead of a traceback.

    IPython prints `_render_traceback_()` instead of the traceback, so Jupyter, papermill's
    output notebook and nbval all show just the message.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"auditkit: {self.one_line()}"]


def resolve_output_dir(path: str | Path) -> Path:
    """Where a notebook writes artifacts, as an absolute path.

    Absolute paths stay. A relative path is taken from the working directory, except when the
    kernel runs in the repo's notebooks/ folder (JupyterLab and nbval start kernels there):
    then it is taken from the project root, so `out` means <repo>/out wherever it runs from.
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    cwd = Path.cwd().resolve()
    base = PROJECT_ROOT if cwd == NOTEBOOK_DIR.resolve() else cwd
    return (base / p).resolve()


def test04_config(
    *,
    url: str | None = None,
    mock_cache: str = "none",
    api: str = "openai-completions",
    model: str | None = None,
    api_key_env: str | None = None,
    dataset: str = "data/prompts.jsonl",
    prompt_column: str = "prompt",
    scenario: str = "offline",
    max_concurrency: int = 32,
    samples_per_query: int = 8,
    target_qps: float | None = None,
    target_latency_ms: float | None = None,
    samples: int = 256,
    audit_samples: int | None = None,
    sample_index: int | str = 3,
    threshold: float | None = None,
    seed: int = 0,
    design: str = "sequential",
    warmup_queries: int = 0,
    stream: bool = False,
    max_tokens: int = 32,
    temperature: float = 0.0,
    timeout_s: float = 120.0,
    output_dir: str = "out",
) -> AuditConfig:
    """The test04 notebook's parameters validated into an AuditConfig.

    Raises NotebookStop (an InputError) with one line naming the bad parameter; the dataset
    and sample bounds are checked too (runner.prepare), so a bad value never reaches a phase.
    """
    from auditkit.runner import prepare  # runner pulls in the HTTP stack; import when used

    data: dict[str, Any] = {
        "endpoint": {
            "url": url,
            "api": api,
            "model": model,
            "api_key_env": api_key_env,
            "stream": stream,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "timeout_s": timeout_s,
        },
        "dataset": {"path": dataset, "prompt_column": prompt_column},
        "load": {
            "scenario": scenario,
            "max_concurrency": max_concurrency,
            "samples_per_query": samples_per_query,
            "target_qps": target_qps,
            "target_latency_ms": target_latency_ms,
        },
        "test04": {
            "samples": samples,
            "audit_samples": audit_samples,
            "sample_index": sample_index,
            "threshold": threshold,
            "seed": seed,
            "design": design,
            "warmup_queries": warmup_queries,
        },
        "mock": {"cache": mock_cache},
        "output_dir": str(resolve_output_dir(output_dir)),
    }
    try:
        cfg = AuditConfig.model_validate(data)
    except ValidationError as exc:
        raise NotebookStop(_parameter_error(exc)) from None
    try:
        prepare(cfg)
    except InputError as exc:
        raise NotebookStop(exc.one_line()) from None
    return cfg


# config fields whose notebook parameter has another name
_PARAM_NAMES: dict[tuple[str, ...], str] = {
    ("dataset", "path"): "dataset",
    ("mock", "cache"): "mock_cache",
}


def _parameter_error(exc: ValidationError) -> str:
    """Name the notebook parameter (not the config path) in the one-line message."""
    first = exc.errors()[0]
    loc = tuple(str(p) for p in first["loc"])
    name = _PARAM_NAMES.get((*loc, "", "")[:2]) or (
        loc[1] if len(loc) > 1 else ".".join(loc) or "(root)"
    )
    msg = str(first["msg"]).removeprefix("Value error, ")
    shown = repr(first.get("input"))
    # never echo what was typed into api_key_env: it may be the key itself
    if "input" in first and first["type"] != "missing" and name != "api_key_env":
        msg += "" if shown in msg else f" (got {shown})"
    return f"parameter {name}: {msg}"


def describe_config(cfg: AuditConfig) -> str:
    """One line saying what the notebook is about to do."""
    ep = cfg.endpoint
    where = ep.url or f"embedded mock (cache={cfg.mock.cache})"
    t4 = cfg.test04
    return (
        f"TEST04 against {where}, api {ep.api}, {cfg.load.scenario}, "
        f"{t4.samples} reference + {t4.effective_audit_samples} audit samples "
        f"(sample_index {t4.sample_index}), stream={ep.stream}; artifacts → "
        f"{Path(cfg.output_dir) / 'TEST04'}"
    )


# --- parameter coercion ------------------------------------------------------------------

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null", ""}


def _type_names(annotation: str) -> list[str]:
    """'int | None' / 'Optional[int]' / 'Union[int, str]' → ['int', 'None']."""
    text = annotation.replace(" ", "")
    m = re.fullmatch(r"(?:typing\.)?Optional\[(.+)\]", text)
    if m:
        return [*_type_names(m.group(1)), "None"]
    m = re.fullmatch(r"(?:typing\.)?Union\[(.+)\]", text)
    if m:
        text = m.group(1).replace(",", "|")
    return [t for t in text.split("|") if t] or ["str"]


def coerce_value(name: str, raw: str, annotation: str) -> Any:
    """Convert a `-p name value` string to the parameter's annotated type (one-line InputError)."""
    kinds = _type_names(annotation or "str")
    low = raw.strip().lower()
    if "None" in kinds and low in _NONE:
        return None
    for kind in kinds:
        if kind == "bool":
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        elif kind == "int":
            try:
                return int(raw.strip())
            except ValueError:
                pass
        elif kind == "float":
            try:
                return float(raw.strip())
            except ValueError:
                pass
        elif kind == "str":
            return raw
    allowed = " or ".join(k for k in kinds)
    raise InputError(f"parameter {name}: expected {allowed}, got {raw!r}")


def notebook_parameters(path: str | Path) -> dict[str, dict[str, Any]]:
    """The notebook's parameters as papermill sees them: name → {default, type, help}."""
    import papermill

    info = papermill.inspect_notebook(str(path))
    out: dict[str, dict[str, Any]] = {}
    for name, p in info.items():
        try:
            default = ast.literal_eval(p["default"])
        except (ValueError, SyntaxError):
            default = p["default"]
        out[name] = {
            "default": default,
            "type": p.get("inferred_type_name") or "str",
            "help": p.get("help") or "",
        }
    return out


def resolve_parameters(
    declared: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Check names against the notebook and coerce string values; InputError on the first bad
    one (papermill itself would only warn about an unknown name)."""
    for name in given:
        # before the unknown-name check, and without echoing the value: papermill writes every
        # parameter into the output notebook, so a key passed here would be on disk
        if SECRET_PARAMETER.search(name) and not name.endswith("_env"):
            raise InputError(
                f"parameter {name}: secrets are never notebook parameters (papermill writes "
                "parameters into the output notebook); export the key in an environment "
                "variable and pass its NAME with -p api_key_env NAME"
            )
    unknown = [n for n in given if n not in declared]
    if unknown:
        raise InputError(
            f"unknown parameter {unknown[0]!r} for this notebook; known: {', '.join(declared)}"
        )
    out: dict[str, Any] = {}
    for name, value in given.items():
        out[name] = (
            coerce_value(name, value, str(declared[name]["type"]))
            if isinstance(value, str)
            else value
        )
    return out


# --- the runner -------------------------------------------------------------------------


@dataclass
class NotebookOutcome:
    """What `auditkit notebook` did: exit code, verdict and the files it wrote."""

    exit_code: int
    message: str
    notebook: Path | None = None
    html: Path | None = None
    result_file: Path | None = None
    verdict: str | None = None
    seconds: float = 0.0


def _verdict_exit(verdict: str) -> int:
    from auditkit.runner import verdict_exit_code  # the one mapping; runner imports HTTP

    return verdict_exit_code(verdict)


def export_html(notebook: Path, target: Path) -> Path:
    """Self-contained HTML of an executed notebook: images inline, no CDN scripts.

    Widget state is dropped (tqdm bars keep their text fallback) because rendering widgets
    needs the widget manager from a CDN; MathJax/require.js URLs are blanked for the same
    reason. A remaining remote src/href is an error, not a silent dependency.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    exporter.mathjax_url = ""
    exporter.require_js_url = ""
    exporter.widget_renderer_url = ""
    exporter.mermaid_js_url = ""
    exporter.mermaid_layout_elk_js_url = ""
    body, _ = exporter.from_notebook_node(nb)
    # the template still emits loaders (MathJax, require.js, mermaid) pointing at CDNs or at
    # nothing; the report needs no script, so drop those blocks
    body = SCRIPT_BLOCK.sub(
        lambda m: "" if ("http" in m.group(0) or 'src=""' in m.group(0)) else m.group(0), body
    )
    match = REMOTE_PATTERN.search(body)
    if match:
        snippet = body[match.start() : match.start() + 80]
        raise AuditkitError(
            f"HTML export still references a remote resource (no CDN allowed): {snippet!r}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    return target


def run_notebook(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    out_dir: str | Path = "out",
    html: bool = False,
    cell_timeout_s: int = DEFAULT_CELL_TIMEOUT_S,
    log: Any = None,
) -> NotebookOutcome:
    """Run notebooks/<name>.ipynb with papermill and map its verdict to an exit code.

    Exit codes: 0 PASS, 1 FAIL, 2 unknown/invalid parameter (nothing executed),
    4 INVALID verdict, crashed notebook, or no verdict written.
    """
    say = log or (lambda _m: None)
    started = time.monotonic()
    if name not in NOTEBOOKS:
        raise InputError(f"unknown notebook {name!r}; available: {', '.join(NOTEBOOKS)}")
    source = NOTEBOOK_DIR / NOTEBOOKS[name]
    declared = notebook_parameters(source)
    values = resolve_parameters(declared, dict(params or {}))
    out = Path(out_dir).expanduser().resolve()
    # artifacts default to the runner's output folder, as an absolute path, so the kernel's
    # working directory cannot move them
    values.setdefault("output_dir", str(out))
    values["output_dir"] = str(Path(values["output_dir"]).expanduser().resolve())
    merged = {k: v["default"] for k, v in declared.items()} | values
    test04_config(**merged)  # raises NotebookStop/InputError → exit 2, before any kernel
    result_file = Path(merged["output_dir"]) / "TEST04" / "audit_result.json"
    if result_file.exists():  # never report a previous run's verdict if this one dies early
        result_file.unlink()
    executed = out / f"{name}.ipynb"
    out.mkdir(parents=True, exist_ok=True)
    say(f"running {source} → {executed}")
    outcome = _execute(source, executed, values, cell_timeout_s)
    outcome.notebook = executed
    if outcome.exit_code == EXIT_PASS:  # executed cleanly: the verdict decides
        if not result_file.exists():
            outcome.exit_code = EXIT_EXECUTION
            outcome.message = f"notebook finished but wrote no verdict ({result_file} missing)"
        else:
            verdict = str(json.loads(result_file.read_text(encoding="utf-8"))["verdict"])
            outcome.verdict = verdict
            outcome.result_file = result_file
            outcome.exit_code = _verdict_exit(verdict)
            outcome.message = f"TEST04 {verdict}"
    if html and executed.exists():
        outcome.html = export_html(executed, executed.with_suffix(".html"))
    outcome.seconds = time.monotonic() - started
    return outcome


def _execute(
    source: Path, executed: Path, values: Mapping[str, Any], cell_timeout_s: int
) -> NotebookOutcome:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            str(source),
            str(executed),
            parameters=dict(values),
            kernel_name="python3",
            execution_timeout=cell_timeout_s,
            progress_bar=False,
            cwd=os.getcwd(),
        )
    except PapermillExecutionError as exc:
        if exc.ename == "NotebookStop":  # the notebook's own parameter check
            return NotebookOutcome(EXIT_INPUT, f"{exc.evalue}")
        evalue = " ".join(str(exc.evalue).split())[:300]
        return NotebookOutcome(
            EXIT_EXECUTION,
            f"notebook crashed in cell {exc.exec_count}: {exc.ename}: {evalue} (see {executed})",
        )
    except Exception as exc:  # kernel died, timeout, …: still an execution error
        text = " ".join(str(exc).split())[:300]
        return NotebookOutcome(EXIT_EXECUTION, f"notebook failed: {type(exc).__name__}: {text}")
    return NotebookOutcome(EXIT_PASS, "executed")


def parse_param_pairs(pairs: list[list[str]] | None) -> dict[str, str]:
    """argparse's `-p NAME VALUE` pairs → dict (the last occurrence wins)."""
    return {name: value for name, value in pairs or []}
