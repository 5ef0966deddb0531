"""The evaluation: scoring by the filters' own checks (format, math, choice, code in the real sandbox), the known
benchmarks' loaders on fixture rows in their real columns, the report, and the command line on a hand-written
jsonl with a real model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from thinktoggle.core.config_build import build_config
from thinktoggle.core.config_yaml import compose_text
from thinktoggle.filters.format import output_problem
from thinktoggle.generators.engines.config import EngineConfig
from thinktoggle.generators.sources import SourceConfig
from thinktoggle.training.benchmarks import KNOWN, BenchmarkConfig, iter_benchmark, lcb_cases, resolve
from thinktoggle.training.validate import ValidateConfig, format_table, metrics, score_answers

# (scorer, mode, output, expected answer, compliant, correct)
TRUTH_TABLE = [
    ("math", "on", "<think>\n2+3=5\n</think>\n\n\\boxed{5}", "5", True, True),
    ("math", "on", "<think>\n2+3=6\n</think>\n\n\\boxed{6}", "5", True, False),  # well formed, wrong
    ("math", "on", "<think>\n2+3=5\n</think>\n\n5", "5", True, True),  # a bare final answer counts
    ("math", "on", "\\boxed{5}", "5", False, False),  # no think in on mode: right answer, no credit
    ("math", "on", "<think>\n2+3=5 \\boxed{5}", "5", False, False),  # unclosed think: no final answer
    ("math", "on", "<think>\n\n</think>\n\n\\boxed{5}", "5", False, False),  # empty think
    ("math", "on", "<think>\n\\boxed{5}\n</think>\n\nI am not sure.", "5", True, False),  # answer only in the think
    ("math", "off", "\\boxed{5}", "5", True, True),
    ("math", "off", "\\boxed{4}", "5", True, False),
    ("math", "off", "<think>\n2+3=5\n</think>\n\n\\boxed{5}", "5", False, False),  # thinking when told not to
    ("math", "off", "", "5", False, False),
    ("math", "off", "The answer is \\boxed{\\frac{1}{2}}", "0.5", True, True),  # math-verify equivalence
    ("choice", "on", "<think>\n3+4=7, B\n</think>\n\n\\boxed{B}", "B", True, True),
    ("choice", "on", "<think>\nB\n</think>\n\nAnswer: C", "B", True, False),
    ("choice", "off", "\\boxed{B}", "B", True, True),
    ("choice", "off", "<think>\nB\n</think>\n\n\\boxed{B}", "B", False, False),
    ("choice", "off", "I cannot tell.", "B", True, False),  # no letter: never correct
]


@pytest.mark.parametrize(("scorer", "mode", "output", "expected", "compliant", "correct"), TRUTH_TABLE)
def test_compliance_rule_is_the_format_filters(scorer, mode, output, expected, compliant, correct):
    assert (output_problem(output, mode) is None) is compliant


def answers_of(rows):
    return [
        {"benchmark": scorer, "scorer": scorer, "pair_id": f"p{i}", "mode": mode, "output": output,
         "expected_answer": expected, "tokens": 10 if mode == "on" else 2}
        for i, (scorer, mode, output, expected, _, _) in enumerate(rows)
    ]  # fmt: skip


def test_scores_a_hand_made_output_set_and_summarizes_it():
    answers = answers_of(TRUTH_TABLE)
    score_answers(answers)
    for answer, row in zip(answers, TRUTH_TABLE, strict=True):
        assert (answer["compliant"], answer["correct"]) == row[4:], answer["output"]
    report = metrics(answers)
    for scorer in ("math", "choice"):
        for mode in ("on", "off"):
            rows = [r for r in TRUTH_TABLE if r[0] == scorer and r[1] == mode]
            got = report[scorer][mode]
            assert got["n_prompts"] == len(rows) and got["n_samples"] == 1
            assert got["pass@1"] == pytest.approx(sum(r[5] for r in rows) / len(rows))
            assert got["compliance"] == pytest.approx(sum(r[4] for r in rows) / len(rows))
    assert report["math"]["on"]["reasons"]["no_think"] == 1
    assert report["math"]["off"]["reasons"]["think_in_off_mode"] == 1
    assert report["choice"]["off"]["no_answer"] == pytest.approx(1 / 3)
    table = format_table(report)
    assert "pass@1 on - off" in table and "compliance" in table


CODE = "def add(a, b):\n    return a + b\n"
ADD_TESTS = {"entry_point": "add", "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}


def test_code_answers_run_in_the_sandbox_every_test_must_pass():
    rows = [
        ("on", f"<think>\nadd them\n</think>\n\n```python\n{CODE}```", True),
        ("on", "<think>\nsubtract\n</think>\n\n```python\ndef add(a, b):\n    return a - b\n```", False),
        ("off", f"```python\n{CODE}```", True),
        ("off", f"<think>\nx\n</think>\n\n```python\n{CODE}```", False),  # right program, wrong mode
        ("off", "no code here", False),
    ]
    stdio = {"stdio": [{"input": "2 3\n", "output": "5\n"}, {"input": "1 1\n", "output": "2\n"}]}
    rows_stdio = [
        ("off", "```python\na, b = map(int, input().split())\nprint(a + b)\n```", True),
        ("off", "```python\nprint(5)\n```", False),  # the first case passes, the second does not
    ]
    answers = [
        {"benchmark": "c", "scorer": "code", "pair_id": f"p{i}", "mode": m, "output": o, "tests": ADD_TESTS}
        for i, (m, o, _) in enumerate(rows)
    ] + [
        {"benchmark": "s", "scorer": "code", "pair_id": f"s{i}", "mode": m, "output": o, "tests": stdio}
        for i, (m, o, _) in enumerate(rows_stdio)
    ]
    score_answers(answers, code_workers=2)
    assert [a["correct"] for a in answers] == [r[2] for r in rows + rows_stdio]
    assert answers[1]["reason"] == "wrong_answer" and answers[4]["answer"] is None
    report = metrics(answers)
    assert report["c"]["off"]["maj@k"] is None  # programs are not votes


# -------------------------------------------------------------------------------------- known benchmarks
# The Hub is unreachable here: `load_hub_dataset` (the one Hub reader) is replaced by fixture rows in each
# dataset's real columns, and the test checks what was asked of the Hub (id, config, split).

FIXTURES = {
    "MATH-500": [{"problem": "What is $1+1$?", "solution": "It is 2.", "answer": "2", "subject": "Algebra",
                  "level": 1, "unique_id": "test/algebra/1.json"}],
    "AIME-2024": [{"id": 60, "problem": "Find the remainder when 2024 is divided by 1000.", "solution": "24",
                   "answer": "24", "url": "https://artofproblemsolving.com", "year": "2024"}],
    "AIME-2025": [{"problem_idx": 1, "problem": "Find the sum of 1 and 2.", "answer": 3}],
    "GPQA-Diamond": [{"Question": "Which particle has no charge?", "Correct Answer": "neutron",
                      "Incorrect Answer 1": "proton", "Incorrect Answer 2": "electron",
                      "Incorrect Answer 3": "positron", "Record ID": "rec1"}],
    "HumanEval": [{"task_id": "HumanEval/0", "prompt": "def add(a, b):\n    \"\"\"Add.\"\"\"\n",
                   "canonical_solution": "    return a + b\n", "test": ADD_TESTS["test"], "entry_point": "add"}],
    "MBPP": [{"task_id": 2, "text": "Write a function to add two numbers.", "code": "def add_nums(a, b):\n  return a + b",
              "test_list": ["assert add_nums(1, 2) == 3", "assert add_nums(0, 0) == 0"], "test_setup_code": "",
              "challenge_test_list": []}],
    "LiveCodeBench": [{"question_title": "Sum", "question_content": "Print a + b.", "platform": "atcoder",
                       "question_id": "abc001_a", "contest_id": "abc001", "contest_date": "2023-05-01T00:00:00",
                       "starter_code": "", "difficulty": "easy",
                       "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
                       "private_test_cases": "",  # the test fills in the real encoding (private_cases)
                       "metadata": "{}"}],
}  # fmt: skip
ASKED = {
    "MATH-500": ("HuggingFaceH4/MATH-500", None, "test"),
    "AIME-2024": ("HuggingFaceH4/aime_2024", None, "train"),
    "AIME-2025": ("MathArena/aime_2025", None, "train"),
    "GPQA-Diamond": ("Idavidrein/gpqa", "gpqa_diamond", "train"),
    "HumanEval": ("openai/openai_humaneval", None, "test"),
    "MBPP": ("google-research-datasets/mbpp", "full", "test"),
    "LiveCodeBench": ("livecodebench/code_generation_lite", "release_v5", "test"),
}


def private_cases() -> str:
    """LiveCodeBench's private-case encoding: base64(zlib(pickle(json string)))."""
    import base64
    import pickle
    import zlib

    cases = json.dumps([{"input": "5 5\n", "output": "10\n", "testtype": "stdin"}])
    return base64.b64encode(zlib.compress(pickle.dumps(cases))).decode()


