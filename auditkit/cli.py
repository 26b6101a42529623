"""The `auditkit` command: run audits, serve the mock, run notebooks, verify LoadGen logs.

Exit codes: 0 PASS, 1 FAIL, 2 bad input, 3 setup error, 4 execution error or INVALID,
130 interrupted. A user's mistake prints one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

from auditkit import __version__
from auditkit.errors import (
    EXIT_EXECUTION,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    AuditkitError,
    InputError,
)

EPILOG = (
    "exit codes: 0 PASS, 1 FAIL, 2 bad input, 3 setup error, "
    "4 execution error/INVALID, 130 interrupted"
)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    ep = p.add_argument_group("endpoint")
    ep.add_argument("--url", help="SUT base URL, e.g. http://host:8000 (default: embedded mock)")
    ep.add_argument("--api", choices=["openai-completions", "openai-chat", "json"])
    ep.add_argument("--model", help="model name (default: first from GET /v1/models)")
    ep.add_argument("--max-tokens", type=int, dest="max_tokens")
    ep.add_argument("--temperature", type=float)
    ep.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None)
    ep.add_argument("--timeout", type=float, dest="timeout_s", help="per-request timeout (s)")
    ep.add_argument(
        "--api-key-env",
        dest="api_key_env",
        metavar="NAME",
        help="NAME of the environment variable holding the API key (keys are never flags)",
    )
    ep.add_argument(
        "--header", action="append", default=[], metavar="K=V", help="extra request header"
    )
    ep.add_argument(
        "--insecure", action="store_true", help="skip TLS verification (recorded in the verdict)"
    )
    ds = p.add_argument_group("dataset")
    ds.add_argument("--dataset", help="JSONL/CSV/Parquet file (default data/prompts.jsonl)")
    ds.add_argument("--prompt-column", dest="prompt_column")
    ld = p.add_argument_group("load")
    ld.add_argument("--scenario", choices=["offline", "single-stream", "multi-stream", "server"])
    ld.add_argument("--max-concurrency", type=int, dest="max_concurrency")
    ld.add_argument("--samples-per-query", type=int, dest="samples_per_query")
    ld.add_argument("--target-qps", type=float, dest="target_qps")
    ld.add_argument("--target-latency-ms", type=float, dest="target_latency_ms")
    ld.add_argument(
        "--min-duration", type=float, dest="min_duration_s", metavar="SECONDS",
        help="each phase keeps issuing until this many seconds have passed (default 0)",
    )  # fmt: skip
    ld.add_argument(
        "--mlperf-run-rules", action="store_true", dest="run_rules", default=None,
        help="enforce MLPerf run rules: min_duration 600 s and the scenario's minimum query "
        "count (a submission-grade run)",
    )  # fmt: skip
    t4 = p.add_argument_group("TEST04")
    t4.add_argument("--samples", type=int, help="reference phase: distinct samples (default 256)")
    t4.add_argument("--audit-samples", type=int, dest="audit_samples")
    t4.add_argument(
        "--sample-index", dest="sample_index", help="dataset row repeated (default 3, or median)"
    )
    t4.add_argument("--threshold", type=float)
    t4.add_argument("--threshold-mode", choices=["upstream", "intended"], dest="threshold_mode")
    t4.add_argument("--seed", type=int)
    mk = p.add_argument_group("embedded mock (when --url is not given)")
    mk.add_argument("--mock-cache", choices=["none", "output", "prefix"], dest="mock_cache")
    mk.add_argument("--mock-slots", type=int, dest="mock_slots")
    p.add_argument("--config", help="audit YAML; flags override it")
    p.add_argument(
        "--output-dir", dest="output_dir", help="artifacts folder (default auditkit-out)"
    )
    p.add_argument("--json", action="store_true", help="print audit_result.json to stdout")
    p.add_argument("--quiet", action="store_true", help="no progress or log lines")


def build_parser() -> argparse.ArgumentParser:
    """The full CLI (exposed for docs and tests)."""
    parser = OneLineParser(
        prog="auditkit",
        description="Audit an HTTP inference endpoint the way MLPerf does (TEST04: caching).",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"auditkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = sub.add_parser(
        "run",
        help="run an audit test against an endpoint (or the embedded mock)",
        description="Run an audit: reference phase, audit phase, verdict, artifacts.",
        epilog=EPILOG + "\nexample: auditkit run test04 --url http://127.0.0.1:8000 --samples 64",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("test", help="audit test id, e.g. test04")
    _add_run_flags(run)

    mock = sub.add_parser(
        "mock",
        help="serve the embedded mock OpenAI-compatible endpoint",
        description="Serve the mock SUT on 127.0.0.1 until Ctrl-C.",
    )
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=8000)
    mock.add_argument("--cache", choices=["none", "output", "prefix"], default="none")
    mock.add_argument("--slots", type=int, default=None)
    mock.add_argument("--model", default=None)
    mock.add_argument("--config", help="YAML with a mock: section (faults, latency model)")

    verify = sub.add_parser(
        "verify",
        help="verify LoadGen summaries (reference vs test) with auditkit's rules",
        description="Read two mlperf_log_summary.txt files (written by LoadGen or auditkit), "
        "print and write the verdict upstream's verify_performance.py rule gives.",
        epilog=EPILOG + "\nexample: auditkit verify test04 --reference ref/mlperf_log_summary.txt "
        "--test TEST04/mlperf_log_summary.txt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("test", help="audit test id (test04)")
    verify.add_argument("--reference", required=True, help="reference run's summary file")
    verify.add_argument("--test", dest="test_summary", required=True, help="audit run's summary")
    verify.add_argument("--threshold", type=float, help="override the scenario's threshold")
    verify.add_argument("--threshold-mode", choices=["upstream", "intended"], dest="threshold_mode")
    verify.add_argument(
        "--output-dir", dest="output_dir",
        help="also write <dir>/TEST04/{verify_performance.txt,audit_result.json}",
    )  # fmt: skip
    verify.add_argument("--json", action="store_true", help="print audit_result.json to stdout")

    nb = sub.add_parser(
        "notebook",
        help="run a parameterized notebook (papermill) and exit with its verdict",
        description="Execute notebooks/<name>.ipynb headless; write <output-dir>/<name>.ipynb "
        "(and .html) plus the audit artifacts.",
        epilog=EPILOG + "\nexample: auditkit notebook test04 -p samples 64 -p mock_cache output",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nb.add_argument("name", help="notebook name, e.g. test04")
    nb.add_argument(
        "-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), dest="params",
        help="set a notebook parameter (repeatable; typed by the notebook's annotations)",
    )  # fmt: skip
    nb.add_argument("--html", action="store_true", help="also export a self-contained HTML report")
    nb.add_argument(
        "--output-dir", dest="output_dir", default="out", help="where outputs go (default out)"
    )
    nb.add_argument(
        "--cell-timeout", dest="cell_timeout", type=int, default=600, help="per-cell timeout (s)"
    )
    return parser


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags → a nested override dict for load_config (only flags the user gave)."""

    def pick(*names: str) -> dict[str, Any]:
        return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}

    endpoint = pick(
        "url", "api", "model", "max_tokens", "temperature", "stream", "timeout_s", "api_key_env"
    )
    if args.header:
        from auditkit.config import SECRET_HEADER

        headers: dict[str, str] = {}
        for item in args.header:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                # the value is not echoed: it may be a credential typed in the wrong place
                raise InputError(f"--header {key.strip()[:40]!r}…: use NAME=VALUE")
            if SECRET_HEADER.search(key):
                # a flag value sits in shell history and `ps` output: keys come from the env
                raise InputError(
                    f"--header {key.strip()}: credentials are never flag values; export the key "
                    "in an environment variable and pass its NAME with --api-key-env"
                )
            headers[key.strip()] = value
        endpoint["headers"] = headers
    if args.insecure:
        endpoint["verify_tls"] = False
    dataset = {}
    if args.dataset:
        dataset["path"] = args.dataset
    if args.prompt_column:
        dataset["prompt_column"] = args.prompt_column
    load = pick(
        "scenario",
        "max_concurrency",
        "samples_per_query",
        "target_qps",
        "target_latency_ms",
        "min_duration_s",
        "run_rules",
    )
    test04 = pick("samples", "audit_samples", "threshold", "threshold_mode", "seed")
    if args.sample_index is not None:
        index = args.sample_index
        test04["sample_index"] = index if index == "median" else _int_flag("--sample-index", index)
    mock: dict[str, Any] = {}
    if args.mock_cache:
        mock["cache"] = args.mock_cache
    if args.mock_slots:
        mock["slots"] = args.mock_slots
    out: dict[str, Any] = {}
    for key, section in (
        ("endpoint", endpoint),
        ("dataset", dataset),
        ("load", load),
        ("test04", test04),
        ("mock", mock),
    ):
        if section:
            out[key] = section
    if args.output_dir:
        out["output_dir"] = args.output_dir
    return out


