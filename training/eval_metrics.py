"""Evaluation metrics over n scored samples per prompt, as NeMo-Skills reports them.

- pass@1: the mean over prompts of c/n (c of n samples correct): pass@1 averaged over the samples.
- pass@k: the unbiased estimator of Chen et al. 2021 (HumanEval), 1 - C(n-c, k) / C(n, k), averaged over prompts,
  for every k up to n.
- maj@k: over the first k samples of a prompt, the most frequent answer (ties: the one seen first) is the
  prompt's answer; correct when a sample with that answer is correct. Samples without an answer do not vote.
- no_answer: the share of samples without an extractable answer; compliance: the share in the mode's format.
- reasoning / answer tokens: mean, median, p95 over samples.
- stderr: the standard error of pass@1 across the n sample runs (run j = sample j of every prompt), as
  NeMo-Skills' spread across seeds; None when n == 1. stderr_prompts: across prompts (c/n per prompt).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    """One scored answer: what the metrics need of it."""

    correct: bool
    answer: str | None  # the extracted answer (None: none), what maj@k votes on
    compliant: bool
    reasoning_tokens: int = 0
    answer_tokens: int = 0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one prompt with n samples, c correct (Chen et al. 2021, numerically stable form)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # 1 - prod_{i=n-c+1..n} (1 - k/i) == 1 - C(n-c, k) / C(n, k)
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def majority_correct(samples: Sequence[Sample]) -> bool:
    """Whether the most frequent answer among `samples` (ties: first seen) is a correct one."""
    votes = Counter(s.answer for s in samples if s.answer is not None)
    if not votes:
        return False
    order = {a: i for i, a in reversed(list(enumerate(s.answer for s in samples)))}
    best = max(votes, key=lambda a: (votes[a], -order[a]))
    return any(s.correct for s in samples if s.answer == best)


def spread(values: Sequence[float]) -> dict[str, float]:
    """mean, median and p95 (nearest rank) of `values`; zeros when empty."""
    if not values:
        return {"mean": 0.0, "median": 0.0, "p95": 0.0}
    ordered = sorted(values)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {"mean": statistics.fmean(ordered), "median": float(statistics.median(ordered)), "p95": float(p95)}


def summarize(by_prompt: Sequence[Sequence[Sample]], vote: bool = True) -> dict[str, Any]:
    """The metrics of one benchmark in one mode; `by_prompt[i]` are prompt i's samples (the same n for all).
    `vote`: whether answers can be voted on (maj@k); code answers are programs, not votes: maj@k is None."""
    if not by_prompt:
        raise ValueError("no prompts to summarize")
    n = len(by_prompt[0])
    if n < 1 or any(len(s) != n for s in by_prompt):
        raise ValueError(
            f"every prompt needs the same number of samples (>= 1), got {sorted({len(s) for s in by_prompt})}"
        )
    counts = [sum(s.correct for s in samples) for samples in by_prompt]
    samples = [s for group in by_prompt for s in group]
    runs = [statistics.fmean(group[j].correct for group in by_prompt) for j in range(n)]
    rates = [c / n for c in counts]
    return {
        "n_prompts": len(by_prompt),
        "n_samples": n,
        "pass@1": statistics.fmean(rates),
        "pass@k": {str(k): statistics.fmean(pass_at_k(n, c, k) for c in counts) for k in range(1, n + 1)},
        "maj@k": (
            {str(k): statistics.fmean(majority_correct(group[:k]) for group in by_prompt) for k in range(1, n + 1)}
            if vote
            else None
        ),
        "no_answer": statistics.fmean(s.answer is None for s in samples),
        "compliance": statistics.fmean(s.compliant for s in samples),
        "reasoning_tokens": spread([s.reasoning_tokens for s in samples]),
        "answer_tokens": spread([s.answer_tokens for s in samples]),
        "stderr": statistics.stdev(runs) / math.sqrt(n) if n > 1 else None,
        "stderr_prompts": statistics.stdev(rates) / math.sqrt(len(rates)) if len(rates) > 1 else 0.0,
    }
