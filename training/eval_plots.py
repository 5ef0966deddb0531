"""The evaluation's PNG plots (matplotlib, Agg: no display needed): accuracy by benchmark and mode, accuracy
against mean generated tokens (one point per benchmark and mode: what thinking costs and what it buys), and,
when the evaluation measured one, the thinking-budget curve (accuracy against mean thinking tokens, off to
unlimited on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

MODE_COLOURS = {"on": "#d95f02", "off": "#1b9e77"}  # the dataset card's colours (curation/plots.py)


def accuracy_by_benchmark(benchmarks: dict[str, dict[str, Any]], path: Path) -> Path:
    names = list(benchmarks)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.4 * len(names) + 2), 3.6), dpi=110)
    width = 0.38
    for offset, mode in ((-width / 2, "on"), (width / 2, "off")):
        xs = [i + offset for i, name in enumerate(names) if mode in benchmarks[name]]
        ys = [benchmarks[name][mode]["pass@1"] for name in names if mode in benchmarks[name]]
        errs = [benchmarks[name][mode]["stderr"] or 0.0 for name in names if mode in benchmarks[name]]
        if xs:
            ax.bar(xs, ys, width, yerr=errs, label=f"thinking {mode}", color=MODE_COLOURS[mode], capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=20 if len(names) > 3 else 0)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pass@1")
    ax.set_title("accuracy by benchmark and mode")
    ax.legend(frameon=False)
    return _save(fig, path)


def accuracy_vs_tokens(benchmarks: dict[str, dict[str, Any]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=110)
    for name, modes in benchmarks.items():
        for mode, row in modes.items():
            if mode not in MODE_COLOURS:  # budget_curve: its own plot
                continue
            tokens = row["reasoning_tokens"]["mean"] + row["answer_tokens"]["mean"]
            ax.scatter([tokens], [row["pass@1"]], color=MODE_COLOURS[mode], s=40)
            ax.annotate(
                f"{name} ({mode})", (tokens, row["pass@1"]), fontsize=7, xytext=(4, 3), textcoords="offset points"
            )
    for mode, colour in MODE_COLOURS.items():
        ax.scatter([], [], color=colour, label=f"thinking {mode}")
    ax.set_xscale("symlog", linthresh=10)
    return _save_accuracy(fig, ax, "mean generated tokens", "accuracy against generated tokens", path)


def budget_curve(benchmarks: dict[str, dict[str, Any]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=110)
    for name, modes in benchmarks.items():
        points = modes.get("budget_curve") or []
        xs = [p["thinking_tokens"] for p in points]
        ys = [p["pass@1"] for p in points]
        ax.plot(xs, ys, marker="o", markersize=4, label=name)
        for p in points:
            ax.annotate(
                p["label"], (p["thinking_tokens"], p["pass@1"]), fontsize=6, xytext=(3, -9), textcoords="offset points"
            )
    return _save_accuracy(
        fig, ax, "mean thinking tokens", "accuracy against the thinking budget (off … unlimited on)", path
    )


def write_plots(benchmarks: dict[str, dict[str, Any]], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        accuracy_by_benchmark(benchmarks, folder / "accuracy_by_benchmark.png"),
        accuracy_vs_tokens(benchmarks, folder / "accuracy_vs_tokens.png"),
    ]
    if any("budget_curve" in modes for modes in benchmarks.values()):
        paths.append(budget_curve(benchmarks, folder / "budget_curve.png"))
    return paths


def _save_accuracy(fig: Any, ax: Any, xlabel: str, title: str, path: Path) -> Path:
    """Label a pass@1-against-tokens plot and save it."""
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pass@1")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
