"""Repetition: a reasoning stuck in a loop repeats the same word n-grams over and over.

The score is the fraction of n-grams that repeat an earlier one, `(total - distinct) / total`, over the
whole text and over its tail (a model that loops usually does so until it hits the token limit, so the
loop may be a small part of a long text but most of its end). Texts with fewer than `min_ngrams` n-grams
are too short to judge. On rows are judged on their reasoning, off rows on their answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from thinktoggle.schemas.record import Record, Verdict
from thinktoggle.schemas.think import split_output

FILTER_NAME = "repetition"
_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class RepetitionConfig:
    ngram: int = 10  # words per n-gram
    max_repeated_fraction: float = 0.3
    min_ngrams: int = 50
    tail_words: int = 2000

    def __post_init__(self) -> None:
        if self.ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {self.ngram}")
        if not 0.0 < self.max_repeated_fraction <= 1.0:
            raise ValueError(f"max_repeated_fraction must be in (0, 1], got {self.max_repeated_fraction}")


def repeated_fraction(words: list[str], n: int) -> tuple[float, int]:
    """(fraction of n-grams that repeat an earlier one, number of n-grams)."""
    total = len(words) - n + 1
    if total <= 0:
        return 0.0, 0
    distinct = len({tuple(words[i : i + n]) for i in range(total)})
    return (total - distinct) / total, total


def repetition_score(text: str, config: RepetitionConfig = RepetitionConfig()) -> float:
    """The worse of the whole text's and the tail's repeated fraction; 0.0 when too short to judge."""
    words = _WORD.findall(text.lower())
    score = 0.0
    for window in (words, words[-config.tail_words :]):
        fraction, total = repeated_fraction(window, config.ngram)
        if total >= config.min_ngrams:
            score = max(score, fraction)
    return score


def repetition_verdict(record: Record, config: RepetitionConfig = RepetitionConfig()) -> Verdict:
    split = split_output(record.output)
    text = split.reasoning if record.reasoning == "on" and split.reasoning is not None else record.output
    score = repetition_score(text, config)
    if score > config.max_repeated_fraction:
        return Verdict(FILTER_NAME, "fail", f"repetition: {score:.2f} of {config.ngram}-grams repeat")
    return Verdict(FILTER_NAME, "pass")
