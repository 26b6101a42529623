"""The CLI as users run it: exit codes, one-line errors, help text. Output and exit codes go
through `main()` in this process (a child `auditkit` spends seconds importing pandas and scipy);
real subprocesses where the process is the point: an exit status, Ctrl-C, SIGTERM, a closed
pipe."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from auditkit.cli import build_parser, main
from auditkit.mock.app import STATS_PATH

AUDITKIT = [sys.executable, "-m", "auditkit.cli"]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUDITKIT, *args], capture_output=True, text=True, timeout=180, cwd=cwd, check=False
    )


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`auditkit ARGS` through main() in this process, as a child's result would read (argparse's
    exits become the return code; main()'s own SIGTERM handler is put back afterwards)."""
    saved = signal.getsignal(signal.SIGTERM)
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        signal.signal(signal.SIGTERM, saved)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def test_help_is_useful_on_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    text = build_parser().format_help()
    assert "exit codes" in text and "run" in text and "mock" in text
    sub = _main(capsys, "run", "test04", "--help")
    assert sub.returncode == 0
    for flag in ("--url", "--scenario", "--sample-index", "--api-key-env", "--mock-cache"):
        assert flag in sub.stdout
    assert "(default: 256)" in sub.stdout  # --samples shows its default
    generic = _main(capsys, "run", "--help")
    assert generic.returncode == 0 and "--url" in generic.stdout and "test04" in generic.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cache", "code", "word", "child"),
    [("none", 0, "PASS", False), ("output", 1, "FAIL", True)],
    ids=["PASS-in-process", "FAIL-child-process"],
)
def test_verdict_exit_codes(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    cache: str,
    code: int,
    word: str,
    child: bool,
) -> None:
    # from another directory: the shipped dataset still resolves; the simulated mock makes the
    # verdict exact, so this checks the exit code mapping, not the machine's load. FAIL's exit
    # status comes from a real child process (PASS's from one: test_papermill's notebook run)
    args = (
        "run", "test04", "--mock-cache", cache, "--mock-simulated", "--design", "sequential",
        "--output-dir", str(tmp_path),
    )  # fmt: skip
    if child:
        proc = _run(*args, cwd=tmp_path)
    else:
        monkeypatch.chdir(tmp_path)
        proc = _main(capsys, *args)
    assert proc.returncode == code, proc.stderr
    assert f"TEST04 {word}" in proc.stdout
    assert (tmp_path / "TEST04" / "audit_result.json").is_file()


def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "test04", "--scenario", "sideways"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--scenario" in err


def test_mistyped_flag_and_test_get_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "test04", "--sample", "64"])
    assert info.value.code == 2
    assert "did you mean --samples?" in capsys.readouterr().err
    assert main(["run", "tset04"]) == 2
    assert "did you mean test04?" in capsys.readouterr().err


