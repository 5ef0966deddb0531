"""The LLM-judge filter: the verdict parser's truth table, prompt rendering, which rows are asked, and the
judge for real: the shared tiny vLLM engine through a datatrove pipeline, and the filter stage building its
own OpenAI-compatible engine from the recipe's config (against a port nothing listens on)."""

from __future__ import annotations

import json
import socket

import polars as pl
import pytest
from _filter_rows import off, on, record

from thinktoggle.core.executors import ExecutorConfig, make_executor
from thinktoggle.core.stats import StageStats
from thinktoggle.core.verdicts import KeepPolicy
from thinktoggle.filters.judge import JudgeConfig, JudgeFilter, parse_judgement, render_prompt, verdict_from_completion
from thinktoggle.filters.stage import FilterConfig, run_filter
from thinktoggle.filters.steps import FilterStageWriter, RecordReader
from thinktoggle.generators.engines.base import Completion, SamplingConfig
from thinktoggle.generators.engines.config import EngineConfig
from thinktoggle.schemas.arrow import RECORD_SCHEMA
from thinktoggle.schemas.convert import record_to_arrow_row
from thinktoggle.schemas.io import ShardWriter
from thinktoggle.schemas.record import Verdict

# (judge reply, what it says: True = Yes, False = No, None = no verdict)
TRUTH_TABLE = [
    ("Judgement: Yes", True),
    ("Judgement: No", False),
    ("judgement: yes", True),
    ("JUDGEMENT: NO.", False),
    ("Judgment: Yes", True),  # US spelling
    ("**Judgement**: Yes", True),  # markdown around the label
    ("Judgement: **No**", False),  # and around the word
    ("The answers differ (3 vs 4).\n\nJudgement: No", False),
    ("Format: 'Judgement: Yes' or 'Judgement: No'. Both are 1/2.\nJudgement: Yes", True),  # the last one counts
    ("Judgement: No\nOn reflection they match.\nJudgement: Yes", True),
    ("<think>\nJudgement: No? let me check\n</think>\n\nJudgement: Yes", True),  # reasoning is skipped
    ("<think>\nthey match, Judgement: Yes", None),  # unclosed think: no final answer at all
    ("Yes", None),  # no label
    ("The answers are equivalent.", None),
    ("Judgement: Yesterday's answer", None),  # a word that starts with yes
    ("Judgement: Maybe", None),
    ("Judgement:", None),
    ("", None),
]


@pytest.mark.parametrize(("reply", "said"), TRUTH_TABLE)
def test_parse_judgement_truth_table(reply, said):
    assert parse_judgement(reply) is said


def test_verdicts_from_completions():
    assert verdict_from_completion(Completion(text="ok. Judgement: Yes"), JudgeConfig().verdict_pattern) == Verdict(
        "judge", "pass", "judge_said_yes"
    )
    said_no = verdict_from_completion(Completion(text="Judgement: No"), JudgeConfig().verdict_pattern)
    assert (said_no.verdict, said_no.reason) == ("fail", "judge_said_no")
    garbled = verdict_from_completion(Completion(text="x y z " * 100), JudgeConfig().verdict_pattern)
    assert garbled.verdict == "unverifiable" and garbled.reason.startswith("unparsable_judgement: ")
    assert len(garbled.reason) < 200  # the reply's tail, not all of it
    failed = verdict_from_completion(Completion(error="http_400: prompt too long"), JudgeConfig().verdict_pattern)
    assert (failed.verdict, failed.reason) == ("error", "judge_error: http_400: prompt too long")
    custom = verdict_from_completion(Completion(text="VERDICT=no"), r"verdict=(yes|no)")
    assert custom.reason == "judge_said_no"


