"""The bad-input catalogue (issue 5, docs/reliability.md): every user mistake and broken endpoint
gets the documented exit code, exactly one line on stderr without a traceback that names the
problem (file and line where relevant), and a predictable state on disk.

Most cases run `auditkit.cli.main` in-process (fast); `SUBPROCESS_IDS` also run through the real
`python -m auditkit.cli` to prove the process-level behaviour (exit status, stderr).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import pytest

from tests.reliability.conftest import (
    CliResult,
    Served,
    closed_port,
    run_subprocess,
)

# no warm-up: these cases are about the measured phases meeting bad input
SAMPLES = ["--samples", "8", "--max-concurrency", "8", "--warmup", "0", "--control-twins", "0"]
Disk = Literal["nothing", "invalid", "kept"]


@dataclass
class Env:
    """What a case's argv builder can use: a scratch folder and the test servers."""

    tmp: Path
    tiny: Served
    tls: Served
    wrong_protocol: str

    @property
    def out(self) -> str:
        return str(self.tmp / "out")

    def file(self, name: str, content: bytes | str) -> str:
        path = self.tmp / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(path)

    def prompts(self, n: int = 16) -> str:
        return self.file("ok.jsonl", "".join(f'{{"prompt": "p{i} a b c"}}\n' for i in range(n)))


@dataclass(frozen=True)
class Case:
    """One catalogue entry.

    argv: the command line (output dir included) built from the Env.
    code: expected exit code (DESIGN §10).
    says: substrings the one stderr line must contain (case-insensitive).
    disk: `nothing` = no output folder at all; `invalid` = records kept and an INVALID verdict,
    never PASS/FAIL; `kept` = whatever existed stays, no verdict file.
    hides: strings that must not appear anywhere in stdout/stderr (secrets typed by mistake).
    """

    id: str
    argv: Callable[[Env], list[str]]
    code: int
    says: tuple[str, ...]
    disk: Disk = "nothing"
    hides: tuple[str, ...] = ()


def run(*args: str) -> Callable[[Env], list[str]]:
    """`auditkit run test04 <args> --samples 8 --quiet --output-dir <tmp>/out` (args may use
    `{out}`-free literals; builders that need files use a lambda instead)."""
    return lambda env: ["run", "test04", *args, *SAMPLES, "--quiet", "--output-dir", env.out]


def run_with(build: Callable[[Env], list[str]]) -> Callable[[Env], list[str]]:
    """Like `run`, with arguments computed from the Env (files, server URLs)."""
    return lambda env: [
        "run", "test04", *build(env), *SAMPLES, "--quiet", "--output-dir", env.out,
    ]  # fmt: skip


def yaml_case(text: str) -> Callable[[Env], list[str]]:
    return run_with(lambda env: ["--config", env.file("audit.yaml", text)])


def dataset_case(name: str, content: bytes | str) -> Callable[[Env], list[str]]:
    return run_with(lambda env: ["--dataset", env.file(name, content)])


def url_case(url: Callable[[Env], str], *extra: str) -> Callable[[Env], list[str]]:
    return run_with(lambda env: ["--url", url(env), "--model", "tiny-model", *extra])


def notebook(*params: str) -> Callable[[Env], list[str]]:
    pairs: list[str] = []
    for p in params:
        name, value = p.split("=", 1)
        pairs += ["-p", name, value]
    return lambda env: ["notebook", "test04", *pairs, "--output-dir", env.out]


