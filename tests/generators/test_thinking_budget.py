"""The thinking-budget state machine on hand-made token lists: what an engine forces, what it counts.

Tokens: S = <think>, E = </think>, N = a newline token, 10+ = ordinary tokens; the multi-token tags are
(5, 6) and (7, 8). `run` plays a scripted model through the tracker as a logits processor would: at each step
the forced token, if any, replaces what the model would have said.
"""

import pytest

from thinktoggle.generators.engines.base import SamplingConfig
from thinktoggle.generators.engines.thinking_budget import (
    BudgetTracker,
    ThinkTags,
    count_thinking,
    grace_tokens,
    replay,
)

S, E, N = 1, 2, 3
TAGS = ThinkTags(start=(S,), end=(E,), newlines=frozenset({N, 4}))
MULTI = ThinkTags(start=(5, 6), end=(7, 8), newlines=frozenset({N}))


def run(tags, budget, grace, prompt, script):
    """(what was generated, thinking_tokens, cut), also checking that a replay of the output agrees."""
    tracker = BudgetTracker(tags, budget, grace).prompt(prompt)
    out = []
    for wanted in script:
        token = tracker.forced if tracker.forced is not None else wanted
        tracker.feed(token)
        out.append(token)
    again = replay(tags, budget, grace, prompt, out)
    assert (again.thinking_tokens, again.cut) == (tracker.thinking_tokens, tracker.cut)
    return out, tracker.thinking_tokens, tracker.cut


def words(n, first=10):
    return list(range(first, first + n))


CASES = [
    # (id, tags, budget, grace, prompt, script, expected output, thinking_tokens, cut)
    ("no_block", TAGS, 1, 0.1, [20], [10, 11, 12], [10, 11, 12], None, False),
    ("budget0_open_in_output", TAGS, 0, 0.1, [20], [S, 10, 11, 12], [S, E, 11, 12], 0, True),
    ("budget0_open_in_prompt", TAGS, 0, 0.1, [20, S], [10, 11], [E, 11], 0, True),
    ("budget0_grace_is_nothing", TAGS, 0, 1.0, [S], [N, 11], [E, 11], 0, True),
    ("at_budget_small_grace_floors_to_0", TAGS, 3, 0.1, [S], words(5), [10, 11, 12, E, 14], 3, True),
    ("no_newline_runs_to_limit", TAGS, 10, 0.1, [S], words(13), [*words(11), E, 22], 11, True),
    ("newline_at_budget_ends_line", TAGS, 10, 0.1, [S], [*words(9), N, 30, 31], [*words(9), N, E, 31], 10, True),
    (
        "newline_before_budget_ignored",
        TAGS,
        10,
        0.1,
        [S],
        [10, 11, 12, 13, N, *words(8, 20)],
        [10, 11, 12, 13, N, *words(6, 20), E, 27],
        11,
        True,
    ),
    ("newline_in_grace", TAGS, 10, 0.5, [S], [*words(12), 4, 40, 41], [*words(12), 4, E, 41], 13, True),
    ("any_newline_token", TAGS, 3, 1.0, [S], [10, 11, 4, 12], [10, 11, 4, E], 3, True),
    ("grace_1_doubles", TAGS, 3, 1.0, [S], words(8), [*words(6), E, 17], 6, True),
    ("grace_0_exact", TAGS, 4, 0.0, [S], words(6), [*words(4), E, 15], 4, True),
    ("model_closes_before_budget", TAGS, 5, 0.1, [S], [10, 11, E, 12, 13], [10, 11, E, 12, 13], 2, False),
    ("model_closes_in_grace", TAGS, 4, 0.5, [S], [10, 11, 12, 13, 14, E, 15], [10, 11, 12, 13, 14, E, 15], 5, False),
    ("model_closes_at_limit", TAGS, 2, 0.0, [S], [10, E, 11], [10, E, 11], 1, False),
    ("model_closes_on_limit_token", TAGS, 1, 0.0, [S], [10, E, 11], [10, E, 11], 1, True),
    ("answer_after_close_is_free", TAGS, 1, 0.0, [S], [10, E, *words(30, 50)], [10, E, *words(30, 50)], 1, True),
    (
        "second_block_not_budgeted",
        TAGS,
        1,
        0.0,
        [S],
        [10, E, 11, S, *words(9, 30)],
        [10, E, 11, S, *words(9, 30)],
        1,
        True,
    ),
    ("open_in_output_after_text", TAGS, 2, 0.0, [20], [10, S, 11, 12, 13, 14], [10, S, 11, 12, E, 14], 2, True),
    ("prompt_thinking_not_counted", TAGS, 2, 0.0, [S, N, 10, 11], [12, 13, 14, 15], [12, 13, E, 15], 2, True),
    ("earlier_turn_block_closed", TAGS, 0, 0.1, [S, 10, E, 20], [10, 11, 12], [10, 11, 12], None, False),
    ("earlier_turn_then_new_block", TAGS, 1, 0.0, [S, 10, E, 20, S], [10, 11, 12], [10, E, 12], 1, True),
    ("stops_mid_thinking", TAGS, 10, 0.1, [S], [10, 11], [10, 11], 2, False),
    ("stops_mid_forcing", MULTI, 0, 0.0, [5, 6], [10], [7], 0, True),
    ("multi_forced_in_order", MULTI, 2, 0.0, [5, 6], words(6), [10, 11, 7, 8, 14, 15], 2, True),
    ("multi_start_in_output", MULTI, 1, 0.0, [20], [5, 6, 10, 11, 12, 13], [5, 6, 10, 7, 8, 13], 1, True),
    ("multi_start_split_prompt_output", MULTI, 1, 0.0, [20, 5], [6, 10, 11, 12], [6, 10, 7, 8], 1, True),
    ("multi_half_start_is_not_start", MULTI, 0, 0.0, [20], [5, 10, 6, 11], [5, 10, 6, 11], None, False),
    ("multi_model_closes", MULTI, 5, 0.0, [20], [5, 6, 10, 7, 8, 11], [5, 6, 10, 7, 8, 11], 1, False),
    ("multi_half_end_is_thinking", MULTI, 3, 0.0, [5, 6], [7, 10, 8, 11, 12], [7, 10, 8, 7, 8], 3, True),
]


