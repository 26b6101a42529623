"""Checks before any phase runs: output dir writable, endpoint answering, model present.

Uses httpx (the client users know: same headers, TLS settings); failures are SetupError (3).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from auditkit.config import EndpointConfig
from auditkit.errors import InputError, SetupError


def check_output_dir(path: str | Path) -> Path:
    """Create the output dir if needed and prove it is writable."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".auditkit-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SetupError(f"output dir {p} is not writable ({exc.strerror or exc})") from None
    return p


def _client(cfg: EndpointConfig, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(
        headers=headers,
        timeout=httpx.Timeout(min(cfg.timeout_s, 30.0), connect=cfg.connect_timeout_s),
        verify=cfg.verify_tls,
        trust_env=False,
        follow_redirects=False,
    )


def _describe(exc: httpx.HTTPError) -> str:
    text = " ".join(str(exc).split())
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"TLS certificate not trusted ({text[:160]}); fix the certificate or, knowingly, "
            "set endpoint.verify_tls: false (--insecure)"
        )
    if "SSL" in text or "TLS" in text:
        return f"TLS handshake failed ({text[:160]}); is the endpoint really https://?"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{text[:160]}; is this port an HTTP server?"
    return text[:200] or type(exc).__name__


@dataclass
class _Answer:
    status_code: int
    headers: httpx.Headers
    body: bytes


def _get(cfg: EndpointConfig, headers: dict[str, str], url: str) -> _Answer:
    """GET url with a body bounded by endpoint.max_response_bytes (a hostile endpoint must not
    exhaust memory in pre-flight either)."""
    with _client(cfg, headers) as client, client.stream("GET", url) as resp:
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > cfg.max_response_bytes:
                raise SetupError(
                    f"endpoint {url} answered more than endpoint.max_response_bytes "
                    f"({cfg.max_response_bytes}) bytes"
                )
            chunks.append(chunk)
        return _Answer(resp.status_code, resp.headers, b"".join(chunks))


def key_refused(
    base_url: str, status: int, api_key_env: str | None, headers: dict[str, str]
) -> str:
    """One line for an HTTP 401/403 from the endpoint: no key sent, or which key was refused."""
    sent = any(name.lower() == "authorization" for name in headers)
    if not sent:
        return (
            f"endpoint {base_url} wants an API key (HTTP {status}) and no key was sent; export "
            "it in an environment variable and pass its NAME: --api-key-env NAME (notebooks: "
            "api_key_env)"
        )
    where = f"${api_key_env}" if api_key_env else "the Authorization header"
    return (
        f"endpoint {base_url} refused the key in {where} (HTTP {status}); check its value "
        "(and that it is meant for this endpoint)"
    )


def discover_model(cfg: EndpointConfig, base_url: str, headers: dict[str, str]) -> str:
    """Check the endpoint answers; return cfg.model, or the first model from GET /v1/models."""
    if cfg.api == "json":
        try:
            _get(cfg, headers, base_url + "/")
        except httpx.HTTPError as exc:
            raise SetupError(f"endpoint {base_url} is unreachable: {_describe(exc)}") from None
        return cfg.model or "default"
    url = base_url + "/v1/models"
    try:
        resp = _get(cfg, headers, url)
    except httpx.HTTPError as exc:
        raise SetupError(f"endpoint {base_url} is unreachable: {_describe(exc)}") from None
    if resp.status_code in (401, 403):
        raise SetupError(key_refused(base_url, resp.status_code, cfg.api_key_env, headers))
    if 300 <= resp.status_code < 400:
        where = resp.headers.get("location", "?")
        raise SetupError(f"endpoint {url} redirects to {where}; use the final URL")
    models: list[str] = []
    if resp.status_code == 200:
        try:
            data = json.loads(resp.body).get("data", [])
            models = [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]
        except (ValueError, AttributeError, TypeError):
            models = []
    if cfg.model:
        if models and cfg.model not in models:
            raise SetupError(
                f"model {cfg.model!r} is not served by {base_url} (it lists: "
                f"{', '.join(models[:5])})"
            )
        return cfg.model
    if not models:
        raise InputError(
            f"could not discover a model from {url} (HTTP {resp.status_code}); set endpoint.model"
        )
    return models[0]
