"""A self-contained HTML report of an executed notebook (`auditkit notebook --html`)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitError

# a remote resource the browser would fetch: src/href attributes, ES-module imports and the
# template's loader settings (`mathjaxUrl = "..."`: case-sensitive, so a notebook parameter
# printed as text in the report, `url = "http://host"`, is not one)
REMOTE_PATTERN = re.compile(
    r"""(?:(?:src|href)\s*=\s*|import\(\s*|(?-i:Url)\s*=\s*)["']https?://""", re.I
)
SCRIPT_BLOCK = re.compile(r"<script\b[^>]*>.*?</script>", re.I | re.S)

#: cell tags that place a cell in the report: the answer first, the how at the end, folded
LEAD, SETUP = "report-lead", "report-setup"
#: papermill's copy of the -p values: the parameters cell and the config printout say it too
HIDDEN = "injected-parameters"


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _text(cell: Any) -> str:
    """A folded cell as plain text: its source, then what it printed."""
    parts = [cell.get("source", "")]
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "text/plain" in out.get("data", {}):
            parts.append(out["data"]["text/plain"])
    return "\n".join(p.rstrip("\n") for p in parts if p)


def _failed(cell: Any) -> bool:
    return any(o.get("output_type") == "error" for o in cell.get("outputs", []))


def report_order(cells: list[Any]) -> list[Any]:
    """The report's cells: the title, the cells tagged `report-lead` (the verdict and its
    reason), the rest, and last one section of folded blocks: the parameters given, the
    defaults, and each setup cell's printout (the configuration, the phase log).

    A notebook executes setup first; a reader wants the answer first. Only the HTML is
    reordered: the executed notebook keeps papermill's order and its injected-parameters cell.
    A setup cell that failed stays in the flow, where the failure is seen.
    """
    import nbformat

    title = cells[:1] if cells and cells[0].get("cell_type") == "markdown" else []
    intro = []
    if title:
        # the heading alone above the answer; the introduction after it
        heading, _, rest = title[0].get("source", "").partition("\n")
        if rest.strip():
            title = [nbformat.v4.new_markdown_cell(heading)]
            intro = [nbformat.v4.new_markdown_cell(rest.strip())]
    lead, body, folded = [], [], []
    label = ""
    for cell in cells[len(title) :]:
        tags = _tags(cell)
        if LEAD in tags:
            if cell.get("cell_type") == "code":
                # the answer, not the call that drew it (the notebook keeps the source)
                cell = nbformat.from_dict(cell)
                cell.metadata.setdefault("transient", {})["remove_source"] = True
            lead.append(cell)
        elif SETUP in tags and cell.get("cell_type") == "markdown":
            label = cell.get("source", "").strip()  # the next folded cell's summary
        elif HIDDEN in tags:
            folded.append(("Parameters given (-p)", cell))
        elif "parameters" in tags:
            folded.append(("Parameters: the notebook's defaults", cell))
        elif SETUP in tags and not _failed(cell):
            folded.append((label or "Setup", cell))
        else:
            body.append(cell)
    if not folded:
        return title + lead + intro + body
    # each block one line of HTML (newlines as &#10;): markdown keeps a one-line HTML block as
    # it is, where a blank line inside <pre> would end the block and turn the URLs in the
    # parameters' help into links
    details = "\n".join(
        f"<details><summary>{html.escape(summary)}</summary><pre>"
        + html.escape(_text(cell)).replace("\n", "&#10;")
        + "</pre></details>"
        for summary, cell in folded
    )
    appendix = nbformat.v4.new_markdown_cell(f"## How this ran\n\n{details}")
    return title + lead + intro + body + [appendix]


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
    nb.cells = report_order(nb.cells)
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
