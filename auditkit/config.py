"""The audit configuration: one pydantic model, loadable from YAML, overridable by flags.

Pure: no I/O beyond reading the YAML text handed in by `load_config`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from auditkit.errors import InputError

ModelT = TypeVar("ModelT", bound=BaseModel)

Api = Literal["openai-completions", "openai-chat", "json"]
Scenario = Literal["offline", "single-stream", "multi-stream", "server"]
CacheMode = Literal["none", "output", "prefix", "last-prompt", "kv-prefix"]

SECRET_HEADER = re.compile(
    r"(authorization|auth|api[-_]?key|key$|[-_]key\b|token|secret|password|cookie|credential)", re.I
)
REDACTED = "***REDACTED***"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: OpenAI endpoint paths a user may paste into a base URL, and the API each one means
_ENDPOINT_PATHS = (
    ("/v1/chat/completions", "openai-chat"),
    ("/chat/completions", "openai-chat"),
    ("/v1/completions", "openai-completions"),
    ("/completions", "openai-completions"),
    ("/v1/models", "openai-completions"),
)


class EndpointConfig(_Strict):
    """Where the SUT is and how to talk to it."""

    url: str | None = Field(
        None, description="SUT base URL, e.g. http://host:8000; None: the embedded mock"
    )
    api: Api = Field("openai-completions", description="request/response format")
    model: str | None = Field(None, description="model name; None: the first from GET /v1/models")
    max_tokens: int = Field(32, ge=1, le=1_000_000, description="output tokens per request")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="sampling temperature sent")
    stream: bool | None = Field(
        None,
        description="stream responses (SSE), which splits first-token from decode time; "
        "None: on for the OpenAI APIs, off for the json api (it does not stream)",
    )
    user_agent: str | None = Field(
        None,
        description="User-Agent header sent; None: the HTTP client's own (nothing that names "
        "auditkit, so a cache cannot recognise the audit by it)",
    )
    connection_warmup: bool = Field(
        True,
        description="open each phase's connections with GET /v1/models before its clock starts "
        "(off: the first measured queries open them; a cache could spot the burst)",
    )
    logprobs: bool = Field(
        False, description="ask for per-token logprobs (TEST06 counts delivered tokens from them)"
    )
    timeout_s: float = Field(
        120.0,
        gt=0,
        le=86_400,
        description="per-request total timeout (s)",
        json_schema_extra={"flag": "--timeout"},
    )
    connect_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3_600,
        description="TCP/TLS connect timeout (s)",
        json_schema_extra={"flag": "--connect-timeout"},
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="extra request headers, never credentials (the CLI flag repeats)",
        json_schema_extra={"flag": "--header", "key_value": True},
    )
    api_key_env: str | None = Field(
        None, description="NAME of the environment variable holding the API key (never the key)"
    )
    verify_tls: bool = Field(
        True,
        description="verify the endpoint's TLS certificate (CLI: --insecure turns it off)",
        json_schema_extra={"flag": "--insecure", "invert": True},
    )
    max_response_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, le=1 << 34, description="largest response accepted (bytes)"
    )
    body_template: dict[str, Any] | None = Field(
        None, description='json api: request body; the string "{prompt}" is replaced by the prompt'
    )
    path: str | None = Field(
        None,
        description="request path; None: the api's default",
        json_schema_extra={"param": "request_path"},
    )
    response_text_path: str = Field(
        "text", description="json api: dotted path of the output text in the response JSON"
    )
    http_client: Literal["auto", "h1", "aiohttp"] = Field(
        "auto",
        description="load generator's HTTP client: h1 (auditkit's own HTTP/1.1, ~2x aiohttp's "
        "rate; http:// only), aiohttp, or auto (h1 for http://, aiohttp for https://)",
    )

    @property
    def streams(self) -> bool:
        """Whether requests stream: `stream` when given, else on for the OpenAI APIs (their
        servers stream; the first-token/decode split names a cache's kind) and off for json."""
        return self.stream if self.stream is not None else self.api != "json"

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"url must start with http:// or https:// (got {value!r})")
        if parts.username is not None or parts.password is not None:
            # never echo the value: the userinfo is a credential, and this message is printed
            raise ValueError(
                "url must not carry credentials (user:password@); put the key in an environment "
                "variable and name it in endpoint.api_key_env"
            )
        if not parts.hostname:
            raise ValueError(f"url has no host (got {value!r})")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"url has an invalid port (got {value!r})") from exc
        return value.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _check_header_text(cls, value: dict[str, str]) -> dict[str, str]:
        # a line break would end the header early and smuggle text into the request
        for name, text in value.items():
            if any(c in name or c in text for c in "\r\n\0"):
                raise ValueError(f"header {name.strip()!r} contains a line break or NUL")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _check_env_name(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(
                "api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                "not the key itself"
            )
        return value

    @model_validator(mode="after")
    def _check_base_url(self) -> EndpointConfig:
        # a full endpoint path copied from a curl line would be requested as
        # .../v1/chat/completions/v1/models: say which base URL and API to give instead
        if self.url is None or self.api == "json":
            return self
        for path, api in _ENDPOINT_PATHS:
            if self.url.endswith(path):
                base = self.url[: -len(path)] or self.url
                raise ValueError(
                    f"url {self.url} is a full endpoint path: give the server's base URL and "
                    f"the API, --url {base} --api {api} (auditkit adds the paths)"
                )
        return self

    @model_validator(mode="after")
    def _check_json_api(self) -> EndpointConfig:
        if self.api == "json" and self.body_template is None:
            raise ValueError('api "json" needs endpoint.body_template (with "{prompt}" in it)')
        if self.api == "json" and self.stream:
            # caught here, not in make_adapter: a conflict is bad input (exit 2) and must stop
            # the run before the output folder or the endpoint is touched
            raise ValueError("stream: true is not supported with api json; set stream: false")
        if self.http_client == "h1" and self.url is not None and self.url.startswith("https:"):
            raise ValueError(
                "http_client h1 speaks plain http:// only; use http_client auto or aiohttp "
                "for an https:// url"
            )
        return self


class DatasetConfig(_Strict):
    """The prompts and how to read them."""

    path: str | None = Field(
        None,
        description="JSONL, CSV or Parquet file; None: the 1024 prompts shipped with auditkit",
        json_schema_extra={"param": "dataset"},
    )
    prompt_column: str = Field("prompt", description="column holding the prompt text")
    messages_column: str = Field(
        "messages", description="column holding chat messages (used when there is no prompt)"
    )
    answer_column: str | None = Field(
        None,
        description="column holding each row's reference answer (TEST01 scores accuracy with "
        "it); None: no answers",
    )


class LoadConfig(_Strict):
    """How queries are issued (DESIGN §5)."""

    scenario: Scenario = Field("offline", description="MLPerf scenario (how queries are issued)")
    max_concurrency: int = Field(32, ge=1, le=4096, description="queries in flight at most")
    samples_per_query: int = Field(8, ge=1, le=4096, description="multi-stream query size")
    target_qps: float | None = Field(
        None, gt=0, le=1e6, description="server scenario: Poisson arrival rate (queries/s)"
    )
    target_latency_ms: float | None = Field(
        None, gt=0, description="server scenario: latency bound (ms)"
    )
    min_duration_s: float = Field(
        0.0,
        ge=0,
        le=86_400,
        description="each phase keeps issuing until this many seconds have passed",
        json_schema_extra={"flag": "--min-duration"},
    )
    client_guard: bool = Field(
        True, description="mark a phase bound by the client (not the SUT) and the verdict INVALID"
    )
    client_bound_fraction: float = Field(
        0.8, gt=0, le=1.0, description="client guard: share of the client's ceiling that is bound"
    )
    client_delay_ms: float = Field(
        0.0, ge=0, le=1000, description="diagnostic: block the client this long per request"
    )
    run_rules: bool = Field(
        False,
        description="MLPerf run rules: min_duration 600 s and the scenario's minimum query "
        "counts; only such runs are submission-grade",
        json_schema_extra={"flag": "--mlperf-run-rules"},
    )
    workers: int | Literal["auto"] = Field(
        "auto",
        description="load-generator processes per offline/server phase: N, or auto (as many as "
        "the client guard says the rate needs, capped by the cores)",
    )

    ray_address: str | None = Field(
        None,
        description="spread offline/server phases over a Ray cluster's hosts: its address, auto "
        "(the running cluster) or local (one started here); needs auditkit[ray]",
    )
    max_clock_offset_ms: float = Field(
        1.0,
        gt=0,
        le=1000,
        description="with ray_address: refuse a phase when a host's clock offset to the driver "
        "is known less well than this",
    )

    @field_validator("workers")
    @classmethod
    def _check_workers(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 256:
            raise ValueError("workers must be auto or an integer from 1 to 256")
        return value

    @model_validator(mode="after")
    def _check_server(self) -> LoadConfig:
        if self.scenario == "server" and self.target_qps is None:
            raise ValueError("scenario server needs load.target_qps")
        return self


class FaultConfig(_Strict):
    """Faults the embedded mock can inject (rates are per request, seeded)."""

    error_rate: float = Field(0.0, ge=0, le=1, description="share answered with HTTP 500")
    hang_rate: float = Field(0.0, ge=0, le=1, description="share that never answer")
    reset_rate: float = Field(0.0, ge=0, le=1, description="share whose connection is reset")
    malformed_rate: float = Field(0.0, ge=0, le=1, description="share answered with bad JSON")
    truncate_rate: float = Field(0.0, ge=0, le=1, description="share of streams cut short")
    stream_error_rate: float = Field(
        0.0, ge=0, le=1, description="share of streams ending in an error event"
    )
    slow_loris_rate: float = Field(0.0, ge=0, le=1, description="share answered a byte at a time")
    die_after: int | None = Field(
        None, ge=0, description="the mock stops answering after this many requests"
    )


class BehaviourConfig(_Strict):
    """How the mock misbehaves like real servers do (each off by default): what a verdict must
    survive (cold starts, drift, heavy tails) and caches it must catch."""

    cold_start_requests: int = Field(
        0, ge=0, description="the first requests after start are slow (a cold server)"
    )
    cold_start_ms: float = Field(0.0, ge=0, description="extra time of each cold request (ms)")
    drift_per_1000: float = Field(
        0.0,
        ge=-1.0,
        le=0.9,
        description="service time falls by this share per 1000 requests (negative: rises)",
    )
    tail_rate: float = Field(
        0.0, ge=0, le=1, description="share of requests that take tail_multiplier times longer"
    )
    tail_multiplier: float = Field(10.0, ge=1, description="how much longer a tail request takes")
    cache_admit_after: int = Field(
        1, ge=1, description="output cache: store an answer at its n-th request (admission)"
    )
    cache_ttl_s: float | None = Field(
        None, gt=0, description="output cache: entries expire after this many seconds"
    )
    cache_normalize: bool = Field(
        False, description="output cache: the key ignores case and repeated whitespace"
    )
    cache_miss_every: int = Field(
        0, ge=0, description="output cache: every n-th repeat is computed again (partial cache)"
    )
    cache_key: Literal["exact", "strip_tag", "words"] = Field(
        "exact",
        description="output cache: what the key reads of a prompt: exact; strip_tag (a leading "
        "[...] tag removed, as a server that knows auditkit's salt); words (its set of words, "
        "tag removed: a semantic cache)",
    )
    coalesce: bool = Field(False, description="identical requests in flight share one computation")
    prepopulate: str | None = Field(
        None,
        description="a dataset file whose prompts the output cache already holds at start",
    )
    connection_setup_ms: float = Field(
        0.0, ge=0, description="extra time of the first request on each new connection (ms)"
    )
    burn_cpu: bool = Field(
        False,
        description="a served mock spends each computation spinning on the CPU instead of "
        "sleeping (streamed or not; one at a time): its work takes the client's cores",
    )
    same_output: bool = Field(
        False,
        description="every request gets the same text, whatever its prompt and temperature "
        "(a server that ignores its input: not a cache, no speed-up)",
    )
    kv_scope: Literal["shared", "per-client"] = Field(
        "shared",
        description="kv-prefix cache: one cache for every client (API key, else the body's "
        "`user`), or one per client",
    )
    kv_block_tokens: int = Field(
        16, ge=1, le=4096, description="kv-prefix cache: only whole blocks of this many tokens hit"
    )
    kv_capacity_tokens: int = Field(
        1_000_000, ge=1, description="kv-prefix cache: tokens it holds; least recently used go"
    )
    kv_hide_cached: bool = Field(
        False, description="kv-prefix cache: report cached_tokens 0 while reusing (metadata lies)"
    )


class MisbehaviourConfig(_Strict):
    """Dishonest serving the suite's audits must catch (each off by default; the mock applies
    them in `auditkit.mock.misbehaviours`). "Under load": another request was being computed
    when this one arrived."""

    change_under_load: bool = Field(
        False, description="TEST01: answers differ under load from the answers one at a time"
    )
    inflate_tokens: int = Field(
        0, ge=0, description="TEST06: usage.completion_tokens reports this many tokens too many"
    )
    fake_first_token: bool = Field(
        False, description="TEST06: streams open with a filler token that is not the answer's"
    )
    repeat_stop: int = Field(
        0, ge=0, le=64, description="TEST06: answers end with this many stop markers (</s>)"
    )
    truncate_under_load: float = Field(
        0.0, ge=0.0, lt=1.0, description="TEST09: share of output tokens dropped under load"
    )
    wrong_under_load: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="TEST07: share of multiple-choice answers given with another letter under "
        "load (a server that degrades when busy)",
    )
    fast_order_seed: int | None = Field(
        None,
        description="TEST05: answer faster when prompts come in this seed's order of the "
        "dataset (a server tuned to the official sample order)",
    )
    order_speedup: float = Field(
        2.0, ge=1.0, le=100.0, description="TEST05: how much faster an in-order prompt is"
    )
    order_dataset: str | None = Field(
        None, description="TEST05: the dataset whose order it knows; None: the shipped prompts"
    )


class MockConfig(_Strict):
    """The embedded mock SUT (used when endpoint.url is None)."""

    cache: CacheMode = Field(
        "none",
        description="none | output (response cache) | prefix (KV reuse) | last-prompt (KV of "
        "the previous prompt only, as llama.cpp's slot) | kv-prefix (the longest cached prefix "
        "in whole blocks, as vLLM's prefix caching: behaviour.kv_*)",
    )
    simulated: bool = Field(
        False,
        description="simulate the mock in memory on a virtual clock (instant, exact) instead "
        "of serving it over HTTP",
    )
    slots: int = Field(2, ge=1, le=1024, description="requests the mock serves at once")
    prefill_us_per_token: float = Field(10.0, ge=0, description="prefill time per prompt token")
    decode_us_per_token: float = Field(150.0, ge=0, description="decode time per output token")
    base_latency_ms: float = Field(0.5, ge=0, description="fixed time per request (ms)")
    jitter_cv: float = Field(0.05, ge=0, le=2, description="coefficient of variation of latency")
    cache_speedup: float | None = Field(
        None, ge=1.0, le=1000.0, description="output cache: hits this many times faster, not ~free"
    )
    seed: int = Field(0, description="seed of the mock's jitter and faults")
    model: str = Field("mock-llm", description="model name the mock serves")
    faults: FaultConfig = Field(default_factory=FaultConfig)
    behaviour: BehaviourConfig = Field(default_factory=BehaviourConfig)
    misbehaviour: MisbehaviourConfig = Field(default_factory=MisbehaviourConfig)


class AuditConfig(_Strict):
    """The sections every audit run shares. The run config (`auditkit.audits.config_model`)
    adds one block per registered audit, which that audit owns."""

    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    load: LoadConfig = Field(default_factory=LoadConfig)
    mock: MockConfig = Field(default_factory=MockConfig)
    output_dir: str = Field(
        "auditkit-out", description="artifacts folder: <output_dir>/<TEST>/ (+ audit/)"
    )
    overwrite: bool = Field(
        False,
        description="remove an earlier run of this audit in output_dir (without it the earlier "
        "run moves to <output_dir>/previous/: two runs never mix, nothing is lost)",
    )
    decision: Literal["auditkit", "upstream"] = Field(
        "auditkit",
        description="which verdict sets the exit code: auditkit's decision (with its certainty) "
        "or the upstream MLPerf rule alone",
    )

    def redacted(self) -> dict[str, Any]:
        """A JSON-able dump with secret-looking headers masked (for config.yaml and logs)."""
        data = self.model_dump(mode="json")
        data["endpoint"]["headers"] = redact_headers(data["endpoint"]["headers"])
        return data


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """Mask values of headers named like credentials."""
    return {k: (REDACTED if SECRET_HEADER.search(k) else v) for k, v in headers.items()}


def secret_values(headers: Mapping[str, str]) -> list[str]:
    """The values (and bare tokens of `Bearer <token>` values) of credential-named headers:
    what `redact_text` must scrub from text an endpoint sends back."""
    out: set[str] = set()
    for name, value in headers.items():
        if not SECRET_HEADER.search(name) or not value:
            continue
        out.add(value)
        scheme, _, token = value.partition(" ")
        if token and scheme.lower() in ("bearer", "basic", "token"):
            out.add(token.strip())
    # longest first, so a token inside its "Bearer <token>" value is not half-replaced
    return sorted((v for v in out if len(v) >= 4), key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value replaced by REDACTED (an endpoint may echo the key back
    in an error body, which would otherwise land in records, logs and notebooks)."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
        # a snippet cut at a length limit may end inside a secret: mask that tail as well
        for k in range(len(secret) - 1, 3, -1):
            if text.endswith(secret[:k]):
                text = text[: len(text) - k] + REDACTED
                break
    return text


def validated(model: type[ModelT], data: Any, source: str) -> ModelT:
    """`data` validated into `model`; InputError with one line (`format_validation_error`)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str = "config") -> str:
    """One line naming the first bad field, what is wrong, and (for extras) what is allowed."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(root)"
    kind = first["type"]
    if kind == "extra_forbidden":
        msg = "unknown key"
    elif kind == "missing":
        msg = "required value is missing"
    else:
        msg = first["msg"].removeprefix("Value error, ")
    more = f" (+{len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{more}"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from `path` (InputError with file and line on bad YAML)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{p}: config file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: config file is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InputError(f"{p}:{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(
            f"{p}: top level must be a mapping of sections (endpoint, dataset, load, …)"
        )
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return base with override's keys applied recursively (override wins)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