def test_render_prompt_fills_each_placeholder_once_and_keeps_other_braces():
    template = "Q: {question}\nA: {answer}\nGold: {reference}\nBox it: \\boxed{} {other}"
    text = render_prompt(template, question="what is {answer}?", answer="\\boxed{5}", reference="{question}")
    assert text == "Q: what is {answer}?\nA: \\boxed{5}\nGold: {question}\nBox it: \\boxed{} {other}"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt": "no answer placeholder {question}"}, "must contain {answer}"),
        ({"verdict_pattern": "judgement: (yes|no"}, "not a regular expression"),
        ({"verdict_pattern": "judgement: yes"}, "needs a group"),
        ({"sampling": SamplingConfig(n=2)}, "n: 1"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_config_refuses_what_cannot_work(changes, message):
    with pytest.raises(ValueError, match=message):
        JudgeConfig(**changes)


def test_filter_stage_requires_a_judge_model_and_engine_only_when_the_judge_runs():
    FilterConfig()  # the judge is opt-in: the default filters need no model
    with pytest.raises(ValueError, match="judge: engine: required when the judge filter runs"):
        FilterConfig(only=("format", "judge"))
    with pytest.raises(ValueError, match="judge: model: required"):
        FilterConfig(only=("judge",), judge=JudgeConfig(engine=EngineConfig(kind="vllm")))
    with pytest.raises(ValueError, match="judge: engine: the procedural engine cannot judge"):
        FilterConfig(only=("judge",), judge=JudgeConfig(engine=EngineConfig(kind="procedural"), model="m"))
    with pytest.raises(ValueError, match="base_url: required for the openai engine"):
        JudgeConfig(engine=EngineConfig(kind="openai"), model="m")


def test_which_rows_are_asked_and_outcomes_without_asking():
    config = JudgeConfig(
        engine=EngineConfig(kind="vllm"),
        model="never-built",
        categories=("math", "chat"),
        only_unverifiable_by=("math",),
    )
    judge = JudgeFilter(config)
    unverified = Verdict("math", "unverifiable", "answer_unparsable")
    rows = [
        record("Hello", "off", category="chat", prompt="hi"),  # chat, but math never looked at it
        record("Hello", "off", category="code", prompt="hi"),  # not a judged category
        on("so it is five", "five", gold="5", verdicts=[Verdict("math", "pass", "")]),  # math decided it
        on("thinking", "", gold="5", verdicts=[unverified]),  # nothing after </think>
        off("about five", verdicts=[unverified]),  # no gold, and the prompt needs {reference}
    ]
    judged = judge.judge_records(rows)
    assert [j.verdict for j in judged[:3]] == [None, None, None]
    assert (judged[3].verdict.verdict, judged[3].verdict.reason.split(":")[0]) == ("fail", "empty_answer")
    assert (judged[4].verdict.verdict, judged[4].verdict.reason.split(":")[0]) == ("unverifiable", "no_reference")
    assert judge._engine is None  # nothing needed the model: it was never loaded

    chatty = JudgeFilter(
        JudgeConfig(engine=EngineConfig(kind="vllm"), model="m", prompt="Rate: {answer}", system="Be strict.")
    )
    request = chatty.request(
        record("<think>\nhmm\n</think>\n\nfinal words", "on", category="chat", prompt="hi", gold=None)
    )
    assert request.messages == [
        {"role": "system", "content": "Be strict."},
        {"role": "user", "content": "Rate: final words"},  # the final answer, not the reasoning
    ]
    assert request.n == 1 and request.sampling.temperature == 0.0


def _write_records(folder, records) -> None:
    with ShardWriter(folder, RECORD_SCHEMA) as writer:
        for rec in records:
            writer.write(record_to_arrow_row(rec))


CHAT = [f"Say something about the number {k}." for k in range(4)]
SHORT_PROMPT = "Question: {question}\nReply: {answer}\nJudgement:"  # fits the tiny model's 512-token window


def test_judge_with_the_real_vllm_engine_through_a_datatrove_pipeline(vllm_llm, tmp_path):
    """The untrained tiny model answers gibberish: its replies come back as unparsable_judgement, which proves
    the plumbing (requests built, one batched engine call, replies parsed, verdicts routed and counted)."""
    from thinktoggle.generators.engines.vllm_offline import VLLMEngine

    rows = [off(f"{k} is a number.", category="chat", prompt=p) for k, p in enumerate(CHAT)]
    rows.append(on("2+2", "\\boxed{4}", gold="4"))  # math: not a judged category, passes through
    rows.append(record("<think>\nstill thinking", "on", category="chat", prompt="unfinished"))  # no answer
    _write_records(tmp_path / "in", rows)
    config = JudgeConfig(
        engine=EngineConfig(kind="vllm"),
        model="tiny",
        categories=("chat",),
        prompt=SHORT_PROMPT,
        sampling=SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=12),
        batch_size=8,
    )
    out = tmp_path / "out"
    judge = JudgeFilter(config, KeepPolicy(("pass", "judge:unverifiable")), engine=VLLMEngine.from_llm(vllm_llm))

    # one batch straight through the filter: every chat row was asked, and got a reply
    judged = judge.judge_records(rows)
    assert [j.reply is not None for j in judged] == [True] * 4 + [False, False]
    for outcome in judged[:4]:
        assert outcome.verdict.filter == "judge"
        assert outcome.verdict.reason.split(":")[0] in ("unparsable_judgement", "judge_said_yes", "judge_said_no")
    assert judged[4].verdict is None and judged[5].verdict.reason.startswith("empty_answer")

    # the same filter as a datatrove step between the stage's reader and writer
    pipeline = [RecordReader([str(tmp_path / "in")], str(out), False), judge, FilterStageWriter(str(out), ["judge"])]
    make_executor(ExecutorConfig(tasks=1, workers=1), pipeline, out / "logs", job_name="judge-test").run()
    stats = StageStats.read(out / "ranks" / "rank00000.json")
    assert stats.n_in == 6 == stats.kept + stats.n_dropped + stats.n_failed
    assert stats.dropped.get("empty_answer") == 1 and stats.n_failed == 0
    kept = pl.read_parquet(out / "kept")
    judged_kept = kept.filter(pl.col("category") == "chat")
    assert judged_kept.height + stats.dropped.get("judge_said_no", 0) == 4  # unparsable (kept here) or yes/no
    assert kept.filter(pl.col("category") == "math").height == 1
    for meta in judged_kept["metadata"].to_list():  # the judge's reply is kept for auditing
        assert json.loads(meta)["judge"]["model"] == "tiny"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # released on close: nothing listens there


