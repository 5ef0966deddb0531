"""Length limits per mode, and the repetition (looping reasoning) filter."""

from __future__ import annotations

import pytest
from _filter_rows import off, on

from thinktoggle.filters.length import LengthConfig, length_verdict, make_token_counter
from thinktoggle.filters.repetition import RepetitionConfig, repetition_score, repetition_verdict

NORMAL_REASONING = " ".join(
    f"Step {i}: we add {i} to the running total, which becomes {i * (i + 1) // 2}, and check the parity of {i}."
    for i in range(1, 80)
)
LOOP = "Wait, let me recompute the sum of the first terms again carefully. " * 60


def test_byte_counter_counts_utf8_bytes():
    count = make_token_counter(LengthConfig(bytes_per_token=1.0))
    assert count("abc") == 3
    assert count("é") == 2
    assert make_token_counter(LengthConfig(bytes_per_token=4.0))("abcde") == 2  # ceil(5 / 4)


@pytest.mark.parametrize(
    ("row", "verdict"),
    [
        (on("r" * 50, "a"), "pass"),
        (on("r" * 200, "a"), "fail"),  # 200+ bytes > 100 on-limit
        (off("a" * 30), "pass"),
        (off("a" * 60), "fail"),  # off rows have their own, smaller limit
        (on("r", "a", sampling={"finish_reason": "length"}), "fail"),  # cut by the engine: unfinished
    ],
)
def test_length_per_mode(row, verdict):
    config = LengthConfig(max_tokens_on=100, max_tokens_off=50, bytes_per_token=1.0)
    result = length_verdict(row, make_token_counter(config), config)
    assert result.verdict == verdict


def test_length_with_a_real_tokenizer(tiny_model_dir):
    config = LengthConfig(max_tokens_on=10_000, max_tokens_off=5, tokenizer=str(tiny_model_dir))
    count = make_token_counter(config)
    assert 0 < count("What is 1 + 2?") < len(b"What is 1 + 2?")
    assert length_verdict(off("What is 1 + 2? " * 5), count, config).reason.startswith("too_long")


def test_repetition_scores():
    assert repetition_score(NORMAL_REASONING) < 0.1
    assert repetition_score(LOOP) > 0.8
    assert repetition_score("short text") == 0.0  # too short to judge
    # a loop at the end of a long, varied reasoning is caught by the tail window
    tail_loop = NORMAL_REASONING * 1 + " " + LOOP
    assert repetition_score(tail_loop, RepetitionConfig(tail_words=300)) > 0.3


@pytest.mark.parametrize(
    ("row", "verdict"),
    [
        (on(NORMAL_REASONING, "\\boxed{1}"), "pass"),
        (on(LOOP, "\\boxed{1}"), "fail"),
        (off(LOOP), "fail"),
        (on("ok", LOOP), "pass"),  # on rows are judged on their reasoning
    ],
)
def test_repetition_verdict(row, verdict):
    assert repetition_verdict(row).verdict == verdict
