"""Base URLs as users write them → the base auditkit's API paths are joined to."""

from __future__ import annotations

#: the API flavours whose request paths start with /v1 (openai.py's adapters, GET /v1/models)
V1_APIS = ("openai-completions", "openai-chat")


def base_url(url: str, api: str) -> str:
    """`url` without a trailing slash and, for the OpenAI APIs, without a final `/v1`.

    The OpenAI client takes `base_url="http://host:8000/v1"`; auditkit's paths carry the `/v1`
    themselves, so that habit would request `/v1/v1/models`. A proxy prefix stays:
    `https://host/openai/v1/` → `https://host/openai`. The json API's paths are the user's own
    (`request_path`), so its URL is kept as given.
    """
    base = url.rstrip("/")
    if api in V1_APIS and base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base
