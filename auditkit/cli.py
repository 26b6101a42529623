"""The `auditkit` command: run audits, serve the mock, run notebooks, verify LoadGen logs.

Exit codes: 0 PASS, 1 FAIL, 2 bad input, 3 setup error, 4 execution error or INVALID,
5 INCONCLUSIVE, 130 interrupted (the verdict is auditkit's decision; --decision upstream makes
it the upstream rule's). A user's mistake prints one line on stderr, never a traceback.

The flags of `run` and `verify` are not typed here: they are the config fields
(`auditkit.options`), the shared sections plus the named audit's own block, so the CLI, the YAML
and the notebooks cannot drift apart. `auditkit run TEST --help` lists them all.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

from auditkit import __version__
from auditkit.audits import REGISTRY, get_test, load_config
from auditkit.config import MockConfig
from auditkit.errors import (
    EXIT_EXECUTION,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    AuditkitError,
    InputError,
    did_you_mean,
)
from auditkit.options import (
    audit_options,
    common_options,
    model_options,
    option_values,
    to_overrides,
)
from auditkit.startup import load_plugins_once, skip_slow_iri_format_checker

# A command imports what only it needs when it runs (the HTTP client, papermill, the entry
# modules below this one): `auditkit mock` serves from this very process, and a measured mock
# must not carry the client's modules and heap (with them loaded, tests/test_cli.py's keyed run
# measured its first phase at 84 samples/s against 193 for the second: a false FAIL).

EPILOG = (
    "exit codes: 0 PASS, 1 FAIL, 2 bad input, 3 setup error, "
    "4 execution error/INVALID, 5 INCONCLUSIVE, 130 interrupted"
)
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (.*)")
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and exit code 2), with a suggestion
    for a mistyped flag. No abbreviations: an audit's new flag must not change what an
    abbreviation in someone's script means."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        #: every --flag of the CLI (build_parser fills it): suggestions for a mistyped one
        self.known_flags: list[str] = []

    def error(self, message: str) -> NoReturn:
        match = _UNRECOGNIZED.match(message)
        if match:
            for word in match.group(1).split():
                flag = word.split("=", 1)[0]
                hint = did_you_mean(flag, self.known_flags)
                if flag.startswith("--") and hint:
                    message += hint
                    break
        choice = _INVALID_CHOICE.search(message)
        if choice:  # a mistyped command or choice value
            options = [c.strip(" '") for c in choice.group(2).split(",")]
            message += did_you_mean(choice.group(1), options)
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _peek_test(argv: Sequence[str]) -> str | None:
    """The audit named after `run`/`verify` (its flags are added to the parser)."""
    if len(argv) >= 2 and argv[0] in ("run", "verify") and not argv[1].startswith("-"):
        return argv[1]
    return None


def _arg(known: list[str], container: Any, *names: str, **kwargs: Any) -> None:
    """container.add_argument, remembering the flag names for suggestions."""
    known.extend(n for n in names if n.startswith("--"))
    container.add_argument(*names, **kwargs)


def _add_option(group: Any, option: Any, known: list[str]) -> None:
    """One config option as an argparse flag (values are parsed by the option itself)."""
    help_ = option.help + f" (default: {option.describe_default()})"
    kwargs: dict[str, Any]
    if option.key_value:
        kwargs = {"action": "append", "metavar": "NAME=VALUE"}
        help_ = option.help + " (default: none)"
    elif option.invert:
        kwargs = {"action": "store_const", "const": False, "default": None}
        help_ = option.help
    elif option.kind == "bool":
        kwargs = {"action": argparse.BooleanOptionalAction, "default": None}
    else:
        choices = option.choices if option.kind == "choice" and not option.accepts_int else None
        metavar = "JSON" if option.kind == "mapping" else None
        if option.param == "api_key_env":
            metavar = "NAME"
        kwargs = {"choices": choices, "metavar": metavar}
    _arg(known, group, option.flag, dest=option.param, help=help_, **kwargs)


def _add_options(
    parser: argparse.ArgumentParser, options: Sequence[Any], title: str, known: list[str]
) -> None:
    groups: dict[str, Any] = {}
    for option in options:
        if option.group not in groups:
            label = f"{option.group} ({title})" if option.group == title.lower() else option.group
            groups[option.group] = parser.add_argument_group(label)
        _add_option(groups[option.group], option, known)


def _verify_options(test: Any) -> list[Any]:
    """The audit's settings `verify` offers: only those that mean something for files."""
    options = model_options(test.settings_model, (test.key,), "", test.key)
    return [o for o in options if o.path[-1] in test.verify_fields]


