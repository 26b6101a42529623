"""What an entry point does first: register the plug-in audits, once per process."""

from __future__ import annotations

import functools

from auditkit.audits import load_plugins


@functools.cache
def load_plugins_once() -> None:
    """Register the audits other packages declare (entry points, AUDITKIT_PLUGINS) the first
    time an entry point (CLI, notebook runner, a notebook's first cell) asks; later calls do
    nothing, so a plug-in's classes are created once."""
    load_plugins()
