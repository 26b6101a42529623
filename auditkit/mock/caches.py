"""What a mock server may serve from cache, and what it remembers: the `cache` modes of
MockConfig as policies (none, output, prefix, last-prompt, kv-prefix), with the output-cache
options real caches have (`MockConfig.behaviour`: admission, TTL, normalised keys, partial,
prepopulated).

Pure: no I/O, no asyncio. Time (for TTLs) comes from the caller as `now`, in seconds on the
server's clock: the served mock's monotonic clock, or a simulated server's virtual one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from auditkit.config import BehaviourConfig
from auditkit.mock.latency import LruCache, generate_words
from auditkit.mock.protocol import BadRequest, Job, Kind, parse_job

Key = tuple[object, ...]


class CachePolicy(Protocol):
    """What the server may serve from cache, and what it remembers."""

    def output(self, job: Job, now: float) -> list[str] | None:
        """A stored answer served without compute, or None (called once per request)."""
        ...

    def prefix(self, job: Job) -> bool:
        """True when the prompt's KV is cached (its prefill is skipped)."""
        ...

    def prefilled(self, job: Job) -> None:
        """The job's prefill is done (its prompt is now in the KV cache)."""
        ...

    def completed(self, job: Job, words: list[str], now: float) -> None:
        """The job's answer is complete."""
        ...

    def reused_tokens(self, job: Job) -> int:
        """Prompt tokens whose KV is cached (their prefill is skipped; all of them on a hit)."""
        ...

    def reports_reuse(self) -> bool:
        """Whether usage.prompt_tokens_details.cached_tokens tells the reuse (False: it lies)."""
        ...


class NoCache:
    """Every request is computed."""

    def reused_tokens(self, job: Job) -> int:
        return job.prompt_tokens if self.prefix(job) else 0

    def reports_reuse(self) -> bool:
        return True

    # the Cache protocol's signatures
    def output(self, job: Job, now: float) -> list[str] | None:  # noqa: ARG002
        return None

    def prefix(self, job: Job) -> bool:  # noqa: ARG002
        return False

    def prefilled(self, job: Job) -> None:
        pass

    def completed(self, job: Job, words: list[str], now: float) -> None:
        pass


def normalize_key(key: Key) -> Key:
    """`key` with every string case-folded and its whitespace runs collapsed to one space."""
    return tuple(_normal(part) for part in key)


def _normal(value: object) -> object:
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, tuple):
        return tuple(_normal(part) for part in value)
    return value


def _same(key: Key) -> Key:
    return key


#: a leading `[...]` tag (auditkit's salt is one): a server that read auditkit's source strips it
_TAG = re.compile(r"^\s*\[[^\]]*\]\s*")


def strip_tag_key(key: Key) -> Key:
    """`key` with a leading `[...]` tag removed from every string (a tag-blind cache)."""
    return tuple(_map_strings(part, lambda s: _TAG.sub("", s)) for part in key)


def words_key(key: Key) -> Key:
    """`key` with every string reduced to its set of words, tag removed and case folded (a
    semantic cache: any prompt with the same words hits, whatever their order)."""
    return tuple(
        _map_strings(part, lambda s: " ".join(sorted(set(_TAG.sub("", s).casefold().split()))))
        for part in key
    )


def _map_strings(value: object, f: Callable[[str], str]) -> object:
    if isinstance(value, str):
        return f(value)
    if isinstance(value, tuple):
        return tuple(_map_strings(part, f) for part in value)
    return value


#: BehaviourConfig.cache_key → the key function
KEYS: dict[str, Callable[[Key], Key]] = {
    "exact": _same,
    "strip_tag": strip_tag_key,
    "words": words_key,
}


@dataclass(frozen=True, slots=True)
class _Answer:
    words: list[str]
    stored_at: float


