"""A self-contained HTML report of an executed notebook (`auditkit notebook --html`)."""

from __future__ import annotations

import re
from pathlib import Path

from auditkit.errors import AuditkitError

# a remote resource the browser would fetch: src/href attributes and ES-module imports
REMOTE_PATTERN = re.compile(
    r"""(?:(?:src|href)\s*=\s*|import\(\s*|Url\s*=\s*)["']https?://""", re.I
)
SCRIPT_BLOCK = re.compile(r"<script\b[^>]*>.*?</script>", re.I | re.S)


def export_html(notebook: Path, target: Path) -> Path:
    """Self-contained HTML of an executed notebook: images inline, no CDN scripts.

    Widget state is dropped (tqdm bars keep their text fallback) because rendering widgets
    needs the widget manager from a CDN; MathJax/require.js URLs are blanked for the same
    reason. A remaining remote src/href is an error, not a silent dependency.
    """
    import nbformat  # nbconvert is slow to import and only --html needs it
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        # a widget's text fallback is its state when first shown (a tqdm bar at "0%"): stale
        # by construction, so the output goes; the log lines beside it carry the final counts
        cell["outputs"] = [
            o
            for o in cell.get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})
        ]
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    exporter.mathjax_url = ""
    exporter.require_js_url = ""
    exporter.widget_renderer_url = ""
    exporter.mermaid_js_url = ""
    exporter.mermaid_layout_elk_js_url = ""
    body, _ = exporter.from_notebook_node(nb)
    # the template still emits loaders (MathJax, require.js, mermaid) pointing at CDNs or at
    # nothing; the report needs no script, so drop those blocks
    body = SCRIPT_BLOCK.sub(
        lambda m: "" if ("http" in m.group(0) or 'src=""' in m.group(0)) else m.group(0), body
    )
    match = REMOTE_PATTERN.search(body)
    if match:
        snippet = body[match.start() : match.start() + 80]
        raise AuditkitError(
            f"HTML export still references a remote resource (no CDN allowed): {snippet!r}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    return target
