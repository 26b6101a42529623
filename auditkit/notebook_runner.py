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
import contextlib
import difflib
import functools
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from auditkit import artifacts
from auditkit.audits import AuditTest, config_model, get_test
from auditkit.config import SECRET_HEADER, AuditConfig
from auditkit.errors import (
    EXIT_EXECUTION,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_SETUP,
    AuditkitError,
    InputError,
)
from auditkit.options import Option, audit_options, to_overrides
from auditkit.resources import notebook, notebook_names, notebooks_dir

#: the notebook that runs any audit without a notebook of its own (parameters: test, settings)
GENERIC_NOTEBOOK = "audit.ipynb"
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


def parameter_values(test: AuditTest, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The audit's parameters found in a notebook's namespace (e.g. `globals()`)."""
    names = {o.param for o in audit_options(test.key, test.settings_model)}
    return {name: namespace[name] for name in names if name in namespace}


def audit_config(
    test_name: str, namespace: Mapping[str, Any] | None = None, **params: Any
) -> AuditConfig:
    """An audit notebook's parameters validated into the run config.

    `namespace` (a notebook passes `globals()`) supplies every parameter it defines; keyword
    arguments override it. Raises NotebookStop (an InputError) with one line naming the bad
    parameter; the dataset and sample bounds are checked too (runner.prepare), so a bad value
    never reaches a phase.
    """
    from auditkit.runner import prepare  # runner pulls in the HTTP stack; import when used

    test = get_test(test_name)
    options = audit_options(test.key, test.settings_model)
    values = {**(parameter_values(test, namespace) if namespace else {}), **params}
    known = {o.param for o in options}
    unknown = [name for name in values if name not in known]
    if unknown:
        raise NotebookStop(_unknown_message(unknown[0], sorted(known), test.key))
    if "output_dir" in values:
        values["output_dir"] = str(resolve_output_dir(values["output_dir"]))
    try:
        cfg = config_model().model_validate(to_overrides(options, values))
    except ValidationError as exc:
        raise NotebookStop(_parameter_error(exc, options)) from None
    try:
        prepare(cfg, test.key)
        if not cfg.overwrite:
            # without overwrite this only checks (nothing is removed): a stop here, not after
            # the phases, when output_dir already holds a run
            artifacts.claim_output_dir(cfg.output_dir, test)
    except InputError as exc:
        raise NotebookStop(exc.one_line()) from None
    return cfg


def _unknown_message(name: str, known: list[str], where: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown parameter {name!r} for {where}{hint} (known: {', '.join(known)})"


def _parameter_error(exc: ValidationError, options: list[Option]) -> str:
    """Name the notebook parameter (not the config path) and the value given, in one line;
    the value typed into api_key_env is never echoed (it may be the key itself)."""
    first = exc.errors()[0]
    path = ".".join(str(p) for p in first["loc"])
    name = next((o.param for o in options if ".".join(o.path) == path), path or "(root)")
    message = str(first["msg"]).removeprefix("Value error, ")
    shown = repr(first.get("input"))
    if "input" in first and first["type"] != "missing" and name != "api_key_env":
        message += "" if shown in message else f" (got {shown})"
    return f"parameter {name}: {message}"


def describe_config(cfg: AuditConfig, test_name: str) -> str:
    """One line saying what the notebook is about to do."""
    test = get_test(test_name)
    return f"{test.describe(cfg)}; artifacts → {Path(cfg.output_dir) / test.id}"


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
        elif kind == "dict":
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            if isinstance(value, dict):
                return value
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


SECRET_MESSAGE = (
    "secrets are never notebook parameters (papermill writes parameters into the output "
    "notebook and its HTML); export the key in an environment variable and pass its NAME "
    "with --api-key-env NAME / -p api_key_env NAME"
)


@functools.cache
def _option_names() -> frozenset[str]:
    """Every audit's and the suite's parameter names: `max_tokens` or `mock_fake_first_token`
    contain "token" but are settings, not credentials."""
    from auditkit.audits import REGISTRY
    from auditkit.options import model_options

    names: set[str] = set()
    for key, test in REGISTRY.items():
        names.update(o.param for o in audit_options(key, test.settings_model))
        names.update(o.param for o in model_options(test.settings_model, (key,), f"{key}_", key))
    return frozenset(names)


def _secret_path(name: str, value: Any, path: str) -> str | None:
    """The dotted path of the first credential-named key inside `value` (None if none).

    A `-p` value is still text here: a JSON object or list is parsed to look inside it (the
    suite's `settings`, an audit's `headers`). Keys inside a `*headers` mapping are header
    names and are checked like `--header` (config.SECRET_HEADER)."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            value = json.loads(value)
        except ValueError:
            return None  # not JSON: the type check that follows rejects it
    if isinstance(value, Mapping):
        headers = name.lower().endswith("headers")
        for key, inner in value.items():
            where = f"{path}.{key}"
            if headers and SECRET_HEADER.search(str(key)):
                return where
            if _secret_name(str(key)):
                return where
            found = _secret_path(str(key), inner, where)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, inner in enumerate(value):
            found = _secret_path(name, inner, f"{path}[{i}]")
            if found:
                return found
    return None


def _secret_name(name: str) -> bool:
    return (
        bool(SECRET_PARAMETER.search(name))
        and not name.endswith("_env")
        and name not in _option_names()
    )


def _refuse_secrets(given: Mapping[str, Any]) -> None:
    """InputError (exit 2) if a parameter, or a key anywhere inside a dict/list parameter, is
    named like a credential. Checked before the unknown-name check, and the value is never
    echoed: papermill writes every parameter into the output notebook, so a key passed here
    would be on disk."""
    for name, value in given.items():
        where = name if _secret_name(name) else _secret_path(name, value, name)
        if where:
            raise InputError(f"parameter {where}: {SECRET_MESSAGE}")


def resolve_parameters(
    declared: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Check names against the notebook and coerce string values; InputError on the first bad
    one (papermill itself would only warn about an unknown name)."""
    _refuse_secrets(given)
    unknown = [n for n in given if n not in declared]
    if unknown:
        raise InputError(_unknown_message(unknown[0], sorted(declared), "this notebook"))
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


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """Which file version is at `path` (inode, mtime, size); None if there is none."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _suite_outcome(
    outcome: NotebookOutcome, output_dir: Path, earlier: tuple[int, int, int] | None = None
) -> None:
    """The suite notebook's combined verdict (suite_result.json) as the exit code."""
    from auditkit.suite import read_suite_result, suite_result_path  # imports the runner

    path = suite_result_path(output_dir)
    saved = read_suite_result(output_dir)
    if saved is None or (earlier is not None and _stamp(path) == earlier):
        outcome.exit_code = EXIT_EXECUTION
        outcome.message = f"notebook finished but wrote no verdict ({path} missing)"
        return
    # not `result_file`: that names one audit's audit_result.json
    outcome.exit_code, outcome.verdict = saved
    outcome.message = f"suite {outcome.verdict} (exit {outcome.exit_code}; {path})"


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
        # a widget's text fallback is its state when first shown (a tqdm bar at "0%"): stale
        # by construction, so the output goes; the log lines beside it carry the final counts
        cell["outputs"] = [
            o
            for o in cell.get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})
        ]
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


