"""The dataset card's PNG plots (matplotlib, Agg: no display needed): output lengths on vs off, the funnel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

MODE_COLOURS = {"on": "#d95f02", "off": "#1b9e77"}


def length_histogram(lengths: dict[str, list[int]], category: str, unit: str, path: Path) -> Path:
    """Overlaid histograms of output lengths in each mode (log-spaced bins: on is often 10x longer)."""
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    values = [v for vs in lengths.values() for v in vs if v > 0]
    if values:
        low, high = max(1, min(values)), max(values)
        bins = np.geomspace(low, max(high, low + 1), 40)
        for mode in ("on", "off"):
            data = [v for v in lengths.get(mode, []) if v > 0]
            if data:
                median = int(np.median(data))
                ax.hist(
                    data,
                    bins=bins,
                    alpha=0.6,
                    color=MODE_COLOURS[mode],
                    label=f"{mode} (n={len(data)}, median {median})",
                )
        ax.set_xscale("log")
        ax.legend()
    ax.set_title(f"{category}: output length, reasoning on vs off")
    ax.set_xlabel(unit)
    ax.set_ylabel("rows")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def funnel_chart(funnel: dict[str, Any], path: Path) -> Path:
    """Rows entering each stage, split into kept / dropped / failed."""
    stages = funnel["stages"]
    names = [s["stage"] for s in stages][::-1]
    kept = np.array([s["kept"] for s in stages][::-1])
    dropped = np.array([s["dropped"] for s in stages][::-1])
    failed = np.array([s["failed"] for s in stages][::-1])
    fig, ax = plt.subplots(figsize=(7, 0.6 * max(len(stages), 2) + 1.2), dpi=110)
    ax.barh(names, kept, color="#1b9e77", label="kept")
    ax.barh(names, dropped, left=kept, color="#d95f02", label="dropped")
    ax.barh(names, failed, left=kept + dropped, color="#7570b3", label="failed")
    for y, (k, d, f) in enumerate(zip(kept, dropped, failed, strict=True)):
        ax.text(k + d + f, y, f"  {k + d + f} in → {k} kept", va="center", fontsize=8)
    ax.set_xlabel("rows")
    ax.set_title("Filter funnel")
    ax.set_xlim(0, max(1, int((kept + dropped + failed).max(initial=1))) * 1.45)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
