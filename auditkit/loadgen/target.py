"""Where a phase sends its requests and with which limits: `HttpTarget` and the API key lookup."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from auditkit.config import EndpointConfig, redact_headers, secret_values
from auditkit.errors import InputError


def resolve_api_key(cfg: EndpointConfig) -> str | None:
    """The API key from the environment variable *named* by cfg.api_key_env."""
    if cfg.api_key_env is None:
        return None
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise InputError(
            f"environment variable {cfg.api_key_env} (named by endpoint.api_key_env) is not set; "
            "export it with the API key"
        )
    return key


@dataclass(frozen=True)
class HttpTarget:
    """Connection settings for the hot path (the key lives only in memory, in `headers`)."""

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    verify_tls: bool = True
    timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    max_response_bytes: int = 16 * 1024 * 1024
    #: open a phase's connections with GET /v1/models before its clock starts
    warm_connections: bool = True
    #: the HTTP client: "auto" (h1 for http://, aiohttp for https://), "h1" or "aiohttp"
    http_client: str = "auto"

    @classmethod
    def from_config(cls, cfg: EndpointConfig, base_url: str, api_key: str | None) -> HttpTarget:
        """The target for an endpoint config: its headers plus ours, and its limits."""
        headers = {"Content-Type": "application/json", **cfg.headers}
        # no User-Agent unless configured: the client's own then goes out, and nothing names
        # auditkit (a cache that recognised the audit could switch itself off)
        if cfg.user_agent:
            headers["User-Agent"] = cfg.user_agent
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return cls(
            base_url=base_url.rstrip("/"),
            headers=headers,
            verify_tls=cfg.verify_tls,
            timeout_s=cfg.timeout_s,
            connect_timeout_s=cfg.connect_timeout_s,
            max_response_bytes=cfg.max_response_bytes,
            warm_connections=cfg.connection_warmup,
            http_client=cfg.http_client,
        )

    def redacted_headers(self) -> dict[str, str]:
        """The headers with credential values masked (safe to write into phase.json)."""
        return redact_headers(dict(self.headers))

    def secrets(self) -> list[str]:
        """Credential values sent with every request: scrubbed from any stored error text."""
        return secret_values(self.headers)

    def settings(self) -> dict[str, float | int | bool]:
        """The request limits in force (recorded in phase.json beside the headers)."""
        return {
            "timeout_s": self.timeout_s,
            "connect_timeout_s": self.connect_timeout_s,
            "max_response_bytes": self.max_response_bytes,
            "verify_tls": self.verify_tls,
        }
