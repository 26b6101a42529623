"""OpenAI-compatible completions and chat completions, streamed (SSE) or not."""

from __future__ import annotations

import json
from typing import Any

from auditkit.data import Sample
from auditkit.endpoints.base import ParsedResponse, ResponseError


def _loads(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        snippet = body[:80] if isinstance(body, str) else body[:80].decode("utf-8", "replace")
        raise ResponseError(f"response is not JSON ({exc}): {snippet!r}") from None


def _error_message(obj: dict[str, Any]) -> str:
    err = obj.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)


def _logprob_tokens(choice: dict[str, Any]) -> list[str] | None:
    """The tokens a choice's `logprobs` lists (completions: `tokens`; chat: `content[].token`),
    or None."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    tokens = logprobs.get("tokens", logprobs.get("content"))
    if not isinstance(tokens, list):
        return None
    return [str(t.get("token", "")) if isinstance(t, dict) else str(t) for t in tokens]


def _usage(obj: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(prompt, completion, cached prompt tokens): OpenAI's `usage`, and llama.cpp's
    `timings.cache_n` for the cached tokens when `usage` does not say."""
    usage = obj.get("usage")
    timings = obj.get("timings")
    cache_n = timings.get("cache_n") if isinstance(timings, dict) else None
    cache_n = cache_n if isinstance(cache_n, int) else None
    if not isinstance(usage, dict):
        return None, None, cache_n
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return (
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        cached if cached is not None else cache_n,
    )


class _OpenAIBase:
    api = ""
    path = ""

    def __init__(
        self, model: str, max_tokens: int, temperature: float, stream: bool, logprobs: bool = False
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.stream = stream
        self.logprobs = logprobs

    def _common(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": self.stream,
        }
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        if self.logprobs:
            # completions take a count of alternatives, chat a flag; either lists every token
            body["logprobs"] = True if self.api == "openai-chat" else 0
        return body

    def _choice_text(self, choice: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def parse_body(self, body: bytes) -> ParsedResponse:
        obj = _loads(body)
        if not isinstance(obj, dict):
            raise ResponseError("response JSON is not an object")
        if "error" in obj:
            raise ResponseError(f"error object in response: {_error_message(obj)}")
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ResponseError("response has no choices")
        text = self._choice_text(choices[0])
        if text is None:
            raise ResponseError("response choice has no text")
        prompt, output, cached = _usage(obj)
        reason = choices[0].get("finish_reason")
        listed = _logprob_tokens(choices[0])
        return ParsedResponse(
            text,
            prompt,
            output,
            cached,
            finish_reason=reason if isinstance(reason, str) else None,
            logprob_tokens=None if listed is None else len(listed),
            logprob_texts=None if listed is None else tuple(listed),
        )

    def stream_parser(self) -> OpenAIStreamParser:
        return OpenAIStreamParser(self._delta_text)

    def _delta_text(self, choice: dict[str, Any]) -> str | None:
        raise NotImplementedError


class OpenAIStreamParser:
    """Accumulates streamed chunks; an error event or a missing [DONE] is a failure."""

    def __init__(self, delta_text: Any) -> None:
        self._delta_text = delta_text
        self._parts: list[str] = []
        self._done = False
        self._seen_content = False
        self._usage: tuple[int | None, int | None, int | None] = (None, None, None)
        self._finish: str | None = None
        self._logprobs: list[str] | None = None

    def feed(self, data: str) -> bool:
        if data.strip() == "[DONE]":
            self._done = True
            return False
        obj = _loads(data)
        if not isinstance(obj, dict):
            raise ResponseError("stream chunk is not a JSON object")
        if "error" in obj:
            raise ResponseError(f"error event in stream: {_error_message(obj)}")
        if obj.get("usage") or obj.get("timings"):
            # llama.cpp may send its timings in a chunk of their own: keep what each says
            new = _usage(obj)
            self._usage = (
                new[0] if new[0] is not None else self._usage[0],
                new[1] if new[1] is not None else self._usage[1],
                new[2] if new[2] is not None else self._usage[2],
            )
        first = False
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            text = self._delta_text(choice)
            if isinstance(choice.get("finish_reason"), str):
                self._finish = choice["finish_reason"]
            listed = _logprob_tokens(choice)
            if listed is not None:
                self._logprobs = (self._logprobs or []) + listed
            if text:
                self._parts.append(text)
                if not self._seen_content:
                    self._seen_content = first = True
        return first

    def finish(self) -> ParsedResponse:
        if not self._done:
            raise ResponseError("stream ended without [DONE] (truncated)")
        return ParsedResponse(
            "".join(self._parts),
            *self._usage,
            first_chunk=self._parts[0] if self._parts else None,
            finish_reason=self._finish,
            chunks=len(self._parts),
            logprob_tokens=None if self._logprobs is None else len(self._logprobs),
            logprob_texts=None if self._logprobs is None else tuple(self._logprobs),
        )


class CompletionsAdapter(_OpenAIBase):
    """POST /v1/completions with a prompt string."""

    api = "openai-completions"
    path = "/v1/completions"

    def build_body(self, sample: Sample) -> bytes:
        body = self._common()
        body["prompt"] = sample.text
        return json.dumps(body).encode()

    def _choice_text(self, choice: dict[str, Any]) -> str | None:
        text = choice.get("text")
        return text if isinstance(text, str) else None

    def _delta_text(self, choice: dict[str, Any]) -> str | None:
        return self._choice_text(choice)


class ChatAdapter(_OpenAIBase):
    """POST /v1/chat/completions with messages (a prompt becomes one user message)."""

    api = "openai-chat"
    path = "/v1/chat/completions"

    def build_body(self, sample: Sample) -> bytes:
        body = self._common()
        if sample.messages is not None:
            body["messages"] = list(sample.messages)
        else:
            body["messages"] = [{"role": "user", "content": sample.prompt}]
        return json.dumps(body).encode()

    def _choice_text(self, choice: dict[str, Any]) -> str | None:
        message = choice.get("message")
        if not isinstance(message, dict):
            return None
        content = message.get("content")
        return content if isinstance(content, str) else None

    def _delta_text(self, choice: dict[str, Any]) -> str | None:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return None
        # reasoning models stream their thinking first; it is the first output token too
        for key in ("content", "reasoning_content", "reasoning"):
            value = delta.get(key)
            if isinstance(value, str) and value:
                return value
        return None