@dataclass(frozen=True)
class NotebookChoice:
    """Which notebook `auditkit notebook NAME` runs, and for which audit (if any)."""

    source: Path
    test: AuditTest | None
    generic: bool = False


def choose_notebook(name: str) -> NotebookChoice:
    """An audit's key runs its own notebook (or the generic audit notebook); any other name is
    a shipped notebook (review_results, investigate_caching). InputError with a suggestion."""
    from auditkit.audits import REGISTRY

    if name.lower() in REGISTRY:
        test = get_test(name)
        if test.notebook:
            return NotebookChoice(notebook(test.notebook), test)
        return NotebookChoice(notebook(GENERIC_NOTEBOOK), test, generic=True)
    shipped = [n for n in notebook_names() if n != Path(GENERIC_NOTEBOOK).stem]
    if name in shipped:
        return NotebookChoice(notebook(f"{name}.ipynb"), None)
    known = sorted({*REGISTRY, *shipped})
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise InputError(f"unknown notebook {name!r}{hint} (available: {', '.join(known)})")


def _generic_values(test: AuditTest, given: Mapping[str, Any]) -> dict[str, Any]:
    """`-p` values for an audit without its own notebook: checked against the audit's options
    and handed to the generic notebook as its `settings` parameter."""
    options = {o.param: o for o in audit_options(test.key, test.settings_model)}
    settings: dict[str, Any] = {}
    for name, value in given.items():
        option = options.get(name)
        if option is None:
            raise InputError(_unknown_message(name, sorted(options), test.key))
        settings[name] = option.parse(value) if isinstance(value, str) else value
    return settings


