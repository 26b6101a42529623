"""The mock's request protocol: OpenAI completions/chat (and /generate) bodies parsed into a Job.

Pure: no I/O, no asyncio. Plain dict checks rather than pydantic, because this runs once per
request on the mock's hot path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from auditkit.mock.latency import DEFAULT_MAX_TOKENS, clamp_output_tokens, count_tokens

#: Which API a request came in on; decides the body's shape and the answer's.
Kind = Literal["completions", "chat", "generate"]


class BadRequest(Exception):
    """A request the mock refuses; carries the HTTP status and the OpenAI error `code`."""

    def __init__(self, message: str, code: str = "invalid_request", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class Job:
    """One parsed generation request."""

    kind: Kind
    model: str
    seed_text: str  # what the output is derived from (chat: roles and contents)
    cache_key: tuple[object, ...]  # (endpoint, model, prompt/messages, max_tokens)
    prompt_key: tuple[object, ...]  # prefix-cache key: (model, prompt/messages)
    prompt_tokens: int
    output_tokens: int
    temperature: float
    stream: bool
    logprobs: bool = False  # list each output token in `logprobs` (OpenAI's option)
    #: who asked (the API key the server saw, else the body's `user`): a per-client cache's key
    client: str | None = None


def decode_body(raw: bytes) -> Any:
    """The JSON value of a request body, or BadRequest (400 invalid_json)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON", "invalid_json") from None


def parse_job(kind: Kind, body: Any, default_model: str) -> Job:
    """Validate a decoded request body into a Job, raising BadRequest (400) on bad input."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", "invalid_json")
    model = body.get("model")
    if model is None or kind == "generate":
        model = default_model
    if not isinstance(model, str):
        raise BadRequest("model must be a string", "invalid_value")
    # Chat's newer name for the same limit wins when both are present.
    max_tokens = int_field(body, "max_tokens", DEFAULT_MAX_TOKENS)
    if kind == "chat":
        max_tokens = int_field(body, "max_completion_tokens", max_tokens)
    temperature = float_field(body, "temperature", 1.0)  # OpenAI's default
    stream = bool_field(body, "stream") if kind != "generate" else False
    if kind == "chat":
        messages = chat_messages(body)
        prompt_text = "\n".join(content for _, content in messages)
        seed_text = "\x1e".join(f"{role}\x1f{content}" for role, content in messages)
        prompt_id: object = tuple(messages)
    else:
        prompt_text = seed_text = completion_prompt(body)
        prompt_id = prompt_text
    return Job(
        kind=kind,
        model=model,
        seed_text=seed_text,
        cache_key=(kind, model, prompt_id, max_tokens),
        prompt_key=(model, prompt_id),
        prompt_tokens=count_tokens(prompt_text),
        output_tokens=clamp_output_tokens(max_tokens),
        temperature=temperature,
        stream=stream,
        # completions ask with a count (0 included), chat with true
        logprobs=kind != "generate"
        and body.get("logprobs") is not None
        and body.get("logprobs") is not False,
        client=body["user"] if isinstance(body.get("user"), str) else None,
    )


def parse_request(kind: Kind, raw: bytes, served_model: str) -> Job:
    """A raw request body into a Job for this server's model (BadRequest 400, or 404 for an
    unknown model)."""
    job = parse_job(kind, decode_body(raw), served_model)
    if job.model != served_model:
        raise BadRequest(
            f"The model `{job.model}` does not exist (this server has `{served_model}`)",
            "model_not_found",
            404,
        )
    return job


# ---------------------------------------------------------------------------------------------
# field helpers


def int_field(body: dict[str, Any], name: str, default: int) -> int:
    """A positive integer field (absent/null: `default`)."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{name} must be a positive integer (got {value!r})", "invalid_value")
    return value


def float_field(body: dict[str, Any], name: str, default: float) -> float:
    """A number >= 0 (absent/null: `default`)."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BadRequest(f"{name} must be a number >= 0 (got {value!r})", "invalid_value")
    return float(value)


def bool_field(body: dict[str, Any], name: str) -> bool:
    """A JSON boolean (absent/null: False)."""
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false (got {value!r})", "invalid_value")
    return value


def completion_prompt(body: dict[str, Any]) -> str:
    """The completions `prompt`: a string, a one-string list, or a list of token ids."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        # Pre-tokenized prompt: one word per token id keeps the token count exact.
        return " ".join(str(t) for t in prompt)
    raise BadRequest("prompt must be a string (or a list of token ids)", "invalid_prompt")


def message_text(content: Any) -> str:
    """A chat message's text: a string, or the text parts of an OpenAI content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # Keep the text parts, ignore the rest (images, audio).
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "\n".join(t for t in parts if isinstance(t, str))
    raise BadRequest("message content must be a string or a list of parts", "invalid_messages")


def chat_messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Chat `messages` as (role, text) pairs."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", "invalid_messages")
    out: list[tuple[str, str]] = []
    for msg in messages:
        if not isinstance(msg, dict):
            raise BadRequest("each message must be an object", "invalid_messages")
        role = msg.get("role", "user")
        out.append((role if isinstance(role, str) else str(role), message_text(msg.get("content"))))
    return out
