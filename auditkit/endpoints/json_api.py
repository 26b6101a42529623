"""A generic JSON API: a request-body template and a dotted path to the output text."""

from __future__ import annotations

import json
from typing import Any

from auditkit.data import Sample
from auditkit.endpoints.base import ParsedResponse, ResponseError

PLACEHOLDER = "{prompt}"


def fill_template(template: Any, prompt: str) -> Any:
    """Replace "{prompt}" inside every string of the template (structure preserved)."""
    if isinstance(template, str):
        return template.replace(PLACEHOLDER, prompt)
    if isinstance(template, dict):
        return {k: fill_template(v, prompt) for k, v in template.items()}
    if isinstance(template, list):
        return [fill_template(v, prompt) for v in template]
    return template


def dig(obj: Any, dotted: str) -> Any:
    """Follow a dotted path (list indices allowed: choices.0.text); None when absent."""
    for part in dotted.split("."):
        if isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
    return obj


class NoStreamParser:
    """The json api does not stream; never used, present to satisfy the protocol."""

    def feed(self, data: str) -> bool:  # noqa: ARG002 (the protocol's signature)
        raise ResponseError("the json api does not stream")

    def finish(self) -> ParsedResponse:
        raise ResponseError("the json api does not stream")


class JsonAdapter:
    """POST `path` with the filled template; text at `response_text_path`."""

    api = "json"

    def __init__(self, template: dict[str, Any], path: str, text_path: str) -> None:
        self.template = template
        self.path = path
        self.text_path = text_path
        self.stream = False

    def build_body(self, sample: Sample) -> bytes:
        return json.dumps(fill_template(self.template, sample.text)).encode()

    def parse_body(self, body: bytes) -> ParsedResponse:
        try:
            obj = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ResponseError(f"response is not JSON ({exc})") from None
        text = dig(obj, self.text_path)
        if not isinstance(text, str):
            raise ResponseError(f"response has no text at {self.text_path!r}")
        usage = dig(obj, "usage")
        prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        output = usage.get("completion_tokens") if isinstance(usage, dict) else None
        return ParsedResponse(text, prompt, output, None)

    def stream_parser(self) -> NoStreamParser:
        return NoStreamParser()
