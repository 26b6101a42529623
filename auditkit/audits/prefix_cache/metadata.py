"""Metadata evidence beside timing: the cached tokens the server reports per response
(`usage.prompt_tokens_details.cached_tokens`, llama.cpp's `timings.cache_n`), and its
Prometheus counters read before and after each procedure, parsed with prometheus_client's
text parser. Pure (text in, numbers out)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

#: counters of prompt tokens served from a prefix cache (or of cache hits), by server; a name
#: matches with or without the `_total` suffix prometheus_client strips from counters
REUSE_COUNTERS = (
    "llamacpp:prompt_tokens_cached",  # llama.cpp server
    "vllm:prefix_cache_hits",  # vLLM V1 (tokens)
    "vllm:gpu_prefix_cache_hits",  # vLLM (tokens)
    "sglang:cached_tokens",  # SGLang
)
#: SGLang reports a hit rate (a gauge) rather than a counter
HIT_RATE_GAUGES = ("sglang:cache_hit_rate",)


def reuse_counters(text: str) -> dict[str, float]:
    """The reuse counters in one Prometheus text (summed over their label sets); {} when the
    text is empty, unparsable or has none."""
    out: dict[str, float] = {}
    if not text:
        return out
    wanted = {name.removesuffix("_total") for name in REUSE_COUNTERS + HIT_RATE_GAUGES}
    try:
        for family in text_string_to_metric_families(text):
            name = family.name.removesuffix("_total")
            if name not in wanted:
                continue
            for sample in family.samples:
                if sample.name.endswith(("_created", "_bucket", "_count", "_sum")):
                    continue
                out[name] = out.get(name, 0.0) + float(sample.value)
    except ValueError:
        return {}
    return out


def counter_deltas(scrapes: Iterable[tuple[int, str, str]]) -> dict[int, float]:
    """Per group: how much the reuse counters rose between before and after (groups whose
    scrapes have no reuse counter are left out)."""
    out: dict[int, float] = {}
    for group, before, after in scrapes:
        b, a = reuse_counters(before), reuse_counters(after)
        counters = [n for n in a if n in b and n not in HIT_RATE_GAUGES]
        if counters:
            out[group] = sum(a[n] - b[n] for n in counters)
    return out


def reuse_shown(hit: list[float], miss: list[float], shared_tokens: float) -> bool | None:
    """Whether per-procedure reuse numbers (cached tokens, counter deltas) show a prefix
    reused: the hits' median reaches half the shared prefix and the misses' does not (a few
    template tokens any prompt shares stay far below it). None: no numbers to judge."""
    if not hit or not miss:
        return None
    half = 0.5 * shared_tokens
    return statistics.median(hit) >= half > statistics.median(miss)