def _int_flag(flag: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{flag} must be an integer or 'median' (got {value!r})") from None


def cmd_run(args: argparse.Namespace) -> int:
    from auditkit.config import load_config
    from auditkit.progress import tqdm_progress
    from auditkit.runner import run_audit

    cfg = load_config(args.config, run_overrides(args))

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    progress = tqdm_progress(enabled=False if args.quiet else None)
    run = run_audit(cfg, args.test, progress=progress, log=log)
    r = run.result
    if args.json:
        print(r.model_dump_json(indent=2))
    else:
        print(f"{r.test} {r.verdict}: {r.reason.removeprefix(r.verdict + ': ')}")
        if r.reference_score is not None and r.audit_score is not None:
            print(
                f"  reference score = {r.reference_score:.6g}  audit score = {r.audit_score:.6g}"
                f"  ({r.score_name}; threshold {r.threshold:g}, {r.threshold_source})"
            )
        stat = r.evidence.get("statistical")
        if isinstance(stat, dict):
            print(
                f"  statistical view: {stat['verdict']} (ratio {stat['ratio']:.3f}, "
                f"{stat['confidence']:.0%} CI [{stat['ci_low']:.3f}, {stat['ci_high']:.3f}] "
                f"vs limit {stat['limit']:g})"
            )
        fp = r.evidence.get("fingerprint")
        if isinstance(fp, dict):
            print(f"  cache kind seen: {fp['kind']} ({'; '.join(fp.get('evidence', []))})")
        print(f"  artifacts: {run.folder}")
    if r.verdict == "INVALID":
        # exit 4 like any ExecutionError: one line on stderr that names the failure
        print(
            f"auditkit: error: {r.test} INVALID: {r.reason.removeprefix('INVALID: ')} "
            f"(records kept in {run.folder})",
            file=sys.stderr,
        )
    return run.exit_code


def cmd_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from auditkit import artifacts, mlperf_logs
    from auditkit.config import Test04Config
    from auditkit.loadgen_logs import read_summary
    from auditkit.runner import verdict_exit_code
    from auditkit.verify import verify_summaries

    if args.test.lower() != "test04":
        raise InputError(f"verify supports test04 only (got {args.test!r})")
    options = {
        k: getattr(args, k) for k in ("threshold", "threshold_mode") if getattr(args, k) is not None
    }
    try:
        t4 = Test04Config.model_validate(options)
    except Exception as exc:
        raise InputError(f"--threshold: {' '.join(str(exc).split())[:200]}") from None
    result = verify_summaries(read_summary(args.reference), read_summary(args.test_summary), t4)
    result = result.model_copy(update={"auditkit_version": __version__})
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(mlperf_logs.format_verify_performance(result), end="")
    if args.output_dir:
        from auditkit.preflight import check_output_dir

        folder = check_output_dir(artifacts.test_dir(Path(args.output_dir), "TEST04"))
        artifacts.clear_verdict(folder)
        # run_1/ gets the test run's own files, not a summary rebuilt from parsed numbers
        artifacts.copy_run_logs(folder, Path(args.test_summary))
        artifacts.write_result(folder, result, run_logs=False)
        if not args.json:
            print(f"  artifacts: {folder}")
    return verdict_exit_code(result.verdict)


def cmd_mock(args: argparse.Namespace) -> int:
    from auditkit.config import MockConfig, load_yaml
    from auditkit.mock import serve_forever

    data = load_yaml(args.config).get("mock", {}) if args.config else {}
    data["cache"] = args.cache
    if args.slots:
        data["slots"] = args.slots
    if args.model:
        data["model"] = args.model
    try:
        cfg = MockConfig.model_validate(data)
    except Exception as exc:
        raise InputError(f"mock config: {' '.join(str(exc).split())[:200]}") from None
    print(f"auditkit mock on http://{args.host}:{args.port} (cache={cfg.cache}); Ctrl-C stops")
    serve_forever(cfg, args.host, args.port)
    return 0


def cmd_notebook(args: argparse.Namespace) -> int:
    from auditkit.notebook_runner import parse_param_pairs, run_notebook

    outcome = run_notebook(
        args.name,
        parse_param_pairs(args.params),
        out_dir=args.output_dir,
        html=args.html,
        cell_timeout_s=args.cell_timeout,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    stream = sys.stdout if outcome.verdict else sys.stderr
    prefix = "" if outcome.verdict else "auditkit: error: "
    print(f"{prefix}{outcome.message} ({outcome.seconds:.1f} s)", file=stream)
    if outcome.result_file is not None and outcome.result_file.is_file():
        from auditkit.results import AuditResult

        result = AuditResult.model_validate_json(outcome.result_file.read_text(encoding="utf-8"))
        print(f"  {result.reason.removeprefix(result.verdict + ': ')}", file=stream)
    for label, path in (
        ("notebook", outcome.notebook),
        ("html", outcome.html),
        ("verdict", outcome.result_file),
    ):
        if path is not None:
            print(f"  {label}: {path}", file=stream)
    return outcome.exit_code


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM stops a run like Ctrl-C does: records kept, no verdict
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "mock":
            return cmd_mock(args)
        if args.command == "verify":
            return cmd_verify(args)
        if args.command == "notebook":
            return cmd_notebook(args)
        parser.error(f"unknown command {args.command}")
    except AuditkitError as exc:
        print(f"auditkit: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("auditkit: interrupted; no verdict written", file=sys.stderr)
        return EXIT_INTERRUPTED
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
    return 0


def entry() -> None:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