CASES: list[Case] = [
    # --- config / YAML -------------------------------------------------------------------
    Case("yaml-unknown-key", yaml_case("endpoint:\n  urll: http://x\n"), 2,
         ("audit.yaml", "endpoint.urll", "unknown key")),
    Case("yaml-wrong-type", yaml_case("endpoint:\n  max_tokens: lots\n"), 2,
         ("audit.yaml", "endpoint.max_tokens", "integer")),
    Case("yaml-missing-required", yaml_case("endpoint:\n  api: json\n"), 2,
         ("audit.yaml", "body_template")),
    Case("yaml-server-without-qps", yaml_case("load:\n  scenario: server\n"), 2,
         ("load", "target_qps")),
    Case("yaml-negative-count", yaml_case("test04:\n  audit_samples: -4\n"), 2,
         ("test04.audit_samples", "greater than or equal to 1")),
    Case("flag-negative-samples", lambda env: ["run", "test04", "--samples", "-1", "--quiet",
         "--output-dir", env.out], 2, ("test04.samples", "greater than or equal to 1")),
    Case("flag-threshold-out-of-range", run("--threshold", "1.5"), 2,
         ("test04.threshold", "less than or equal to 1")),
    Case("yaml-conflict-stream-json",
         yaml_case("endpoint:\n  api: json\n  stream: true\n  body_template: {p: '{prompt}'}\n"),
         2, ("stream", "api json")),
    Case("yaml-syntax-error-line", yaml_case("endpoint:\n  url: http://x\n  headers: [a\n"), 2,
         ("audit.yaml", "line 4")),
    Case("yaml-not-a-mapping", yaml_case("- endpoint\n- load\n"), 2,
         ("audit.yaml", "mapping")),
    Case("config-file-missing", run("--config", "/nonexistent/audit.yaml"), 2,
         ("/nonexistent/audit.yaml", "not found")),
    Case("flag-not-a-number", run("--max-tokens", "many"), 2,
         ("--max-tokens", "expected an integer")),
    Case("sample-index-out-of-range", run("--sample-index", "5000"), 2,
         ("sample_index", "5000")),
    Case("sample-index-not-int", run("--sample-index", "third"), 2,
         ("--sample-index", "median")),
    Case("secret-in-header-flag", run("--header", "Authorization=Bearer sk-live-123456"), 2,
         ("--header authorization", "api-key-env"), hides=("sk-live-123456",)),
    Case("api-key-env-unset", run("--api-key-env", "AUDITKIT_SURELY_UNSET_VAR"), 2,
         ("AUDITKIT_SURELY_UNSET_VAR", "not set")),
    Case("api-key-env-is-a-key", run("--api-key-env", "sk-live-abc-123"), 2,
         ("api_key_env", "NAME")),
    # --- datasets --------------------------------------------------------------------------
    Case("dataset-missing", run("--dataset", "/nonexistent/prompts.jsonl"), 2,
         ("/nonexistent/prompts.jsonl", "not found")),
    Case("dataset-empty", dataset_case("empty.jsonl", ""), 2, ("empty.jsonl", "empty")),
    Case("dataset-wrong-extension", dataset_case("prompts.txt", "hello\n"), 2,
         ("prompts.txt", "unsupported dataset format", ".jsonl")),
    Case("dataset-malformed-jsonl-line",
         dataset_case("bad.jsonl", '{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "c",\n'), 2,
         ("bad.jsonl:3", "malformed JSON")),
    Case("dataset-jsonl-not-object", dataset_case("list.jsonl", '{"prompt": "a"}\n[1, 2]\n'), 2,
         ("list.jsonl:2", "JSON object")),
    Case("dataset-missing-prompt-column",
         dataset_case("noprompt.jsonl", '{"text": "a"}\n{"text": "b"}\n'), 2,
         ("noprompt.jsonl", "'prompt'", "found: text", "prompt_column")),
    Case("dataset-not-utf8",
         dataset_case("latin1.jsonl", b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n'), 2,
         ("latin1.jsonl:2", "UTF-8")),
    Case("dataset-huge-line",
         dataset_case("huge.jsonl", b'{"prompt": "' + b"a" * (9 * 1024 * 1024) + b'"}\n'), 2,
         ("huge.jsonl:1", "over the")),
    Case("dataset-csv-no-prompt-column", dataset_case("q.csv", "question,answer\nhi,there\n"), 2,
         ("q.csv", "'prompt'", "found: question, answer")),
    Case("dataset-empty-prompt-row",
         dataset_case("gap.csv", "prompt\n" + "".join(f"p{i}\n" for i in range(4)) + '""\n'
                      + "".join(f"q{i}\n" for i in range(12))), 2,
         ("gap.csv", "row 5", "empty prompt")),
    Case("dataset-bad-parquet", dataset_case("broken.parquet", b"PAR1 not really"), 2,
         ("broken.parquet", "Parquet")),
    Case("dataset-too-small", run_with(lambda env: ["--dataset", env.prompts(4)]), 2,
         ("test04.samples (8)", "4 rows")),
    # --- notebook runner parameters (validated before any kernel starts) -------------------
    Case("notebook-unknown-parameter", notebook("sampels=8"), 2,
         ("unknown parameter 'sampels'", "samples")),
    Case("notebook-invalid-type", notebook("samples=many"), 2,
         ("parameter samples", "int", "'many'")),
    Case("notebook-invalid-value", notebook("scenario=sideways"), 2,
         ("parameter scenario", "offline")),
    Case("notebook-secret-parameter", notebook("api_key=sk-live-999888"), 2,
         ("parameter api_key", "never notebook parameters", "api_key_env"),
         hides=("sk-live-999888",)),
    Case("notebook-unknown-notebook", lambda env: ["notebook", "test99", "--output-dir", env.out],
         2, ("unknown notebook", "test04")),
    # --- URLs ------------------------------------------------------------------------------
    Case("url-malformed", run("--url", "http://[::1"), 2, ("endpoint.url",)),
    Case("url-no-scheme", run("--url", "127.0.0.1:8000"), 2, ("endpoint.url", "http://")),
    Case("url-unsupported-scheme", run("--url", "ftp://127.0.0.1/models"), 2,
         ("endpoint.url", "ftp://")),
    Case("url-invalid-port", run("--url", "http://127.0.0.1:99999"), 2,
         ("endpoint.url", "port")),
    Case("url-with-credentials", run("--url", "http://user:hunter2secret@127.0.0.1:8000"), 2,
         ("endpoint.url", "credentials", "api_key_env"), hides=("hunter2secret",)),
    Case("url-unreachable", url_case(lambda env: f"http://127.0.0.1:{closed_port()}"), 3,
         ("unreachable", "refused")),
    Case("url-wrong-port", url_case(lambda env: env.wrong_protocol), 3,
         ("unreachable", "127.0.0.1:")),
    Case("url-https-to-plain-http",
         url_case(lambda env: env.tiny.url("ok").replace("http:", "https:")), 3,
         ("TLS handshake failed", "https://")),
    Case("url-tls-untrusted-cert", url_case(lambda env: env.tls.url("ok")), 3,
         ("certificate", "verify_tls", "--insecure")),
    # --- pre-flight ------------------------------------------------------------------------
    Case("preflight-output-dir-under-a-file",
         lambda env: ["run", "test04", *SAMPLES, "--quiet",
                      "--output-dir", env.file("plainfile", "x") + "/sub"], 3,
         ("output dir", "not writable")),
    Case("preflight-output-dir-in-proc",
         lambda env: ["run", "test04", *SAMPLES, "--quiet", "--output-dir", "/proc/auditkit"], 3,
         ("output dir /proc/auditkit", "not writable")),
    Case("preflight-unknown-model", run("--model", "gpt-17"), 3,
         ("model 'gpt-17'", "it lists: mock-llm")),
    Case("preflight-models-redirect",
         url_case(lambda env: env.tiny.url("models-redirect")), 3, ("redirects to", "final URL")),
    Case("preflight-credentials-refused", url_case(lambda env: env.tiny.url("models-401")), 3,
         ("no key was sent", "HTTP 401", "--api-key-env NAME")),
    # --- endpoint responses (the phase runs: records kept, verdict INVALID, exit 4) --------
    Case("response-not-json", url_case(lambda env: env.tiny.url("nonjson")), 4,
         ("INVALID", "protocol_error", "not JSON"), disk="invalid"),
    Case("response-wrong-shape", url_case(lambda env: env.tiny.url("wrongshape")), 4,
         ("INVALID", "protocol_error", "no choices"), disk="invalid"),
    Case("response-empty-choices", url_case(lambda env: env.tiny.url("emptychoices")), 4,
         ("INVALID", "no choices"), disk="invalid"),
    Case("response-http-400-with-body", url_case(lambda env: env.tiny.url("http400")), 4,
         ("INVALID", "http_error", "HTTP 400", "max_tokens is too large"), disk="invalid"),
    Case("response-http-503-with-body", url_case(lambda env: env.tiny.url("http503")), 4,
         ("INVALID", "http_error", "HTTP 503", "upstream overloaded"), disk="invalid"),
    Case("response-redirect", url_case(lambda env: env.tiny.url("redirect")), 4,
         ("INVALID", "HTTP 307 redirect", "use the final URL"), disk="invalid"),
]  # fmt: skip

# run through a real child process as well (exit status and stderr of the actual command): one
# case per exit code, 2, 3 and 4 (each child spends seconds importing pandas and scipy; every
# case, these included, runs in-process above)
SUBPROCESS_IDS = {
    "yaml-syntax-error-line",
    "url-unreachable",
    "response-http-503-with-body",
}


@pytest.fixture
def env(tmp_path: Path, tiny: Served, tls: Served, wrong_protocol: str) -> Env:
    return Env(tmp_path, tiny, tls, wrong_protocol)


def check(case: Case, result: CliResult, env: Env) -> None:
    """The catalogue's assertions, shared by the in-process and subprocess runs."""
    assert result.code == case.code, (result.code, result.stderr, result.stdout)
    assert len(result.stderr_lines) == 1, result.stderr
    line = result.stderr_lines[0]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert line.startswith("auditkit"), line
    for needle in case.says:
        assert needle.lower() in line.lower(), (needle, line)
    for secret in case.hides:
        assert secret not in result.stderr + result.stdout
    folder = Path(env.out) / "TEST04"
    if case.disk == "nothing":
        assert not Path(env.out).exists(), sorted(p.name for p in Path(env.out).rglob("*"))
    elif case.disk == "invalid":
        verdict = json.loads((folder / "audit_result.json").read_text())
        assert verdict["verdict"] == "INVALID"
        records = pd.read_parquet(folder / "reference" / "records.parquet")
        assert len(records) == 8 and (records["status"] != "ok").all()
        phase = json.loads((folder / "reference" / "phase.json").read_text())
        assert phase["complete"] is False
        assert not (folder / "audit").exists()  # the audit phase never ran on a broken reference


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue_in_process(
    case: Case, env: Env, run_inproc: Callable[[list[str]], CliResult]
) -> None:
    result = run_inproc(case.argv(env))
    check(case, result, env)


SUBPROCESS_CASES = [c for c in CASES if c.id in SUBPROCESS_IDS]


@pytest.mark.slow
@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[c.id for c in SUBPROCESS_CASES])
def test_catalogue_subprocess(case: Case, env: Env) -> None:
    result = run_subprocess(case.argv(env), timeout=120)
    check(case, result, env)


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
