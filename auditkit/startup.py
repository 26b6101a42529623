"""What an entry point does first: plug-ins registered once per process, slow imports skipped."""

from __future__ import annotations

import functools
import sys

from auditkit.audits import load_plugins


@functools.cache
def load_plugins_once() -> None:
    """Register the audits other packages declare (entry points, AUDITKIT_PLUGINS) the first
    time an entry point (CLI, notebook runner, a notebook's first cell) asks; later calls do
    nothing, so a plug-in's classes are created once."""
    load_plugins()


def skip_slow_iri_format_checker() -> None:
    """Keep jsonschema from importing `rfc3987_syntax` in a process that will load nbformat.

    jsonschema registers its "iri" format checker from rfc3987_syntax when that is installed
    (nbformat's `jsonschema[format-nongpl]` installs it), and rfc3987_syntax builds about 35
    Earley parsers at import: 2.3 CPU-s on this project's machine, a fifth of a small
    `auditkit notebook` run (python-jsonschema/jsonschema#1428). No notebook schema uses the
    "iri" format; without the module jsonschema leaves that checker out and validates the rest.
    For entry points that own their process only: once jsonschema is imported this does nothing.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
