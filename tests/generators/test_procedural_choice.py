"""`mod_choice`, the demo's second domain: mod-10 chains as four-way multiple choice, split as mod_chain is."""

from __future__ import annotations

from thinktoggle.filters.choice import judge_choice
from thinktoggle.generators.procedural import arithmetic_values, procedural_answer, procedural_records
from thinktoggle.schemas.think import compose_output


def chain(record):
    problem = record.metadata["procedural"]["problem"]
    return (problem["start"], tuple(map(tuple, problem["steps"])))


def test_options_hold_the_result_once_and_the_teacher_answers_the_right_letter():
    for record in procedural_records("mod_choice", 50, seed=3):
        problem = record.metadata["procedural"]["problem"]
        options = problem["options"]
        assert len(options) == len(set(options)) == 4 and arithmetic_values(problem)[-1] in options
        assert (
            record.category == "science"
            and f"{record.expected_answer}){arithmetic_values(problem)[-1]};" in record.prompt
        )
        for mode in ("on", "off"):
            reasoning, answer = procedural_answer(record, mode)
            verdict, letter = judge_choice(compose_output(reasoning, answer), record.expected_answer)
            assert verdict.verdict == "pass" and letter == record.expected_answer
        # the trace: the filled chain, then per option its letter, value, the result again and the answer so far
        chain_text, checks = procedural_answer(record, "on")[0].split("; ", 1)
        result = arithmetic_values(problem)[-1]
        assert chain_text.endswith(f"={result}")
        marks = checks.split()
        assert [m[0] for m in marks] == list("ABCD") and [m[1] for m in marks] == [str(v) for v in options]
        assert {m[2] for m in marks} == {str(result)}
        at = "ABCD".index(record.expected_answer)
        assert [m[3] for m in marks] == ["-"] * at + [record.expected_answer] * (4 - at)


def test_a_held_out_chain_is_never_a_train_chain_of_either_task():
    heldout = {chain(r) for r in procedural_records("mod_choice", 200, seed=0, split="heldout")}
    heldout |= {chain(r) for r in procedural_records("mod_chain", 200, seed=0, split="heldout")}
    train = {chain(r) for r in procedural_records("mod_choice", 2000, seed=0)}
    train |= {chain(r) for r in procedural_records("mod_chain", 2000, seed=0)}
    assert not heldout & train


def test_the_same_seed_draws_other_chains_than_mod_chain():
    first = [chain(r) for r in procedural_records("mod_choice", 20, seed=0)]
    assert first != [chain(r) for r in procedural_records("mod_chain", 20, seed=0)]
    assert first == [chain(r) for r in procedural_records("mod_choice", 20, seed=0)]  # deterministic
