"""Every recipe in recipes/ plans offline (`thinktoggle run R --dry-run`), names its models and datasets, and
states its cost; a typo in a copied real recipe is reported with its key and line; and the real recipes'
Hub column mappings read rows of the same shape from local datasets (the Hub itself is not reachable here,
so local `save_to_disk` folders stand in for it: the loading code is the same `datasets` path)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from thinktoggle.cli.main import app
from thinktoggle.generators.sources import SourceConfig, iter_source
from thinktoggle.runner.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
ALL = sorted(RECIPES.glob("*.yaml"))
REAL = [p for p in ALL if p.stem.startswith(("nemotron-", "nano-", "recurate-"))]
MODEL_KEYS = ("teacher_on", "teacher_off", "model")
DATA_KEYS = ("hub_id", "prompts")


def named(node, keys, found=None) -> set[str]:
    """Every string value of `keys` anywhere in the parsed YAML (read independently of the loader)."""
    found = set() if found is None else found
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str) and value:
                found.add(value)
            named(value, keys, found)
    elif isinstance(node, list):
        for item in node:
            named(item, keys, found)
    return found


def dry_run(recipe: Path, out: Path, *extra: str):
    return CliRunner().invoke(app, ["run", str(recipe), "--dry-run", "--set", f"out_dir={out}", *extra])


def test_the_real_recipes_are_all_here():
    assert {p.stem for p in REAL} >= {
        "nemotron-math",
        "nemotron-code",
        "nemotron-science",
        "nemotron-chat",
        "nano-sft",
        "recurate-published",
    }


@pytest.mark.parametrize("recipe", ALL, ids=lambda p: p.stem)
def test_every_recipe_dry_runs_offline_and_names_its_models_and_data(recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a plan never needs the Hub
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    result = dry_run(recipe, tmp_path / "plan")
    assert result.exit_code == 0, result.output
    text = yaml.safe_load(recipe.read_text())
    loaded = load_recipe(recipe)
    for stage in loaded.stage_names:
        assert stage in result.output
    sources = text.get("sources") or []
    hub_sources = {s["path"] for s in sources if s.get("type") in ("hf", "published", "file")}
    for name in named(text, MODEL_KEYS) | named(text, DATA_KEYS) | hub_sources:
        assert name.replace("${recipe_dir}", str(RECIPES)) in result.output, f"{name} not in the plan"
    if text["executor"].get("type") == "slurm":
        assert "sbatch plan" in result.output and "#SBATCH --partition=" in result.output
    assert not (tmp_path / "plan").exists()  # planning writes nothing


@pytest.mark.parametrize("recipe", REAL, ids=lambda p: p.stem)
def test_real_recipes_state_their_gpus_cost_and_paper_setting(recipe):
    header = "".join(line for line in recipe.read_text().splitlines(keepends=True) if line.startswith("#"))
    assert "2505.00949" in header or "Llama-Nemotron" in header  # the paper setting it follows
    assert re.search(r"GPU|CPU only", header)
    assert re.search(r"tokens|rows", header) and re.search(r"\d+(\.\d+)? ?h\b", header)  # work and hours
    # with the arithmetic shown: "... = 800 M output tokens", "= 160,000 s", "-> 22 M rows in ~3.8 h"
    assert re.search(r"[=>] *~?[\d,.]+ ?[MBK]? (output )?tokens|= *~?[\d,.]+ s\b|-> *~?[\d,.]+ ?[MBK]? rows", header)


def test_gpu_stages_ask_slurm_for_gpus():
    math = load_recipe(RECIPES / "nemotron-math.yaml")
    generate = math.stage("generate")
    assert generate.executor.gpus_per_task == generate.config.engine.tp * generate.config.dp == 8
    assert math.stage("filter").executor.gpus_per_task == math.stage("filter").config.judge.engine.tp
    assert math.stage("dedup").executor.gpus_per_task == 0
    nano = load_recipe(RECIPES / "nano-sft.yaml")
    assert nano.stage_names == ["train", "validate"] and nano.stage("train").executor.gpus_per_task == 1


def test_nano_stage_two_is_the_same_recipe_with_overrides(tmp_path):
    stage2 = [
        "--set",
        "inputs=[runs/nano-sft-data/stage2]",
        "--set",
        "train.model=runs/nano-sft/train/model",
        "--set",
        "train.lr=1.0e-5",
    ]
    result = dry_run(RECIPES / "nano-sft.yaml", tmp_path / "stage2", *stage2)
    assert result.exit_code == 0, result.output
    assert "train.model=runs/nano-sft/train/model" in result.output and "stage2" in result.output


def test_a_typo_in_a_copied_real_recipe_names_the_key_and_line(tmp_path):
    text = (RECIPES / "nemotron-math.yaml").read_text()
    text = text.replace("  teacher_off: meta-llama", "  teacher_of: meta-llama", 1)
    text = text.replace("sampling_on: {n: 16, temperature:", "sampling_on: {n: 16, temprature:", 1)
    text = text.replace("    only_unverifiable_by: [math]", "    only_unverifiable_by: math", 1)
    copied = tmp_path / "my-math.yaml"
    copied.write_text(text)
    lines = text.splitlines()
    line_of = {
        word: next(i for i, line in enumerate(lines, 1) if word in line)
        for word in ("teacher_of:", "temprature", "only_unverifiable_by")
    }
    result = CliRunner().invoke(app, ["run", str(copied), "--dry-run"])
    assert result.exit_code == 2
    output = " ".join(result.output.split())  # rich may wrap; compare words
    assert (
        f"{copied}:{line_of['teacher_of:']}: generate.teacher_of: unknown key (did you mean 'teacher_off'?)" in output
    )
    assert f"{copied}:{line_of['temprature']}: generate.sampling_on.temprature: unknown key" in output
    assert f"{copied}:{line_of['only_unverifiable_by']}: filter.judge.only_unverifiable_by: expected a list" in output


# ------------------------------------------------------------------ the Hub column mappings, on local data


def _local_dataset(folder: Path, rows: list[dict]) -> str:
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    return str(folder)


def _hub_sources(recipe: str) -> list[SourceConfig]:
    return [s for s in load_recipe(RECIPES / recipe).stage("sources").config.sources if s.type == "hf"]


def _read(source: SourceConfig, path: str):
    items = list(iter_source(dataclasses.replace(source, path=path, limit=0)))
    return [r for _, r in items if r is not None], [read for read, r in items if r is None]


def test_math_mapping_wraps_the_problem_and_keeps_the_answer(tmp_path):
    (source,) = _hub_sources("nemotron-math.yaml")
    assert source.path == "AI-MO/NuminaMath-1.5"
    rows = [{"problem": "Find $x$ if $2x = 6$.", "answer": "3", "solution": "...", "problem_type": "Algebra"}]
    records, bad = _read(source, _local_dataset(tmp_path / "numina", rows))
    assert not bad and len(records) == 1
    prompt = records[0].input[0]["content"]
    assert prompt.startswith("Solve the following math problem.") and "inside \\boxed{}" in prompt
    assert prompt.endswith("Find $x$ if $2x = 6$.")
    assert (records[0].category, records[0].expected_answer, records[0].license) == ("math", "3", "apache-2.0")


def test_code_mappings_turn_taco_and_codecontests_tests_into_stdio_cases(tmp_path):
    taco, contests = _hub_sources("nemotron-code.yaml")
    taco_rows = [
        {"question": "Add two numbers.", "input_output": json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})},
        {"question": "Call f.", "input_output": json.dumps({"fn_name": "f", "inputs": [[1]], "outputs": [2]})},
    ]
    records, bad = _read(taco, _local_dataset(tmp_path / "taco", taco_rows))
    assert records[0].tests == {"stdio": [{"input": "1 2\n", "output": "3\n"}]}
    assert "```python" in records[0].input[0]["content"] and records[0].category == "code"
    assert len(bad) == 1 and bad[0].field == "input_output" and "call-based" in bad[0].error  # reported, not lost
    contest_rows = [{"description": "Echo.", "public_tests": {"input": ["a\n", "b\n"], "output": ["a\n", "b\n"]}}]
    records, bad = _read(contests, _local_dataset(tmp_path / "cc", contest_rows))
    assert not bad and records[0].tests == {
        "stdio": [{"input": "a\n", "output": "a\n"}, {"input": "b\n", "output": "b\n"}]
    }


@pytest.mark.parametrize(("recipe", "category"), [("nemotron-science.yaml", "science"), ("nemotron-chat.yaml", "chat")])
def test_published_prompt_mappings_reuse_the_input_messages(recipe, category, tmp_path):
    (source,) = _hub_sources(recipe)
    assert source.path == "nvidia/Llama-Nemotron-Post-Training-Dataset" and source.split == category
    turns = [{"role": "user", "content": "Which is a noble gas? A) N B) Ne C) O D) H"}]
    published = {
        "input": turns,
        "output": "<think>\nneon\n</think>\n\n\\boxed{B}",
        "category": category,
        "license": "cc-by-4.0",
        "reasoning": "on",
        "generator": "DeepSeek-R1",
        "used_in_training": "Ultra, Super, Nano",
        "version": "v1.1",
        "system_prompt": "detailed thinking on",
    }
    rows = [published, {**published, "reasoning": "off", "output": "B", "system_prompt": "detailed thinking off"}]
    records, bad = _read(source, _local_dataset(tmp_path / category, rows))
    assert not bad and {r.pair_id for r in records} == {records[0].pair_id}  # one prompt, twice
    assert records[0].input == turns and records[0].output == "" and records[0].category == category