def build_parser(test_name: str | None = None) -> argparse.ArgumentParser:
    """The full CLI; `test_name` adds that audit's flags to `run` and `verify`."""
    suite = test_name == "suite"  # `auditkit run suite`: auditkit.suite's flags
    test = get_test(test_name) if test_name and not suite else None
    known: list[str] = []
    tests = "; ".join(f"{t.key}: {t.summary or t.title}" for t in REGISTRY.values())
    parser = OneLineParser(
        prog="auditkit",
        description="Audit an HTTP inference endpoint the way MLPerf audits it.",
        epilog=EPILOG,
    )
    _arg(known, parser, "--version", action="version", version=f"auditkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = sub.add_parser(
        "run",
        help="run an audit test against an endpoint (or the embedded mock)",
        description="Run an audit: its phases, the verdict, the artifacts. Every config field "
        f"is a flag; `auditkit run TEST --help` lists the audit's own. Tests: {tests}.",
        epilog=EPILOG + "\nexample: auditkit run test04 --url http://127.0.0.1:8000 --samples 64",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arg(known, run, "test", help=f"audit test ({', '.join(sorted(REGISTRY))})")
    _arg(known, run, "--config", help="audit YAML; flags override it (default: none)")
    _arg(known, run, "--json", action="store_true", help="print audit_result.json to stdout")
    _arg(known, run, "--quiet", action="store_true", help="no progress bars (only the result)")
    _arg(known, run,
        "--verbose", action="store_true",
        help="also log each phase as it starts and ends (seeds, sample order, salt, score)",
    )  # fmt: skip
    options = audit_options(test.key, test.settings_model) if test else common_options()
    if suite:
        from auditkit.suite import suite_options

        options = suite_options()
        _arg(known, run, "--tests", help="comma-separated audits of the suite (default: all)")
        _arg(known, run,
            "--mlperf-model", dest="mlperf_model", metavar="MODEL",
            help="run only the audits, with the thresholds, that the MLPerf v6.1 submission "
            "checker requires of MODEL over the endpoints path (gpt-oss-120b, llama3.1-8b, "
            "deepseek-r1, wan-2.2-t2v-a14b, ...; default: every audit)",
        )  # fmt: skip
    _add_options(run, options, test.id if test else "", known)

    mock = sub.add_parser(
        "mock",
        help="serve the embedded mock OpenAI-compatible endpoint",
        description="Serve the mock SUT on 127.0.0.1 until Ctrl-C. Its flags are the mock: "
        "section of the config.",
    )
    _arg(known, mock, "--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    _arg(known, mock, "--port", type=int, default=8000, help="port (default: 8000)")
    _arg(known, mock,
        "--config", help="YAML with a mock: section (faults, latency model) (default: none)",
    )  # fmt: skip
    _arg(known, mock,
        "--require-key-env", dest="require_key_env", metavar="NAME",
        help="answer HTTP 401 unless requests carry the key held in environment variable NAME "
        "(rehearse the key path; default: no key needed)",
    )  # fmt: skip
    _add_options(mock, model_options(MockConfig, ("mock",), "", "mock"), "mock", known)

    usage = "\n".join(
        f"  auditkit verify {t.key} "
        + " ".join(f"--{n.replace('_', '-')} PATH" for n in t.log_inputs)
        for t in REGISTRY.values()
        if t.log_inputs
    )
    verify = sub.add_parser(
        "verify",
        help="re-verify LoadGen files (summaries, detail and accuracy logs) with an audit's rule",
        description="Read the LoadGen files an audit judges (written by LoadGen or auditkit), "
        "print and write the verdict upstream's rule gives, auditkit's beside it. "
        "`auditkit verify TEST --help` explains each input.",
        epilog=EPILOG + "\nhow to call each audit:\n" + usage,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arg(known, verify, "test", help="audit test id")
    if test is not None:
        logs = verify.add_argument_group("LoadGen files")
        for name in test.log_inputs:
            _arg(known, logs,
                f"--{name.replace('_', '-')}", dest=f"log_{name}", required=True, metavar="PATH",
                help=test.log_help.get(name, f"the {name} run's mlperf_log_summary.txt"),
            )  # fmt: skip
        _add_options(verify, _verify_options(test), "", known)
    _arg(known, verify,
        "--output-dir", dest="output_dir",
        help="also write the verdict files to <dir>/<TEST>/ (default: only print)",
    )  # fmt: skip
    _arg(known, verify,
        "--overwrite", action="store_true",
        help="replace an earlier run of the audit in --output-dir (default: refuse)",
    )  # fmt: skip
    _arg(known, verify, "--json", action="store_true", help="print audit_result.json to stdout")

    nb = sub.add_parser(
        "notebook",
        help="run a parameterized notebook (papermill) and exit with its verdict",
        description="Execute a shipped notebook headless (an audit's key runs its notebook); "
        "write <output-dir>/<name>.ipynb (and .html) plus the audit artifacts.",
        epilog=EPILOG + "\nexample: auditkit notebook test04 -p samples 64 -p mock_cache output",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arg(known, nb, "name", help="an audit (e.g. test04) or a notebook (e.g. review_results)")
    _arg(known, nb,
        "-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), dest="params",
        help="set a notebook parameter (repeatable; typed by the notebook's annotations; "
        "default: the notebook's own values)",
    )  # fmt: skip
    _arg(known, nb, "--html", action="store_true", help="also export a self-contained HTML report")
    _arg(
        known,
        nb,
        "--output-dir",
        dest="output_dir",
        default="auditkit-out",
        help="where outputs go (default: auditkit-out, as for auditkit run)",
    )
    _arg(known, nb,
        "--cell-timeout", dest="cell_timeout", type=int, default=600,
        help="per-cell timeout in seconds (default: 600)",
    )  # fmt: skip
    compare = sub.add_parser(
        "compare",
        help="show two finished runs side by side",
        description="Read two runs' artifacts (an output_dir or its <TEST> folder each) and "
        "print their verdicts, scores, per-phase latency/TTFT/token rates and the settings "
        "that differ.",
        epilog="example: auditkit compare out/before out/after",
    )
    _arg(known, compare, "run_a", metavar="RUN_A", help="the first run's folder")
    _arg(known, compare, "run_b", metavar="RUN_B", help="the second run's folder")
    parser.known_flags = known
    return parser


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags → a nested override dict for the config (only flags the user gave)."""
    test = get_test(args.test)
    options = audit_options(test.key, test.settings_model)
    return to_overrides(options, option_values(args, options))


def _reporting(args: argparse.Namespace) -> dict[str, Any]:
    """`run`'s progress and log (on stderr): by default one transient bar for the running
    phase; --verbose keeps the bars and logs each phase; --quiet shows neither."""
    from auditkit.progress import tqdm_progress

    def log(msg: str) -> None:
        if args.verbose and not args.quiet:
            print(wrap(msg), file=sys.stderr, flush=True)

    progress = tqdm_progress(enabled=False if args.quiet else None, leave=args.verbose)
    return {"progress": progress, "log": log}


#: the widest line the CLI prints (a longer one wraps, its continuation indented)
WIDTH = 100


def wrap(line: str, indent: str = "") -> str:
    """`line` wrapped to WIDTH columns (continuations indented 4 more)."""
    from textwrap import fill

    return fill(
        line,
        WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + "    ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def say(line: str, indent: str = "") -> None:
    """Print `line` on stdout, wrapped to WIDTH columns."""
    print(wrap(line, indent))


def cmd_run(args: argparse.Namespace) -> int:
    from textwrap import indent

    from auditkit.display import next_step, phase_table_text
    from auditkit.runner import run_audit

    if args.test == "suite":
        return cmd_suite(args)
    test = get_test(args.test)
    cfg = load_config(args.config, run_overrides(args))
    run = run_audit(cfg, test.key, **_reporting(args))
    r = run.result
    if args.json:
        print(r.model_dump_json(indent=2))
    else:
        say(f"{r.test} {r.verdict}: {r.reason.removeprefix(r.verdict + ': ')}")
        if cfg.decision == "upstream" and r.upstream_verdict is not None:
            say(
                f"exit code follows upstream's rule (--decision upstream): {r.upstream_verdict}",
                "  ",
            )
        say(f"next: {next_step(r)}", "  ")
        for line in test.summary_lines(r):
            say(line, "  ")
        say(f"artifacts: {run.folder}", "  ")
        print(indent(phase_table_text(run.phases), "  "))
    if r.verdict == "INVALID":
        # exit 4 like any ExecutionError: one line on stderr that names the failure
        print(
            f"auditkit: error: {r.test} INVALID: {r.reason.removeprefix('INVALID: ')} "
            f"(records kept in {run.folder})",
            file=sys.stderr,
        )
    return run.exit_code


def cmd_suite(args: argparse.Namespace) -> int:
    """`auditkit run suite`: flags → config, run, print the table, exit with the combined code."""
    from auditkit.suite import parse_tests, run_suite, suite_options, suite_summary

    options = suite_options()
    cfg = load_config(args.config, to_overrides(options, option_values(args, options)))
    tests = parse_tests(args.tests)
    run = run_suite(cfg, tests, mlperf_model=args.mlperf_model, **_reporting(args))
    if args.json:
        print(json.dumps(suite_summary(run), indent=2))
    else:
        if run.mlperf_model:
            print(f"audits the MLPerf v6.1 submission checker requires of {run.mlperf_model}")
        print(run.table())
        say(f"artifacts: {cfg.output_dir}/<TEST>/ and {cfg.output_dir}/audit/")
    return run.exit_code


def cmd_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from auditkit import artifacts
    from auditkit.config import validated
    from auditkit.preflight import check_output_dir
    from auditkit.runner import verdict_exit_code

    test = get_test(args.test)
    if not test.log_inputs:
        raise InputError(f"{test.key} cannot be verified from LoadGen logs")
    options = _verify_options(test)
    given = to_overrides(options, option_values(args, options)).get(test.key, {})
    settings = validated(test.settings_model, given, "flags")
    inputs = {
        name: test.read_log_input(name, getattr(args, f"log_{name}")) for name in test.log_inputs
    }
    result, files = test.verify_logs(inputs, settings)
    result = result.model_copy(update={"auditkit_version": __version__})
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(test.report_text(result), end="")
    if args.output_dir:
        artifacts.claim_output_dir(args.output_dir, test, overwrite=args.overwrite)
        folder = check_output_dir(artifacts.test_dir(Path(args.output_dir), test.id))
        artifacts.write_result(folder, result, test, extra_files=files)
        if not args.json:
            print(f"  artifacts: {folder}")
    return verdict_exit_code(result.verdict)


def cmd_mock(args: argparse.Namespace) -> int:
    from auditkit.config import deep_merge, load_yaml, validated
    from auditkit.mock import serve_forever

    data = load_yaml(args.config).get("mock", {}) if args.config else {}
    options = model_options(MockConfig, ("mock",), "", "mock")
    data = deep_merge(data, to_overrides(options, option_values(args, options)).get("mock", {}))
    cfg = validated(MockConfig, data, "mock config")

    def ready(url: str) -> None:
        # after the bind, so --port 0 shows the port it got
        key = f", key from ${args.require_key_env} required" if args.require_key_env else ""
        print(f"auditkit mock on {url} (cache={cfg.cache}{key}); Ctrl-C stops", flush=True)

    api_key = None
    if args.require_key_env:
        api_key = os.environ.get(args.require_key_env)
        if not api_key:
            raise InputError(
                f"--require-key-env {args.require_key_env}: that variable is not set; export "
                f"{args.require_key_env}=<some key> first"
            )
    serve_forever(cfg, args.host, args.port, on_ready=ready, api_key=api_key)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from auditkit.compare import compare_text
    from auditkit.review import load_run

    fix = "give RUN_A and RUN_B as a run's --output-dir or its <output-dir>/<TEST> folder"
    print(compare_text(load_run(args.run_a, fix), load_run(args.run_b, fix)))
    return 0


def cmd_notebook(args: argparse.Namespace) -> int:
    from auditkit.audits import result_from_json
    from auditkit.notebook_runner import run_notebook

    skip_slow_iri_format_checker()  # this process loads papermill, hence nbformat

    outcome = run_notebook(
        args.name,
        parse_param_pairs(args.params),
        out_dir=args.output_dir,
        html=args.html,
        cell_timeout_s=args.cell_timeout,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    failed = outcome.exit_code != 0 and not outcome.verdict
    stream = sys.stderr if failed else sys.stdout
    prefix = "auditkit: error: " if failed else ""
    print(f"{prefix}{outcome.message} ({outcome.seconds:.1f} s)", file=stream)
    if outcome.result_file is not None and outcome.result_file.is_file():
        text = outcome.result_file.read_text(encoding="utf-8")
        result = result_from_json(text, outcome.result_file)
        print(wrap(result.reason.removeprefix(result.verdict + ": "), "  "), file=stream)
    for label, path in (
        ("notebook", outcome.notebook),
        ("html", outcome.html),
        ("verdict", outcome.result_file),
    ):
        if path is not None:
            print(f"  {label}: {path}", file=stream)
    return outcome.exit_code


def parse_param_pairs(pairs: list[list[str]] | None) -> dict[str, str]:
    """argparse's `-p NAME VALUE` pairs → dict (the last occurrence wins)."""
    return {name: value for name, value in pairs or []}


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


#: a shell's code for a process whose reader closed the pipe (128 + SIGPIPE)
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # SIGTERM stops a run like Ctrl-C does: records kept, no verdict
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        load_plugins_once()
        parser = build_parser(_peek_test(argv))
        args = parser.parse_args(argv)
        commands = {"run": cmd_run, "mock": cmd_mock, "verify": cmd_verify}
        commands |= {"notebook": cmd_notebook, "compare": cmd_compare}
        code = commands[args.command](args)  # argparse requires one of them
        # a closed pipe is met here, inside the handlers, not at the interpreter's exit
        sys.stdout.flush()
        return code
    except AuditkitError as exc:
        print(f"auditkit: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("auditkit: interrupted; no verdict written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader closed our stdout (`| head`): what was written stands; say nothing more,
        # and keep the interpreter's last flush from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug, not the user's mistake: still one line, still exit 4
        if os.environ.get("AUDITKIT_DEBUG"):
            raise
        text = " ".join(str(exc).split())[:300]
        print(
            f"auditkit: internal error: {type(exc).__name__}: {text} "
            "(set AUDITKIT_DEBUG=1 for the traceback and please report it)",
            file=sys.stderr,
        )
        return EXIT_EXECUTION


def entry() -> None:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