@pytest.mark.parametrize(
    ("tags", "budget", "grace", "prompt", "script", "out", "thinking", "cut"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_truth_table(tags, budget, grace, prompt, script, out, thinking, cut):
    assert run(tags, budget, grace, prompt, script) == (out, thinking, cut)


@pytest.mark.parametrize(("budget", "grace", "extra"), [(0, 1.0, 0), (9, 0.1, 0), (10, 0.1, 1), (19, 0.1, 1),
                                                        (20, 0.1, 2), (3, 0.5, 1), (7, 1.0, 7), (100, 0.0, 0), (100, 0.29, 29)])  # fmt: skip
def test_grace_tokens_floor(budget, grace, extra):
    assert grace_tokens(budget, grace) == extra


@pytest.mark.parametrize("budget", [0, 1, 3, 8, 20, 33])
def test_never_past_budget_plus_grace(budget):
    """A model that never closes the block nor ends a line: exactly budget + floor(10%), then the end tag."""
    out, thinking, cut = run(TAGS, budget, 0.1, [S], words(80))
    assert thinking == budget + budget // 10 and cut
    assert out[thinking] == E and E not in out[:thinking]


def test_forced_is_none_when_free():
    tracker = BudgetTracker(TAGS, 2, 0.0).prompt([S])
    assert tracker.forced is None
    tracker.feed_all([10, 11])
    assert tracker.forced == E
    tracker.feed(E)
    assert tracker.forced is None


def test_count_thinking_unbudgeted():
    assert count_thinking(TAGS, [20], [S, 10, 11, E, 12]) == 2
    assert count_thinking(TAGS, [S], words(500)) == 500
    assert count_thinking(TAGS, [20], [10, 11]) is None
    assert count_thinking(MULTI, [5, 6], [10, 7, 8]) == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="budget"):
        BudgetTracker(TAGS, -1)
    with pytest.raises(ValueError, match="think tags"):
        ThinkTags(start=(), end=(E,), newlines=frozenset())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"thinking_budget": -1}, "thinking_budget"),
        ({"thinking_grace": 1.5}, "thinking_grace"),
        ({"thinking_grace": -0.1}, "thinking_grace"),
    ],  # fmt: skip
)
def test_sampling_config_validates_budget(changes, message):
    with pytest.raises(ValueError, match=message):
        SamplingConfig(**changes)
    assert SamplingConfig(thinking_budget=0, thinking_grace=1.0).thinking_budget == 0


def test_tags_from_the_tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tags = ThinkTags.from_tokenizer(tokenizer)
    assert len(tags.start) == 1 and len(tags.end) == 1  # added tokens: one id each
    assert tokenizer.decode(list(tags.end)) == "</think>"
    assert set(tokenizer.encode("a\nb", add_special_tokens=False)) & tags.newlines
    assert not tags.newlines & set(tokenizer.encode("abc def", add_special_tokens=False))