@pytest.fixture
def hub(monkeypatch):
    import datasets

    import thinktoggle.generators.sources as sources

    asked = []

    def fake_load(dataset_id, config=None, split="train", **_):
        asked.append((dataset_id, config, split))
        name = next(n for n, a in ASKED.items() if a[0] == dataset_id)
        rows = [dict(r) for r in FIXTURES[name]]
        if name == "LiveCodeBench":
            rows[0]["private_test_cases"] = private_cases()
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(sources, "load_hub_dataset", fake_load)
    return asked


@pytest.mark.parametrize("name", list(KNOWN))
def test_known_benchmark_loads_its_hub_rows(hub, name):
    benchmark = resolve(BenchmarkConfig(name=name.lower().replace("-", "_")))  # names match loosely
    items = list(iter_benchmark(benchmark))
    assert hub == [ASKED[name]]
    assert len(items) == 1 and items[0][1] is not None, items[0][0]
    record = items[0][1]
    if benchmark.scorer == "math":
        assert record.expected_answer == str(FIXTURES[name][0]["answer"]) and "\\boxed{}" in record.prompt
    elif benchmark.scorer == "choice":
        letter = record.expected_answer
        assert f"{letter}) neutron" in record.prompt and record.category == "science"
    else:
        assert record.category == "code" and record.tests
    if name == "MBPP":
        assert record.tests["entry_point"] == "add_nums" and "assert add_nums(1, 2) == 3" in record.tests["test"]
    if name == "LiveCodeBench":
        assert record.tests == {"stdio": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5\n", "output": "10\n"}]}


def test_known_code_benchmarks_verify_their_reference_solutions(hub):
    """The loaders' tests are runnable: each reference solution passes in the sandbox, a wrong one fails."""
    answers = []
    for name, solution in (
        ("HumanEval", FIXTURES["HumanEval"][0]["prompt"] + FIXTURES["HumanEval"][0]["canonical_solution"]),
        ("MBPP", FIXTURES["MBPP"][0]["code"]),
        ("LiveCodeBench", "a, b = map(int, input().split())\nprint(a + b)"),
    ):
        record = next(iter_benchmark(resolve(BenchmarkConfig(name=name))))[1]
        for i, code in enumerate((solution, "def nothing():\n    pass")):
            answers.append({"benchmark": name, "scorer": "code", "pair_id": f"{name}{i}", "mode": "off",
                            "output": f"```python\n{code}\n```", "tests": record.tests})  # fmt: skip
    score_answers(answers)
    assert [a["correct"] for a in answers] == [True, False] * 3


def test_gpqa_choices_shuffle_the_same_way_every_run(hub):
    first = [r for _, r in iter_benchmark(resolve(BenchmarkConfig(name="GPQA-Diamond")))]
    again = [r for _, r in iter_benchmark(resolve(BenchmarkConfig(name="GPQA-Diamond")))]
    assert first[0].prompt == again[0].prompt and first[0].expected_answer == again[0].expected_answer


def test_unusable_rows_name_file_line_and_field(tmp_path):
    path = tmp_path / "gpqa.jsonl"
    good = FIXTURES["GPQA-Diamond"][0]
    bad = {k: v for k, v in good.items() if k != "Incorrect Answer 2"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    benchmark = resolve(BenchmarkConfig(name="GPQA-Diamond", source=SourceConfig(type="file", path=str(path))))
    items = list(iter_benchmark(benchmark))
    assert items[0][1] is not None and items[1][1] is None
    assert items[1][0].where == f"{path}:2" and items[1][0].field == "Incorrect Answer 2"
    lcb = tmp_path / "lcb.jsonl"
    row = {**FIXTURES["LiveCodeBench"][0], "private_test_cases": "",
           "public_test_cases": json.dumps([{"input": "[1]", "output": "1", "testtype": "functional"}])}  # fmt: skip
    lcb.write_text(json.dumps(row) + "\n")
    read, record = next(
        iter_benchmark(resolve(BenchmarkConfig(name="LiveCodeBench", source=SourceConfig(path=str(lcb)))))
    )
    assert record is None and read.field == "public_test_cases" and "call-based" in read.error


def test_pickled_test_cases_build_no_objects():
    import base64
    import os
    import pickle
    import zlib

    evil = base64.b64encode(zlib.compress(pickle.dumps(os.getcwd))).decode()  # a pickle that imports a function
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        lcb_cases(evil)


def test_config_from_a_recipe_section_and_its_errors():
    text = (
        "benchmarks:\n"
        "  - {name: MATH-500}\n"
        "  - {name: mine, scorer: choice, source: {type: file, path: q.jsonl}}\n"
        "sampling_on: {n: 4}\n"
    )
    config = build_config(ValidateConfig, compose_text(text, "r.yaml"), "validate")
    assert [b.name for b in config.benchmarks] == ["MATH-500", "mine"] and config.sampling_on.n == 4
    assert [b.scorer for b in config.resolved()] == ["math", "choice"]
    with pytest.raises(
        Exception, match=r"r.yaml:2: validate.benchmarks.0.scorer: expected one of .*did you mean 'choice'"
    ):
        build_config(ValidateConfig, compose_text("benchmarks:\n  - {name: x, scorer: choise}\n", "r.yaml"), "validate")
    with pytest.raises(ValueError, match="not a known benchmark"):
        resolve(BenchmarkConfig(name="MATH-5000"))
    with pytest.raises(ValueError, match="names must be unique"):
        ValidateConfig(benchmarks=(BenchmarkConfig(name="MATH-500"), BenchmarkConfig(name="MATH-500")))
    assert ValidateConfig().engine == EngineConfig(kind="auto")
    with pytest.raises(ValueError, match="engine: kind auto, vllm, transformers or openai"):
        ValidateConfig(engine=EngineConfig(kind="procedural"))


# ------------------------------------------------------------------------------ as a new user runs it


def test_command_line_on_a_hand_written_jsonl(tiny_model_dir, tmp_path):
    """`thinktoggle validate --model DIR --prompts file.jsonl --out DIR` with default flags (the transformers
    engine keeps the test short): an untrained model, so the figures are low, but every part is real."""
    prompts = tmp_path / "mine.jsonl"
    rows = [
        {"question": "What is 2 + 3?", "expected_answer": "5"},
        {"question": "What is 4 * 3?", "expected_answer": "12"},
        {"question": "What is 4 * 3?", "expected_answer": "12"},  # a repeat: dropped
        {"question": "No answer key here"},  # dropped: nothing to score against
        {"questoin": "typo"},  # failed: names its line and the column
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "thinktoggle.cli.main", "validate", "--model", str(tiny_model_dir),
           "--prompts", str(prompts), "--out", str(out), "--engine-kind", "transformers",
           "--sampling-on-max-tokens", "24", "--sampling-off-max-tokens", "24"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    for mode in ("on", "off"):
        row = report["benchmarks"]["prompts"][mode]
        assert row["n_prompts"] == 2 and row["n_samples"] == 1
        assert set(row) >= {"pass@1", "pass@k", "maj@k", "no_answer", "compliance", "reasoning_tokens",
                            "answer_tokens", "stderr"}  # fmt: skip
    # --prompts reads the file as a recipe's sources do: the typo fails there, the repeat is dropped there
    sources = json.loads((out / ".sources" / "stats.json").read_text())
    assert (sources["in"], sources["kept"], sources["dropped"], sources["failed"]) == (5, 3, 1, 1)
    failed = next((out / ".sources" / "failed").glob("*.parquet"))
    import pyarrow.parquet as pq

    assert pq.read_table(failed).to_pylist()[0]["source"] == f"{prompts}:5"
    stats = json.loads((out / "stats.json").read_text())  # validate: the one without an answer key dropped
    assert (stats["in"], stats["kept"], stats["dropped"], stats["failed"]) == (3, 2, 1, 0)
    assert stats["dropped_reasons"] == {"no_expected_answer": 1}
    assert (out / "plots" / "accuracy_by_benchmark.png").stat().st_size > 0
    assert (out / "plots" / "accuracy_vs_tokens.png").stat().st_size > 0
    assert "pass@1" in (out / "report.md").read_text()
    assert "validate: in" in done.stdout


def test_vllm_engine_answers_two_benchmarks_with_n_samples(vllm_llm, tiny_model_dir, tmp_path):
    from thinktoggle.generators.engines.base import SamplingConfig
    from thinktoggle.generators.engines.vllm_offline import VLLMEngine
    from thinktoggle.generators.procedural import procedural_records
    from thinktoggle.training.validate import Item, evaluate

    chains = procedural_records("mod_chain", 3, seed=1, split="heldout")
    choices = procedural_records("mod_choice", 2, seed=1, split="heldout")
    items = [Item("chain", "math", r) for r in chains] + [Item("choice", "choice", r) for r in choices]
    config = ValidateConfig(sampling_on=SamplingConfig(n=3, temperature=0.6, top_p=0.95, max_tokens=8))
    result, answers = evaluate(items, config, str(tiny_model_dir), engine=VLLMEngine.from_llm(vllm_llm))
    assert result["engine"].startswith("vllm")
    on, off = result["benchmarks"]["chain"]["on"], result["benchmarks"]["choice"]["off"]
    assert (on["n_prompts"], on["n_samples"], len(on["pass@k"])) == (3, 3, 3)
    assert (off["n_prompts"], off["n_samples"]) == (2, 1)
    assert len(answers) == 5 * 3 + 5
    assert all(a["reasoning_tokens"] + a["answer_tokens"] == a["tokens"] for a in answers)
