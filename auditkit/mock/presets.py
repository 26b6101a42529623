"""Named mock configurations, one per server behaviour the caching investigation tells apart
(the widget's mock menu, the investigation benchmark's rows, the probe tests)."""

from __future__ import annotations

from typing import Any

#: name → (MockConfig fields, the cache kind a correct diagnosis names)
PRESETS: dict[str, tuple[dict[str, Any], str]] = {
    "no cache": ({}, "none"),
    "response cache": ({"cache": "output"}, "response cache"),
    "prefix cache": ({"cache": "prefix"}, "prefix cache"),
    "coalescing": ({"behaviour": {"coalesce": True}}, "request coalescing"),
    "partial cache": ({"cache": "output", "behaviour": {"cache_miss_every": 2}}, "response cache"),
    "last-prompt cache": ({"cache": "last-prompt"}, "prefix cache"),
    "same text at T>0": ({"behaviour": {"same_output": True}}, "none"),
}

#: the latency model the investigation runs its mocks with (the widget's embedded mock, the
#: benchmark): requests of ~10-25 ms, long enough that a busy client's scheduling does not
#: swallow a stream's decode time, with a prefill worth skipping (~40 % of a TEST04 query)
INVESTIGATION_LATENCY: dict[str, Any] = {
    "base_latency_ms": 0.5,
    "prefill_us_per_token": 40.0,
    "decode_us_per_token": 250.0,
}


def preset_config(name: str) -> dict[str, Any]:
    """MockConfig fields of preset `name` with the investigation's latency model."""
    return {**INVESTIGATION_LATENCY, **PRESETS[name][0]}
