"""Majority vote over the samples of one prompt, for math rows without a gold answer.

As in Llama-Nemotron's math and science data: when there is no reference answer, the answer most samples
agree on stands in for it. A sample passes when its answer is in the strict-largest cluster of equivalent
answers and that cluster holds at least `min_agreement` of the group's samples (unanswered samples count
in the denominator: they did not agree). Too few samples, or a tie, leave every sample unverifiable.
"""

from __future__ import annotations

from dataclasses import dataclass

from thinktoggle.filters.math import ANSWER_UNPARSABLE, FILTER_NAME, NO_ANSWER, TIMEOUT
from thinktoggle.schemas.record import Verdict

NO_MAJORITY = "no_majority"
MINORITY = "minority"
TOO_FEW_SAMPLES = "no_gold"  # one sample without gold cannot vote: it is simply unverifiable for lack of gold


@dataclass(frozen=True)
class MajorityConfig:
    min_agreement: float = 0.5  # fraction of the group's samples that must share the winning answer
    min_samples: int = 2  # a group smaller than this cannot vote

    def __post_init__(self) -> None:
        if not 0.0 < self.min_agreement <= 1.0:
            raise ValueError(f"min_agreement must be in (0, 1], got {self.min_agreement}")
        if self.min_samples < 2:
            raise ValueError(f"min_samples must be >= 2, got {self.min_samples}")


@dataclass(frozen=True, slots=True)
class MajorityDecision:
    verdicts: list[Verdict]  # one per sample, in order
    answer: str | None  # the chosen answer, None when no majority
    agreement: float  # the winning cluster's share of the group


def majority_vote(
    answers: list[str | None], clusters: list[list[int]], config: MajorityConfig, timed_out: bool = False
) -> MajorityDecision:
    """Verdicts for a group of samples, given their answers and the clusters of equivalent answers."""
    n = len(answers)

    def everyone(reason: str) -> list[Verdict]:
        return [Verdict(FILTER_NAME, "unverifiable", reason) for _ in answers]

    if n < config.min_samples:
        return MajorityDecision(everyone(TOO_FEW_SAMPLES), None, 0.0)
    sizes = sorted((len(c) for c in clusters), reverse=True)
    if not sizes:
        return MajorityDecision(everyone(TIMEOUT if timed_out else NO_MAJORITY), None, 0.0)
    top = max(clusters, key=len)
    agreement = len(top) / n
    tie = len(sizes) > 1 and sizes[0] == sizes[1]
    if tie or agreement < config.min_agreement:
        # A timed-out comparison may have split a cluster: say so rather than "no majority".
        return MajorityDecision(everyone(TIMEOUT if timed_out else NO_MAJORITY), None, agreement)
    chosen = answers[top[0]]
    winners = set(top)
    clustered = {i for cluster in clusters for i in cluster}
    verdicts = []
    for i, answer in enumerate(answers):
        if i in winners:
            verdicts.append(Verdict(FILTER_NAME, "pass", f"majority: {len(top)}/{n} agree on {chosen}"[:200]))
        elif answer is None:
            verdicts.append(Verdict(FILTER_NAME, "unverifiable", NO_ANSWER))
        elif i not in clustered:
            verdicts.append(Verdict(FILTER_NAME, "unverifiable", ANSWER_UNPARSABLE))
        else:
            verdicts.append(Verdict(FILTER_NAME, "fail", MINORITY))
    return MajorityDecision(verdicts, chosen, agreement)