#: notebooks whose path parameters name finished runs: checked (and made absolute, from the
#: caller's working directory) before a kernel starts, so a typo is exit 2 in a second
RUN_PATH_PARAMETERS = {"review_results": ("results_dir", "compare_with")}


def _check_paths(
    stem: str, declared: Mapping[str, Mapping[str, Any]], values: dict[str, Any]
) -> dict[str, Any]:
    names = RUN_PATH_PARAMETERS.get(stem, ())
    if not names or values.get("demo"):
        return values
    from auditkit.review import locate  # review imports this module

    out = dict(values)
    for name in names:
        path = out.get(name, declared.get(name, {}).get("default"))
        if path:
            out[name] = str(locate(path))
    return out


def run_notebook(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    out_dir: str | Path = "out",
    html: bool = False,
    cell_timeout_s: int = DEFAULT_CELL_TIMEOUT_S,
    log: Any = None,
) -> NotebookOutcome:
    """Run a shipped notebook with papermill and map its verdict to an exit code.

    Exit codes: 0 PASS (or a non-audit notebook that ran cleanly), 1 FAIL, 2 unknown/invalid
    parameter (nothing executed), 4 INVALID verdict, crashed notebook, or no verdict written;
    the suite notebook: the suite's combined code (suite_result.json; 5 INCONCLUSIVE).
    """
    say = log or (lambda _m: None)
    started = time.monotonic()
    choice = choose_notebook(name)
    given = dict(params or {})
    _refuse_secrets(given)
    out = Path(out_dir).expanduser().resolve()
    test = choice.test
    if choice.generic and test is not None:
        settings = _generic_values(test, given)
        output_dir = str(resolve_output_dir(settings.pop("output_dir", out)))
        values: dict[str, Any] = {"test": test.key, "settings": settings, "output_dir": output_dir}
        audit_config(test.key, **settings, output_dir=output_dir)  # exit 2 before any kernel
    else:
        declared = notebook_parameters(choice.source)
        values = resolve_parameters(declared, given)
        if test is None:
            values = _check_paths(choice.source.stem, declared, values)
        if test is not None:
            # artifacts default to the runner's output folder, as an absolute path, so the
            # kernel's working directory cannot move them
            values.setdefault("output_dir", str(out))
            values["output_dir"] = str(Path(values["output_dir"]).expanduser().resolve())
            merged = {k: v["default"] for k, v in declared.items()} | values
            audit_config(test.key, merged)  # raises NotebookStop/InputError → exit 2
        if choice.source.stem == "suite":
            # as for an audit: an absolute folder, and the runner reads the suite's verdict there
            values["output_dir"] = str(Path(values.get("output_dir", out)).expanduser().resolve())
            from auditkit.suite import check_notebook_parameters  # imports the runner

            check_notebook_parameters(values)  # exit 2 before any kernel
        output_dir = str(values.get("output_dir", out))
    result_file = Path(output_dir) / test.id / "audit_result.json" if test else None
    # never report a previous run's verdict if this one dies early, yet keep that run whole
    # (a dead endpoint must not cost it its verdict): a verdict file unchanged since now is
    # not this run's
    earlier = _stamp(result_file) if result_file is not None else None
    earlier_suite = _stamp(Path(output_dir) / "suite_result.json")
    stem = test.key if test is not None else name
    executed = out / f"{stem}.ipynb"
    out.mkdir(parents=True, exist_ok=True)
    say(f"running {choice.source.name} → {executed}")
    outcome = _execute(choice.source, executed, values, cell_timeout_s)
    outcome.notebook = executed
    if outcome.exit_code == EXIT_PASS and result_file is not None and test is not None:
        if not result_file.exists() or _stamp(result_file) == earlier:
            outcome.exit_code = EXIT_EXECUTION
            outcome.message = f"notebook finished but wrote no verdict ({result_file} missing)"
        else:
            saved = json.loads(result_file.read_text(encoding="utf-8"))
            verdict = str(saved["verdict"])
            if values.get("decision", values.get("settings", {}).get("decision")) == "upstream":
                verdict = str(saved.get("upstream_verdict") or verdict)
            outcome.verdict = verdict
            outcome.result_file = result_file
            outcome.exit_code = _verdict_exit(verdict)
            outcome.message = f"{test.id} {verdict}"
    if outcome.exit_code == EXIT_PASS and choice.source.stem == "suite":
        _suite_outcome(outcome, Path(output_dir), earlier_suite)
    if html and executed.exists():
        outcome.html = export_html(executed, executed.with_suffix(".html"))
    outcome.seconds = time.monotonic() - started
    return outcome


