"""Budget curves: accuracy against a thinking budget, the dial between "off" and unlimited "on" (issue 13).

A budget level is a number of tokens (`"64"`) or a share of the benchmark's median unlimited trace (`"50%"`):
the median is measured on the evaluation's own "on" answers, so `"100%"` is the typical trace whatever the
model. Each level is answered "on" with `SamplingConfig.thinking_budget` set (the engine closes the think block
when the budget is spent, NIM's rule: generators/engines/thinking_budget.py), scored like every answer, and
reported as one point of the curve:

    {label, budget, pass@1, thinking_tokens, within_budget, cut, compliance}

from "off" (no thinking) through the levels to "unlimited" (the on mode's own answers). `within_budget` is
the share of budgeted traces with at most `budget + floor(grace * budget)` thinking tokens: the adherence.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from thinktoggle.generators.engines.thinking_budget import grace_tokens

OFF = "off"
UNLIMITED = "unlimited"


@dataclass(frozen=True)
class BudgetLevel:
    label: str  # as configured: "0", "64", "50%"
    budget: int  # tokens


def parse_level(level: str) -> tuple[float, bool]:
    """(value, is a share of the median trace) of `64` or `50%`; ValueError naming a level that is neither."""
    text = str(level).strip()
    share = text.endswith("%")
    try:
        value = float(text[:-1]) if share else int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"budgets: {level!r} is not a token count (64) or a share of the median trace (50%)")
    return value, share


def check_levels(levels: Sequence[str]) -> None:
    """Raise ValueError naming the first level that is neither a token count nor a percentage."""
    for level in levels:
        parse_level(level)


def resolve_levels(levels: Sequence[str], median_trace: float) -> list[BudgetLevel]:
    """The levels in tokens, sorted by budget: percentages are of `median_trace` (rounded to a token)."""
    resolved = []
    for level in levels:
        value, share = parse_level(level)
        resolved.append(BudgetLevel(str(level).strip(), round(value / 100 * median_trace) if share else int(value)))
    return sorted(resolved, key=lambda level: level.budget)


def median_thinking(answers: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Per benchmark, the median thinking tokens of its unlimited "on" answers (0 when none thought)."""
    traces: dict[str, list[int]] = defaultdict(list)
    for a in answers:
        if a["mode"] == "on" and a.get("budget") is None and a.get("thinking_tokens") is not None:
            traces[a["benchmark"]].append(int(a["thinking_tokens"]))
    return {name: float(statistics.median(values)) for name, values in traces.items()}


def curve_point(label: str, budget: int | None, answers: list[dict[str, Any]], grace: float) -> dict[str, Any]:
    """One point: pass@1 averaged over each prompt's samples, mean thinking tokens, adherence and cut share."""
    by_prompt: dict[str, list[bool]] = defaultdict(list)
    for a in answers:
        by_prompt[a["pair_id"]].append(bool(a["correct"]))
    tokens = [int(a.get("thinking_tokens") or 0) for a in answers]
    within = None
    if budget is not None:  # off and unlimited have no budget to keep to
        limit = budget + grace_tokens(budget, grace)
        within = statistics.fmean(t <= limit for t in tokens) if tokens else 1.0
    return {
        "label": label,
        "budget": budget,
        "pass@1": statistics.fmean(sum(v) / len(v) for v in by_prompt.values()) if by_prompt else 0.0,
        "thinking_tokens": statistics.fmean(tokens) if tokens else 0.0,
        "within_budget": within,
        "cut": statistics.fmean(bool(a.get("think_cut")) for a in answers) if answers else 0.0,
        "compliance": statistics.fmean(bool(a["compliant"]) for a in answers) if answers else 0.0,
        "n_answers": len(answers),
    }


def budget_curves(answers: list[dict[str, Any]], grace: float) -> dict[str, list[dict[str, Any]]]:
    """Per benchmark with budgeted answers: off, the levels by budget, unlimited (scored answers in)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    budgets: dict[tuple[str, str], int] = {}
    for a in answers:
        label = a.get("budget")
        if label is not None:
            budgets[(a["benchmark"], label)] = int(a["thinking_budget"])
        elif a["mode"] == "off":
            label = OFF
        else:
            label = UNLIMITED
        groups[(a["benchmark"], label)].append(a)
    curves: dict[str, list[dict[str, Any]]] = {}
    for name in dict.fromkeys(b for b, _ in budgets):
        levels = sorted(((label, budget) for (b, label), budget in budgets.items() if b == name), key=lambda x: x[1])
        points = [(OFF, None)] if groups.get((name, OFF)) else []
        points += levels
        points += [(UNLIMITED, None)] if groups.get((name, UNLIMITED)) else []
        curves[name] = [curve_point(label, budget, groups[(name, label)], grace) for label, budget in points]
    return curves


def format_curves(curves: dict[str, list[dict[str, Any]]]) -> str:
    """A text table per benchmark: one row per point of the curve."""
    blocks = []
    for name, points in curves.items():
        lines = [
            f"{name}: thinking budget curve",
            f"  {'budget':<14} {'tokens':>7} {'pass@1':>7} {'thinking':>9} {'within':>7} {'cut':>6}",
        ]
        for p in points:
            budget = "" if p["budget"] is None else str(p["budget"])
            within = "" if p["within_budget"] is None else f"{p['within_budget']:.3f}"
            lines.append(
                f"  {p['label']:<14} {budget:>7} {p['pass@1']:>7.3f} {p['thinking_tokens']:>9.1f} {within:>7}"
                f" {p['cut']:>6.3f}"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
