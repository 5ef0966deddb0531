"""Recipes: generic validation against stage config dataclasses, with the key path and the file line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from toy_stages import KeepEvenConfig, MakeConfig, Teacher, toy_stages

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.runner.recipe import RecipeError, load_recipe, loads_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

GOOD = """\
name: toy
out_dir: runs/toy
executor: {type: local, tasks: 2, workers: 1, time: 24:00:00}
generate:
  teacher: {model: tiny, mode: on}
  count: 12
  tags: [a, b]
  limits: {math: 3}
filter:
  executor: {tasks: 3}
  drop_multiples_of: 3
"""


def load(text: str, overrides=()):
    return loads_recipe(text, name="recipe.yaml", overrides=list(overrides), stages=toy_stages())


def problems(text: str, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load(text, overrides)
    return info.value.problems


def test_valid_recipe_loads_into_frozen_stage_configs_with_defaults_and_executor_overrides():
    recipe = load(GOOD)
    assert recipe.stage_names == ["generate", "filter"]
    make = recipe.stage("generate").config
    assert make == MakeConfig(teacher=Teacher(model="tiny", mode="on"), count=12, tags=["a", "b"], limits={"math": 3})
    assert recipe.stage("filter").config == KeepEvenConfig(drop_multiples_of=3)
    # `time: 24:00:00` is YAML 1.1 sexagesimal for 86400: a str field keeps the text as written.
    assert recipe.executor == ExecutorConfig(type="local", tasks=2, workers=1, time="24:00:00")
    assert recipe.stage("generate").executor == recipe.executor
    assert recipe.stage("filter").executor == dataclasses.replace(recipe.executor, tasks=3)  # key by key
    with pytest.raises(dataclasses.FrozenInstanceError):
        make.count = 3


def test_unknown_key_names_path_line_and_suggestion():
    text = GOOD.replace("  count: 12", "  cuont: 12").replace("  executor: {tasks: 3}", "  executor: {taks: 3}")
    found = problems(text + "filtre: {}\n")
    assert "recipe.yaml:6: generate.cuont: unknown key (did you mean 'count'?)" in found
    assert "recipe.yaml:10: filter.executor.taks: unknown key (did you mean 'tasks'?)" in found
    assert "recipe.yaml:12: filtre: unknown section (did you mean 'filter'?)" in found


def test_wrong_types_name_path_and_line():
    text = GOOD.replace("count: 12", "count: twelve").replace("mode: on", "mode: both-ways")
    text = text.replace("tags: [a, b]", "tags: [a, [b]]").replace("{math: 3}", "{math: lots}")
    found = problems(text.replace("workers: 1", "workers: yes"))
    assert "recipe.yaml:6: generate.count: expected an integer, got 'twelve'" in found
    assert any(p.startswith("recipe.yaml:5: generate.teacher.mode: expected one of 'on', 'off', 'both'") for p in found)
    assert "recipe.yaml:7: generate.tags.1: expected a string, got a list" in found
    assert "recipe.yaml:8: generate.limits.math: expected an integer, got 'lots'" in found
    assert "recipe.yaml:3: executor.workers: expected an integer, got yes" in found  # the text as written
    assert not any("filter.executor.workers" in p for p in found)  # a bad default is reported once


def test_blank_or_padded_keys_are_quoted_so_the_error_line_stays_clean():
    # Found by hypothesis: `" ": 1` gave `recipe.yaml:12:  : unknown section`.
    assert problems(GOOD + '" ": 1\n') == ["recipe.yaml:12: ' ': unknown section"]
    assert problems(GOOD + '"": 1\n') == ["recipe.yaml:12: '': unknown section"]
    found = problems(GOOD.replace("  count: 12", "  ' count': 12"))
    assert "recipe.yaml:6: generate.' count': unknown key (did you mean 'count'?)" in found


def test_literal_suggests_the_closest_choice_and_bool_is_not_an_int():
    found = problems(GOOD, ["generate.teacher.mode=bth", "generate.count=true"])
    assert any("generate.teacher.mode" in p and "(did you mean 'both'?)" in p for p in found)
    assert "--set generate.count=true: generate.count: expected an integer, got true" in found


def test_missing_required_value_is_named_at_its_section():
    found = problems(GOOD.replace("{model: tiny, mode: on}", "{mode: on}"))
    assert found == ["recipe.yaml:5: generate.teacher.model: missing (required)"]
    found = problems("name: x\nout_dir: y\ngenerate:\n  count: 3\n")
    assert found == ["recipe.yaml:3: generate.teacher: missing (required)"]
    assert "recipe.yaml:1: out_dir: missing (required)" in problems("name: x\ngenerate: {teacher: {model: m}}\n")


def test_config_own_checks_are_reported_at_the_field_line():
    assert problems(GOOD.replace("drop_multiples_of: 3", "drop_multiples_of: -1")) == [
        "recipe.yaml:11: filter.drop_multiples_of: must be >= 0"
    ]
    found = problems(GOOD.replace("type: local", "type: slurm"))
    assert "recipe.yaml:3: executor.partition: required when type is slurm" in found


def test_set_overrides_are_yaml_values_and_revalidated():
    recipe = load(GOOD, ["generate.count=20", "generate.teacher.model=big", "filter.executor.workers=2"])
    assert recipe.stage("generate").config.count == 20
    assert recipe.stage("generate").config.teacher.model == "big"
    assert recipe.stage("filter").executor.workers == 2
    recipe = load(GOOD, ["generate.tags.1=z", "generate.note=hello world", "generate.limits={code: 1}"])
    assert recipe.stage("generate").config.tags == ["a", "z"]
    assert recipe.stage("generate").config.note == "hello world"
    assert recipe.stage("generate").config.limits == {"code": 1}
    assert load(GOOD, ["generate.note=null"]).stage("generate").config.note is None
    assert problems(GOOD, ["generate.count=x"]) == [
        "--set generate.count=x: generate.count: expected an integer, got 'x'"
    ]
    assert problems(GOOD, ["generate.cont=4"]) == [
        "--set generate.cont=4: generate.cont: unknown key (did you mean 'count'?)"
    ]
    assert problems(GOOD, ["generate.tags.7=x"])[0].startswith("--set generate.tags.7=x: generate.tags.7: no item")
    assert problems(GOOD, ["novalue"]) == ["--set novalue: expected KEY.PATH=VALUE"]


def test_resolved_recipe_round_trips_with_the_same_fingerprint(tmp_path):
    recipe = load(GOOD, ["generate.count=7"])
    resolved = tmp_path / "recipe.resolved.yaml"
    resolved.write_text(recipe.to_yaml())
    again = load_recipe(resolved, stages=toy_stages())
    assert again.stages == recipe.stages and again.executor == recipe.executor
    assert again.fingerprint() == recipe.fingerprint()
    assert load(GOOD, ["generate.count=8"]).fingerprint() != recipe.fingerprint()
    # Only the stage that changed (and what follows it) gets a new stage fingerprint.
    changed = load(GOOD, ["generate.count=7", "filter.drop_multiples_of=5"])
    assert changed.stage_fingerprint("generate") == recipe.stage_fingerprint("generate")
    assert changed.stage_fingerprint("filter") != recipe.stage_fingerprint("filter")


def test_bad_files_and_yaml_are_clear(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.yaml", stages=toy_stages())
    assert problems("name: x\nout_dir: [\n")[0].startswith("recipe.yaml:3: invalid YAML")
    assert problems("- a\n- b\n")[0].startswith("recipe.yaml:1: a recipe is a mapping")
    assert problems("name: x\nout_dir: y\n") == ["recipe.yaml:1: no stages (expected some of: generate, filter)"]


def test_unavailable_stage_module_is_an_error_not_a_traceback():
    from thinktoggle.core.registry import StageSpec

    stages = {"generate": StageSpec("generate", "thinktoggle.no_such_module", "X", "run_x", takes_inputs=False)}
    with pytest.raises(RecipeError, match=r"recipe.yaml:3: generate: stage not available: cannot import"):
        loads_recipe("name: x\nout_dir: y\ngenerate: {}\n", name="recipe.yaml", stages=stages)


@pytest.mark.parametrize("name", ["demo-curation.yaml", "example-slurm.yaml"])
def test_shipped_recipes_validate_against_the_real_stages(name):
    recipe = load_recipe(RECIPES / name)
    assert recipe.stage_names[:2] == ["sources", "generate"]
    assert load_recipe(RECIPES / name, [f"out_dir={recipe.out_dir}"]).fingerprint() == recipe.fingerprint()


def test_real_stage_errors_name_key_and_line():
    with pytest.raises(RecipeError) as info:
        load_recipe(RECIPES / "demo-curation.yaml", ["generate.engine.kind=vlm", "sources.0.limt=3"])
    found = "\n".join(info.value.problems)
    assert (
        "--set generate.engine.kind=vlm: generate.engine.kind: expected one of 'vllm', 'openai', 'procedural'" in found
    )
    assert "(did you mean 'vllm'?)" in found
    assert "sources.0.limt: unknown key (did you mean 'limit'?)" in found
    with pytest.raises(RecipeError, match=r"demo-curation.yaml:\d+: generate.teacher_on: required for the vllm"):
        load_recipe(RECIPES / "demo-curation.yaml", ["generate.engine.kind=vllm"])


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates_and_round_trips(path, tmp_path):
    """Stage configs change; every recipe in recipes/ must still load (and its resolved form too)."""
    recipe = load_recipe(path)
    resolved = tmp_path / "recipe.resolved.yaml"
    resolved.write_text(recipe.to_yaml())
    assert load_recipe(resolved).fingerprint() == recipe.fingerprint()