class OutputCache(NoCache):
    """A whole-response cache keyed by (endpoint, model, prompt, max_tokens), as nginx
    `proxy_cache`, Varnish or LiteLLM's cache in front of a model.

    Options (all off by default): `admit_after` n stores an answer once its key has been asked
    n times (nginx `proxy_cache_min_uses`); `ttl_s` expires entries that long after they were
    stored; `normalize` keys ignore case and repeated whitespace; `key` "strip_tag" drops a
    leading `[...]` tag, "words" keeps a prompt's set of words (see `KEYS`); `miss_every` n
    computes every n-th request that finds its answer stored again (a partial cache);
    `prepopulated` jobs are held from `started` on, answered as their greedy computation
    would be, whatever max_tokens a request asks; `stores` False remembers nothing new (a
    fixed table of those answers).
    """

    def __init__(
        self,
        *,
        admit_after: int = 1,
        ttl_s: float | None = None,
        normalize: bool = False,
        key: str = "exact",
        miss_every: int = 0,
        prepopulated: Iterable[Job] = (),
        started: float = 0.0,
        stores: bool = True,
    ) -> None:
        self.admit_after = admit_after
        self.ttl_s = ttl_s
        self.miss_every = miss_every
        self.started = started
        self.stores = stores
        keyed = KEYS[key]
        self._key = (lambda k: normalize_key(keyed(k))) if normalize else keyed
        self._answers: LruCache[Key, _Answer] = LruCache()
        self._asked: LruCache[Key, int] = LruCache()  # per key, for admission
        self._found: LruCache[Key, int] = LruCache()  # per key, for the partial cache
        # prompt → the text its answer is generated from (a dataset's size: not bounded)
        self._held: dict[Key, str] = {self._key(j.prompt_key): j.seed_text for j in prepopulated}

    def output(self, job: Job, now: float) -> list[str] | None:
        key = self._key(job.cache_key)
        if self.admit_after > 1:
            self._asked.put(key, (self._asked.get(key) or 0) + 1)
        words = self._find(job, key, now)
        if words is None or self.miss_every == 0:
            return words
        found = (self._found.get(key) or 0) + 1
        self._found.put(key, found)
        return None if found % self.miss_every == 0 else words

    def completed(self, job: Job, words: list[str], now: float) -> None:
        if not self.stores:
            return
        key = self._key(job.cache_key)
        # Counted when the answer arrives, as nginx does: concurrent misses of a key admitted
        # meanwhile are stored too.
        if self.admit_after > 1 and (self._asked.get(key) or 0) < self.admit_after:
            return
        self._answers.put(key, _Answer(words, now))

    def _find(self, job: Job, key: Key, now: float) -> list[str] | None:
        answer = self._answers.get(key)
        if answer is not None:
            if not self._expired(answer.stored_at, now):
                return answer.words
            self._answers.pop(key)
        if self._held:
            seed = self._held.get(self._key(job.prompt_key))
            if seed is not None and not self._expired(self.started, now):
                return generate_words(seed, job.output_tokens)
        return None

    def _expired(self, stored_at: float, now: float) -> bool:
        return self.ttl_s is not None and now - stored_at >= self.ttl_s


class PrefixCache(NoCache):
    """A KV cache of whole prompts (llama.cpp's prompt cache, vLLM's prefix caching): a repeat
    skips prefill; the output is recomputed. `prepopulated` prompts are cached from the start."""

    def __init__(self, prepopulated: Iterable[Job] = ()) -> None:
        self._prompts: LruCache[Key, bool] = LruCache()
        for job in prepopulated:
            self._prompts.put(job.prompt_key, True)

    def prefix(self, job: Job) -> bool:
        return job.prompt_key in self._prompts

    def prefilled(self, job: Job) -> None:
        self._prompts.put(job.prompt_key, True)


class LastPromptCache(NoCache):
    """The KV of the previous prompt only (llama.cpp's slot KV, llama-cpp-python): a prompt
    skips prefill when it repeats the one computed just before it. Back-to-back repeats hit;
    interleaved ones (A, B, A, …) never do."""

    def __init__(self) -> None:
        self._last: Key | None = None

    def prefix(self, job: Job) -> bool:
        return job.prompt_key == self._last

    def prefilled(self, job: Job) -> None:
        self._last = job.prompt_key