def kernel_manager_class(log_file: Path | None = None) -> type:
    """The kernel manager the runner uses: jupyter_client's async manager over IPC (unix
    sockets, protected by file permissions) instead of TCP, so ipykernel has no reason to warn
    "Kernel is running over TCP without encryption"; the kernel's own stderr (its log, e.g. the
    ZMQ errors of a kernel stopped by Ctrl-C mid-cell) goes to `log_file` instead of the
    terminal. Cell output still reaches the notebook (it travels over the kernel's sockets)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum

    class QuietKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            if log_file is not None:
                log_file.parent.mkdir(parents=True, exist_ok=True)
                with log_file.open("ab") as sink:  # Popen dups the descriptor
                    kw.setdefault("stderr", sink)
                    await super().start_kernel(**kw)
            else:
                await super().start_kernel(**kw)

    return QuietKernelManager


def _execute(
    source: Path, executed: Path, values: Mapping[str, Any], cell_timeout_s: int
) -> NotebookOutcome:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    log_file = executed.with_suffix(".kernel.log")
    with contextlib.suppress(FileNotFoundError):
        log_file.unlink()
    try:
        papermill.execute_notebook(
            str(source),
            str(executed),
            parameters=dict(values),
            kernel_name="python3",
            execution_timeout=cell_timeout_s,
            progress_bar=False,
            cwd=os.getcwd(),
            kernel_manager_class=kernel_manager_class(log_file),
        )
    except KeyboardInterrupt:
        # Ctrl-C stops the kernel with the run; the half-finished tasks it leaves would be
        # logged at exit as tracebacks ("Kernel died", "Task exception was never retrieved")
        # that add nothing to the CLI's one line
        for name in ("asyncio", "traitlets", "papermill", "nbclient"):
            logging.getLogger(name).disabled = True
        raise
    except PapermillExecutionError as exc:
        if exc.ename == "NotebookStop":  # the notebook's own parameter check
            return NotebookOutcome(EXIT_INPUT, f"{exc.evalue}")
        # the run's own errors keep their documented exit codes inside a kernel too
        codes = {"SetupError": EXIT_SETUP, "Interrupted": EXIT_INTERRUPTED}
        if exc.ename in codes:
            return NotebookOutcome(codes[exc.ename], " ".join(str(exc.evalue).split())[:300])
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