def test_filter_stage_builds_the_judge_from_config_and_fails_rows_it_cannot_judge(tmp_path):
    """run_filter with `only: [format, judge]`: the stage builds a real OpenAI-compatible engine from the
    recipe's settings; with no server there, the judged rows fail (judge_error), nothing is lost."""
    rows = [off(f"Answer {k}.", category="chat", prompt=p) for k, p in enumerate(CHAT)]
    rows.append(record("no think here", "on", category="chat", prompt="bad format"))  # format drops it first
    _write_records(tmp_path / "in", rows)
    config = FilterConfig(
        only=("format", "judge"),
        judge=JudgeConfig(
            engine=EngineConfig(
                kind="openai", base_url=f"http://127.0.0.1:{_closed_port()}/v1", retries=0, timeout=5.0
            ),
            model="judge-model",
            categories=("chat",),
            prompt="Is this a good reply to {question}?\n{answer}\nJudgement: Yes or No",
        ),
    )
    stats = run_filter(config, [tmp_path / "in"], tmp_path / "out", ExecutorConfig(tasks=1, workers=1))
    assert (stats.n_in, stats.kept, stats.n_dropped, stats.n_failed) == (5, 0, 1, 4)
    assert stats.failed == {"judge_error": 4} and stats.dropped == {"no_think": 1}
    failed = pl.read_parquet(tmp_path / "out" / "failed")
    assert set(failed["reason"]) == {"judge_error"}
    assert all("request_failed" in d and "APIConnectionError" in d for d in failed["detail"])