class BlockPrefixCache(NoCache):
    """The KV of prompt prefixes in whole blocks, as vLLM's and SGLang's prefix caching: a
    prompt reuses its longest cached prefix of whole `block` tokens (a 95 % shared prefix
    reuses 95 % rounded down to a block), and only computes the rest.

    `per_client` keeps one cache per client (`Job.client`: the API key, else the body's `user`;
    what a provider that isolates its users does), else one for everyone (a cross-user leak).
    `capacity_tokens` bounds what it holds: the least recently used blocks go first.
    `hide` reports cached_tokens 0 while reusing (a server whose metadata lies).
    Tokens are the mock's (whitespace words); a block is keyed by the hash chain of every
    token up to its end, so a block hits only after the same whole prefix.
    """

    def __init__(
        self,
        *,
        block: int = 16,
        capacity_tokens: int = 1_000_000,
        per_client: bool = False,
        hide: bool = False,
    ) -> None:
        self.block = block
        self.per_client = per_client
        self.hide = hide
        self._blocks: LruCache[Key, bool] = LruCache(max(1, capacity_tokens // block))

    def _chain(self, job: Job) -> list[Key]:
        scope = job.client if self.per_client else None
        tokens = job.seed_text.split()
        keys: list[Key] = []
        running = hash((scope, job.model))
        for end in range(self.block, len(tokens) + 1, self.block):
            running = hash((running, tuple(tokens[end - self.block : end])))
            keys.append((scope, job.model, end, running))
        return keys

    def reused_tokens(self, job: Job) -> int:
        hit = 0
        for key in self._chain(job):
            if self._blocks.get(key) is None:
                break
            hit += self.block
        return min(hit, job.prompt_tokens)

    def prefix(self, job: Job) -> bool:
        return self.reused_tokens(job) >= job.prompt_tokens > 0

    def prefilled(self, job: Job) -> None:
        for key in self._chain(job):
            self._blocks.put(key, True)

    def reports_reuse(self) -> bool:
        return not self.hide


def prepopulated_jobs(requests: Iterable[tuple[Kind, Mapping[str, Any]]], model: str) -> list[Job]:
    """Request bodies (kind, body) as the Jobs a cache holds at start; bodies the mock would
    refuse are left out."""
    jobs: list[Job] = []
    for kind, body in requests:
        try:
            jobs.append(parse_job(kind, dict(body), model))
        except BadRequest:
            continue
    return jobs


def cache_policy(
    mode: str,
    behaviour: BehaviourConfig | None = None,
    *,
    prepopulated: Iterable[Job] = (),
    started: float = 0.0,
) -> CachePolicy:
    """The policy for MockConfig.cache ("none", "output", "prefix", "last-prompt", "kv-prefix";
    its options in `behaviour.kv_*`) with the
    output-cache options of `behaviour`. `prepopulated` jobs are cached from time `started`;
    with mode "none" they make a fixed output cache of just those answers."""
    options = behaviour if behaviour is not None else BehaviourConfig()
    held = list(prepopulated)
    if mode == "prefix":
        return PrefixCache(held)
    if mode == "last-prompt":
        return LastPromptCache()
    if mode == "kv-prefix":
        return BlockPrefixCache(
            block=options.kv_block_tokens,
            capacity_tokens=options.kv_capacity_tokens,
            per_client=options.kv_scope == "per-client",
            hide=options.kv_hide_cached,
        )
    if mode == "output" or held:
        return OutputCache(
            admit_after=options.cache_admit_after,
            ttl_s=options.cache_ttl_s,
            normalize=options.cache_normalize,
            key=options.cache_key,
            miss_every=options.cache_miss_every,
            prepopulated=held,
            started=started,
            stores=mode == "output",
        )
    if mode != "none":
        raise ValueError(f"unknown cache mode {mode!r}")
    return NoCache()
