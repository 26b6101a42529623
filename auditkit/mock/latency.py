"""The mock SUT's behaviour as pure functions: token counts, output text, latency, caches, faults.

No I/O and no asyncio: the HTTP layer (`app.py`) asks this module *what* to do (how long to sleep,
what to answer, which fault to inject) and then does it. Everything random comes from one
`random.Random(seed)` per server (owned by `LatencyModel`), so a run is reproducible given the
order in which requests arrive.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from auditkit.config import FaultConfig, MockConfig

#: Output length cap (the mock always generates exactly min(max_tokens, cap), like ignore_eos).
MAX_OUTPUT_TOKENS = 4096
#: OpenAI's default when a request does not say max_tokens.
DEFAULT_MAX_TOKENS = 16
#: Cost of an output-cache hit: no slot, no prefill, no decode, just a lookup.
CACHE_HIT_S = 0.0002
#: Streams group tokens into at most this many content chunks: sleeping per token would cost
#: CPU that the mock shares (GIL) with the client in tests.
MAX_STREAM_CHUNKS = 8
#: Bound on remembered prompts/outputs so a long run cannot grow memory without limit.
CACHE_CAPACITY = 10_000

FaultKind = Literal[
    "error", "hang", "reset", "malformed", "truncate", "stream_error", "slow_loris", "die"
]
#: Fault kinds drawn per request, in priority order (the first one drawn wins).
DRAWN_FAULTS: tuple[FaultKind, ...] = (
    "error",
    "hang",
    "reset",
    "malformed",
    "truncate",
    "stream_error",
    "slow_loris",
)
#: Faults that only make sense inside an SSE stream; non-streaming requests ignore them.
STREAM_ONLY_FAULTS: frozenset[FaultKind] = frozenset({"truncate", "stream_error"})
ALL_FAULTS: tuple[FaultKind, ...] = (*DRAWN_FAULTS, "die")

# 256 pronounceable pseudo-words (two syllables each); a fixed table keeps generation a cheap
# `rng.choices` call and makes every word exactly one whitespace token.
_SYLLABLES: tuple[str, ...] = (
    *("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi"),
    *("sha", "pe", "du", "ga", "fi", "ro", "be", "ly"),
)
VOCABULARY: tuple[str, ...] = tuple(a + b for a in _SYLLABLES for b in _SYLLABLES)


def count_tokens(text: str) -> int:
    """Prompt tokens as the mock counts them: whitespace-separated words."""
    return len(text.split())


def clamp_output_tokens(max_tokens: int) -> int:
    """Output tokens actually generated for a request asking for `max_tokens`."""
    return max(1, min(max_tokens, MAX_OUTPUT_TOKENS))


def generate_words(seed_text: str, n_tokens: int, nonce: int = 0) -> list[str]:
    """`n_tokens` pseudo-words, a pure function of (seed_text, nonce).

    nonce 0 models greedy decoding (same prompt → same text, and a shorter request is a prefix of
    a longer one); the server passes a per-request counter when temperature > 0.
    """
    # surrogatepass: JSON may legally carry lone surrogates, which plain UTF-8 refuses.
    digest = hashlib.sha256(seed_text.encode("utf-8", "surrogatepass")).digest()
    rng = random.Random(digest + nonce.to_bytes(8, "big"))
    return rng.choices(VOCABULARY, k=n_tokens)


def stream_plan(n_tokens: int) -> list[int]:
    """Tokens per content chunk of a stream: the first token alone (so TTFT is one decode step
    after prefill, as on a real server), the rest in at most MAX_STREAM_CHUNKS - 1 near-equal
    groups."""
    if n_tokens <= 0:
        return []
    rest = n_tokens - 1
    groups = min(rest, max(MAX_STREAM_CHUNKS - 1, 1))
    if groups == 0:
        return [1]
    size, extra = divmod(rest, groups)
    return [1] + [size + (1 if i < extra else 0) for i in range(groups)]


@dataclass(frozen=True, slots=True)
class Timing:
    """Sleep durations for one request (seconds), jitter already applied."""

    base_s: float
    prefill_s: float
    decode_per_token_s: float
    output_tokens: int

    @property
    def decode_s(self) -> float:
        """Time to decode all output tokens."""
        return self.decode_per_token_s * self.output_tokens


class LatencyModel:
    """Seeded latency and fault model of one mock server.

    Owns the server's single `random.Random(seed)`; callers must use it from one thread (the
    server's event loop), which is what keeps a run reproducible.
    """

    def __init__(self, cfg: MockConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        # Lognormal with mean 1 and coefficient of variation cv:
        # sigma² = ln(1 + cv²), mu = -sigma²/2  ⇒  E[X] = exp(mu + sigma²/2) = 1.
        self._sigma = math.sqrt(math.log1p(cfg.jitter_cv**2))
        self._mu = -0.5 * self._sigma**2

    def jitter(self) -> float:
        """One multiplicative jitter factor (1.0 without drawing when jitter_cv is 0)."""
        if self._sigma == 0.0:
            return 1.0
        return self.rng.lognormvariate(self._mu, self._sigma)

    def timing(
        self,
        prompt_tokens: int,
        output_tokens: int,
        *,
        prefix_hit: bool = False,
        reused_tokens: int = 0,
    ) -> Timing:
        """Durations for a request; a prefix-cache hit skips prefill (`reused_tokens` of it:
        that part), decode is unchanged."""
        factor = self.jitter()
        computed = 0 if prefix_hit else max(0, prompt_tokens - reused_tokens)
        prefill_us = computed * self.cfg.prefill_us_per_token
        return Timing(
            base_s=self.cfg.base_latency_ms * 1e-3 * factor,
            prefill_s=prefill_us * 1e-6 * factor,
            decode_per_token_s=self.cfg.decode_us_per_token * 1e-6 * factor,
            output_tokens=output_tokens,
        )

    def draw_fault(self, faults: FaultConfig, *, stream: bool) -> FaultKind | None:
        """The fault to inject into this request, if any.

        Every kind with a non-zero rate gets one draw per request (so the RNG sequence does not
        depend on which faults fired); the first kind drawn, in `DRAWN_FAULTS` order, wins.
        Kinds with rate 0 draw nothing, so enabling no faults leaves the jitter sequence intact.
        """
        chosen: FaultKind | None = None
        for kind in DRAWN_FAULTS:
            rate: float = getattr(faults, f"{kind}_rate")
            if rate > 0.0 and self.rng.random() < rate and chosen is None:
                if kind in STREAM_ONLY_FAULTS and not stream:
                    continue
                chosen = kind
        return chosen


K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry when full."""

    def __init__(self, capacity: int = CACHE_CAPACITY) -> None:
        self.capacity = capacity
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value for `key` (marking it recently used), or None."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Store `value`, evicting the oldest entry beyond capacity."""
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        """Forget `key` (if present)."""
        self._data.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)
