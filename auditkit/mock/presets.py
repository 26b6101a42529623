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
