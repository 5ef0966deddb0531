"""The viewer at scale: `thinktoggle view` on the 1,000,000-row synthetic run of bench/scale.py, timed and measured.

    nice .venv/bin/python bench/scale.py --rows 1000000 --work /tmp/view_scale1m     # the run (filter, export)
    nice .venv/bin/python bench/view.py --work /tmp/view_scale1m

`thinktoggle view WORK --port 0` runs as its own process while a thread samples its RSS every 0.05 s. Timed, as a
browser would ask: the start (process launch until the first page of rows has been served: the command's import,
GET / (the page: funnel, reason samples, pairs, lengths) and GET /api/rows), then paging through the export's kept
rows (the first pages, then pages at 10%, 50% and 90% deep), filtered pages (category, mode, a drop reason), a
text search, and opening a prompt (its rows in every stage). Targets: open < 2 s, a page < 0.5 s, peak RSS < 500 MB.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import psutil

MB = 2**20


def fetch(base: str, path: str, **params: object) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(f"{base}{path}?{urlencode(params)}", timeout=120) as response:
        body = response.read()
    return time.perf_counter() - started, body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/view_scale1m"))
    parser.add_argument("--stage", default="export")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    command = [sys.executable, "-m", "thinktoggle.cli.main", "view", str(args.work), "--port", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    server = psutil.Process(proc.pid)
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], server.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            done.wait(0.05)

    threading.Thread(target=sample, daemon=True).start()
    results: list[tuple[str, float, str]] = []
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        base = re.search(r"http://[\d.]+:\d+", line).group(0)  # type: ignore[union-attr]
        page_s, html = fetch(base, "/")
        first_s, body = fetch(base, "/api/rows", stage=args.stage, part="kept")
        total = json.loads(body)["total"]
        opened = time.perf_counter() - started
        results.append(("open: launch → page → first rows", opened, f"page {len(html) / MB:.1f} MB ({page_s:.2f} s)"))
        results.append(("first page of rows", first_s, f"{total:,} kept rows"))
        pages = total // 25
        for label, page in [("page 2", 1), ("page 3", 2), ("10% deep", pages // 10), ("50% deep", pages // 2)] + [
            ("90% deep", pages * 9 // 10)
        ]:
            seconds, _ = fetch(base, "/api/rows", stage=args.stage, part="kept", page=page)
            results.append((f"kept, {label} (page {page + 1:,})", seconds, ""))
        facets_s, body = fetch(base, "/api/facets", stage="filter", part="dropped")
        facets = json.loads(body)
        results.append(("facets of filter/dropped", facets_s, f"{facets['rows']:,} rows"))
        category, mode = facets["categories"][0], facets["modes"][0]
        reason = max(facets["reasons"], key=facets["reasons"].get)
        for label, params in (
            (f"kept, category={category}, page 1", {"stage": args.stage, "part": "kept", "category": category}),
            (f"kept, mode={mode}, page 100", {"stage": args.stage, "part": "kept", "mode": mode, "page": 99}),
            (f"filter dropped, reason={reason}", {"stage": "filter", "part": "dropped", "reason": reason}),
            ("kept, text search, a common text", {"stage": args.stage, "part": "kept", "text": "boxed{22}"}),
            ("kept, text search, absent (reads all)", {"stage": args.stage, "part": "kept", "text": "no such words"}),
        ):
            seconds, body = fetch(base, "/api/rows", **params)
            found = json.loads(body)
            results.append((label, seconds, f"total {found['total']:,}" if found["total"] is not None else ""))
        pair_id = json.loads(fetch(base, "/api/rows", stage=args.stage, part="kept", page=pages // 2)[1])["rows"][0]
        seconds, body = fetch(base, "/api/prompt", pair_id=pair_id["pair_id"])
        groups = json.loads(body)["groups"]
        results.append(("open a prompt (every stage, part)", seconds, f"{sum(len(g['rows']) for g in groups)} rows"))
    finally:
        done.set()
        proc.terminate()
        proc.wait(timeout=30)
    print(f"\n`thinktoggle view {args.work}`: peak RSS {peak[0] / MB:.0f} MB\n")
    print("| request | seconds | note |\n|---|---:|---|")
    for label, seconds, note in results:
        print(f"| {label} | {seconds:.2f} | {note} |")
    # the paging target covers pages, filtered or not; a text search reads outputs and is reported, not targeted
    pages_timed = [r for r in results[1:] if "text search" not in r[0] and "prompt" not in r[0]]
    slow_pages = [r for r in pages_timed if r[1] > 0.5]
    met = results[0][1] < 2 and not slow_pages and peak[0] < 500 * MB
    print(f"\ntargets (open < 2 s, paging < 0.5 s, peak RSS < 500 MB): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