def test_input_error_is_one_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # in this process (the bad-input catalogue's subprocess cases show a child's one line)
    proc = _main(capsys, "run", "test04", "--samples", "5000", "--output-dir", str(tmp_path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "test04.samples (5000)" in lines[0]
    assert not (tmp_path / "TEST04").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_mock_subcommand_serves_until_sigterm(tmp_path: Path) -> None:
    """`auditkit mock --cache output` serves the OpenAI API with its cache on until SIGTERM,
    then exits 0. (Audits of a mock process: test_runner's and test_validity's real-HTTP
    tests.)"""
    port = _free_port()
    proc = subprocess.Popen(
        [*AUDITKIT, "mock", "--port", str(port), "--cache", "output"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert f"auditkit mock on http://127.0.0.1:{port}" in proc.stdout.readline()
        base = f"http://127.0.0.1:{port}/v1"
        models = httpx.get(f"{base}/models", timeout=10).json()
        assert models["data"][0]["id"] == "mock-llm"
        body = {"model": "mock-llm", "prompt": "why is the sky blue", "max_tokens": 8}
        first, second = (httpx.post(f"{base}/completions", json=body, timeout=10) for _ in "12")
        assert first.status_code == second.status_code == 200
        assert first.json()["choices"] == second.json()["choices"]
        stats = httpx.get(f"http://127.0.0.1:{port}{STATS_PATH}", timeout=10).json()
        assert stats["cache_hits"] == 1  # the second answer came from the cache
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


# --- issue 14: what a new user trips over -------------------------------------------------

#: reference then audit, so the per-phase table has one row each
QUICK_RUN = (
    "--samples", "64", "--allow-small", "--rounds", "0", "--warmup", "0", "--design", "sequential"
)  # fmt: skip


def test_run_prints_a_per_phase_table_and_a_next_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = _main(
        capsys, "run", "test04", "--mock-simulated", *QUICK_RUN, "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode in (0, 5), proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if "ok/requested" in line)
    for column in ("failed", "p50 ms", "p90 ms", "p99 ms", "TTFT p50 ms", "tokens/s"):
        assert column in header
    rows = [line.split() for line in lines[lines.index(header) + 1 :]]
    assert [r[0] for r in rows] == ["reference", "audit", "control"]
    assert all("/" in r[1] for r in rows)
    assert any(line.strip().startswith("next: ") for line in lines)


def test_every_flag_has_help_and_shows_its_default() -> None:
    import argparse

    parser = build_parser("test04")
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = "/".join(action.option_strings) or action.dest
            assert action.help, f"{name} {flag}: no help text"
            takes_value = action.option_strings and action.nargs != 0
            optional_value = takes_value and not action.required
            if optional_value and not isinstance(action, argparse.BooleanOptionalAction):
                assert "default" in action.help, f"{name} {flag}: no default shown"


def test_mistyped_command_and_notebook_get_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["rnu", "test04"])
    assert info.value.code == 2
    assert "did you mean run?" in capsys.readouterr().err
    assert main(["notebook", "review_resuts"]) == 2
    assert "did you mean review_results?" in capsys.readouterr().err


@pytest.mark.slow
def test_mock_require_key_env_and_the_no_key_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "AK_TEST_KEY": "sekrit-123"}
    proc = subprocess.Popen(
        [*AUDITKIT, "mock", "--port", "0", "--require-key-env", "AK_TEST_KEY"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    # the runs go through main() in this process (exit code and stderr as `auditkit` prints
    # them; child `auditkit run`s are the other tests'): the mock is the child here
    monkeypatch.setenv("AK_TEST_KEY", "sekrit-123")
    monkeypatch.setenv("AK_WRONG", "nope")
    saved = signal.getsignal(signal.SIGTERM)  # main() installs its own
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "key from $AK_TEST_KEY required" in line
        url = line.split(" on ", 1)[1].split()[0]
        assert httpx.get(f"{url}/v1/models", timeout=5).status_code == 401
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        # no key sent: one line that says so and names the flag
        code = main(["run", "test04", "--url", url, *QUICK_RUN, "--output-dir", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 3, err
        assert "no key was sent" in err and "--api-key-env NAME" in err
        assert len(err.strip().splitlines()) == 1
        # the key, and a base URL the OpenAI client's way (…/v1/): a verdict, not 404s
        code = main(
            ["run", "test04", "--url", f"{url}/v1/", "--api-key-env", "AK_TEST_KEY",
             *QUICK_RUN, "--output-dir", str(tmp_path / "keyed")]
        )  # fmt: skip
        keyed = capsys.readouterr()
        # a verdict (which one is the timing tests' business: a busy machine may make it
        # INVALID), and every query answered
        assert code in (0, 1, 4, 5), keyed.err
        assert (tmp_path / "keyed" / "TEST04" / "audit_result.json").is_file()
        for phase in ("reference", "audit"):
            records = pd.read_parquet(tmp_path / "keyed" / "TEST04" / phase / "records.parquet")
            assert (records["status"] == "ok").all(), records["error"].unique()
        assert "sekrit-123" not in keyed.out + keyed.err
        code = main(
            ["run", "test04", "--url", url, "--api-key-env", "AK_WRONG", *QUICK_RUN,
             "--output-dir", str(tmp_path / "wrong")]
        )  # fmt: skip
        err = capsys.readouterr().err
        assert code == 3 and "refused the key in $AK_WRONG" in err, err
    finally:
        signal.signal(signal.SIGTERM, saved)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_mock_require_key_env_unset_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AK_UNSET_KEY", raising=False)
    proc = _main(capsys, "mock", "--port", "0", "--require-key-env", "AK_UNSET_KEY")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "auditkit: error: --require-key-env AK_UNSET_KEY: that variable is not set; export "
        "AK_UNSET_KEY=<some key> first"
    ]


def test_examples_config_runs_against_the_keyless_mock_as_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auditkit.audits import load_config
    from auditkit.runner import prepare, run_audit

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # from anywhere: no path in it is relative to the repo
    example = Path(__file__).resolve().parent.parent / "examples" / "audit.yaml"
    cfg = load_config(str(example), {})
    assert cfg.endpoint.api_key_env is None
    prepare(cfg)  # no key needed, dataset found
    quick = load_config(
        str(example),
        {
            "endpoint": {"url": None},
            "mock": {"simulated": True},
            "output_dir": str(tmp_path / "out"),
            "test04": {"samples": 64, "allow_small": True, "rounds": 0},
        },
    )
    assert run_audit(quick).result.verdict in ("PASS", "INCONCLUSIVE")


@pytest.mark.slow
def test_ctrl_c_on_auditkit_notebook_is_one_line_exit_130(tmp_path: Path) -> None:
    """Interrupt mid-run (once the run has written its config): exit 130 and one line; no
    ZMQ traceback, no kernel-transport warning on the terminal."""
    proc = subprocess.Popen(
        [*AUDITKIT, "notebook", "test04", "-p", "samples", "1024", "-p", "rounds", "0",
         "--output-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    started = tmp_path / "TEST04" / "config.yaml"
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert lines[-1] == "auditkit: interrupted; no verdict written", err
    assert lines[:-1] == [f"running test04.ipynb → {tmp_path / 'test04.ipynb'}"], err
    assert "Traceback" not in err and "without encryption" not in err + out


@pytest.mark.slow
def test_a_reader_that_closes_the_pipe_early_is_not_an_internal_error(tmp_path: Path) -> None:
    # `auditkit run ... | head -1`: the run's files stand, and no "internal error" line follows
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditkit.cli", "run", "test04", "--mock-simulated", *QUICK_RUN,
         "--output-dir", str(tmp_path), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the verdict is printed: its write meets a closed pipe
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert "internal error" not in err and "Exception ignored" not in err
    assert (tmp_path / "TEST04" / "audit_result.json").is_file()


def test_default_output_is_the_verdict_first_and_verbose_adds_the_phase_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # single-stream blocks too short for early stopping on their own: their log line says why
    # in words, never "score None"
    flags = ["run", "test04", "--mock-simulated", "--scenario", "single-stream",
             "--samples", "128", "--rounds", "0", "--warmup", "0"]  # fmt: skip
    code = main([*flags, "--output-dir", str(tmp_path / "a")])
    out, err = capsys.readouterr()
    assert code in (0, 5), err
    lines = out.splitlines()
    assert lines[0].startswith("TEST04 ") and "  next: " in out.split("  artifacts: ")[0]
    assert max(len(line) for line in lines) <= 100, out
    assert "phase " not in err  # no phase-by-phase lines without --verbose
    assert "None" not in out and "is True" not in out and "((" not in out
    code = main([*flags, "--verbose", "--output-dir", str(tmp_path / "b")])
    out, err = capsys.readouterr()
    logged = [line for line in err.splitlines() if line.startswith("phase ")]
    # each of the 16 blocks and the never-seen control phase starts and ends in the log
    assert len(logged) == 2 * 17, err
    assert max(len(line) for line in err.splitlines()) <= 100, err
    assert "None" not in err and "no score of its own: early stopping needs" in err, err
