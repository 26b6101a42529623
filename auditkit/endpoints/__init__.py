"""Endpoint adapters, one per API flavour."""

from __future__ import annotations

from auditkit.config import EndpointConfig
from auditkit.endpoints.base import EndpointAdapter
from auditkit.endpoints.base import ResponseError as ResponseError
from auditkit.endpoints.json_api import JsonAdapter
from auditkit.endpoints.openai import ChatAdapter, CompletionsAdapter
from auditkit.errors import InputError


def make_adapter(cfg: EndpointConfig, model: str) -> EndpointAdapter:
    """The adapter for cfg.api, with the resolved model name."""
    if cfg.api == "openai-completions":
        adapter: EndpointAdapter = CompletionsAdapter(
            model, cfg.max_tokens, cfg.temperature, cfg.streams, cfg.logprobs
        )
    elif cfg.api == "openai-chat":
        adapter = ChatAdapter(model, cfg.max_tokens, cfg.temperature, cfg.streams, cfg.logprobs)
    else:
        if cfg.streams:
            raise InputError("endpoint.stream is not supported with api json; set stream: false")
        assert cfg.body_template is not None
        adapter = JsonAdapter(cfg.body_template, cfg.path or "/generate", cfg.response_text_path)
    if cfg.path and cfg.api != "json":
        adapter.path = cfg.path
    return adapter
