"""What a mock server may serve from cache, and what it remembers: the `cache` modes of
MockConfig as policies (none, output, prefix). A partial or probabilistic cache is one more class.

Pure: no I/O, no asyncio.
"""

from __future__ import annotations

from typing import Protocol

from auditkit.mock.latency import LruCache
from auditkit.mock.protocol import Job


class CachePolicy(Protocol):
    """What the server may serve from cache, and what it remembers."""

    def output(self, job: Job) -> list[str] | None:
        """A stored answer served without compute, or None."""
        ...

    def prefix(self, job: Job) -> bool:
        """True when the prompt's KV is cached (its prefill is skipped)."""
        ...

    def prefilled(self, job: Job) -> None:
        """The job's prefill is done (its prompt is now in the KV cache)."""
        ...

    def completed(self, job: Job, words: list[str]) -> None:
        """The job's answer is complete."""
        ...


class NoCache:
    """Every request is computed."""

    def output(self, job: Job) -> list[str] | None:
        return None

    def prefix(self, job: Job) -> bool:
        return False

    def prefilled(self, job: Job) -> None:
        pass

    def completed(self, job: Job, words: list[str]) -> None:
        pass


class OutputCache(NoCache):
    """A whole-response cache keyed by (endpoint, model, prompt, max_tokens)."""

    def __init__(self) -> None:
        self._answers: LruCache[tuple[object, ...], list[str]] = LruCache()

    def output(self, job: Job) -> list[str] | None:
        return self._answers.get(job.cache_key)

    def completed(self, job: Job, words: list[str]) -> None:
        self._answers.put(job.cache_key, words)


class PrefixCache(NoCache):
    """A KV cache of whole prompts: a repeat skips prefill; the output is recomputed."""

    def __init__(self) -> None:
        self._prompts: LruCache[tuple[object, ...], bool] = LruCache()

    def prefix(self, job: Job) -> bool:
        return job.prompt_key in self._prompts

    def prefilled(self, job: Job) -> None:
        self._prompts.put(job.prompt_key, True)


def cache_policy(mode: str) -> CachePolicy:
    """The policy for MockConfig.cache ("none", "output" or "prefix")."""
    policies: dict[str, type[NoCache]] = {
        "none": NoCache,
        "output": OutputCache,
        "prefix": PrefixCache,
    }
    return policies[mode]()
