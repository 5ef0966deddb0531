"""See a run: `thinktoggle report RUN_DIR` writes one self-contained `report.html`; `thinktoggle view RUN_DIR`
serves the same page on 127.0.0.1 with live row browsing.

Orchestration (docs/ARCHITECTURE.md, "Seeing a run"): it reads every stage's folder through core's layout and
funnel, and rows through polars scans, a page at a time.

    rows.py     the run's stage folders; paged, filtered rows of any stage's kept/ dropped/ failed/; a prompt's rows
    collect.py  what the page shows: recipe, funnel, reason samples, on/off pairs, lengths, metrics, evaluation
    charts.py   inline SVG charts (no image files, no network)
    page.py     the HTML: sections rendered escaped in Python, rows rendered by the page's script as text
    server.py   the viewer: http.server on loopback, read-only JSON endpoints for the rows
"""

from __future__ import annotations

from pathlib import Path

REPORT_NAME = "report.html"


def write_report(run_dir: str | Path) -> Path:
    """Write `RUN_DIR/report.html` and return its path."""
    from thinktoggle.report.collect import collect
    from thinktoggle.report.page import render_page
    from thinktoggle.schemas.io import atomic_write_text

    run_dir = Path(run_dir)
    return atomic_write_text(render_page(collect(run_dir), live=False), run_dir / REPORT_NAME)
