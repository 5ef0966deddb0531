"""The dataset card: YAML front matter that parses and drives `load_dataset`, tables, and plots that exist."""

from __future__ import annotations

import json

import pytest
from _curation_fixtures import pair, write_records

from thinktoggle.core.funnel import build_funnel, write_funnel
from thinktoggle.core.stats import StageStats
from thinktoggle.curation.card import portable_recipe, read_front_matter, size_category
from thinktoggle.curation.export import ExportConfig, run_export

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def records():
    out = []
    for i in range(8):
        out += pair(f"Solve problem {i}.", category="math", answer=f"The answer is {i}.")
    for i in range(3):
        out += pair(f"Tell me about topic {i}.", category="chat", answer="A short reply.", generator="teacher-b")
    return out


@pytest.fixture(scope="module")
def card_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("card")
    write_records(records(), tmp / "in")
    upstream = build_funnel(
        [
            StageStats("generate", n_in=24, kept=24),
            StageStats("filter", n_in=24, kept=22, dropped={"math:wrong_answer": 2}),
        ]
    )
    write_funnel(upstream, tmp / "run_stats.json")
    (tmp / "recipe.yaml").write_text("name: card-test\n")
    config = ExportConfig(
        name="toggle-card-test",
        upstream_stats=str(tmp / "run_stats.json"),
        recipe=str(tmp / "recipe.yaml"),
        license="cc-by-4.0",
    )
    run_export(config, [tmp / "in"], tmp / "export")
    return tmp / "export"


def test_front_matter_parses_and_lists_a_split_per_category(card_dir):
    meta = read_front_matter(card_dir / "README.md")
    assert meta["license"] == "cc-by-4.0"
    assert meta["task_categories"] == ["text-generation"] and meta["size_categories"] == ["n<1K"]
    assert "reasoning" in meta["tags"]
    (config,) = meta["configs"]
    assert config["config_name"] == "SFT" and config["default"] is True
    assert config["data_files"] == [
        {"split": "chat", "path": "SFT/chat/*.parquet"},
        {"split": "math", "path": "SFT/math/*.parquet"},
    ]
    for entry in config["data_files"]:
        assert list(card_dir.glob(entry["path"]))


def test_plots_exist_and_are_linked(card_dir):
    text = (card_dir / "README.md").read_text()
    for name in ("funnel.png", "lengths_math.png", "lengths_chat.png"):
        path = card_dir / "plots" / name
        assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 5000
        assert f"(plots/{name})" in text


def test_tables_funnel_provenance_and_recipe(card_dir):
    text = (card_dir / "README.md").read_text()
    assert "| math | on | teacher-a | 8 |" in text and "| chat | off | teacher-b | 3 |" in text
    # The funnel from the upstream stats plus export itself, every drop reason named.
    assert "| filter | 24 | 22 | 2 | 0 | math:wrong_answer (2) |" in text
    assert "| export | 22 | 22 | 0 | 0 | - |" in text
    assert "Accounting breaks" not in text
    assert "name: card-test" in text
    # Lengths on vs off: the on rows (with their think block) are longer.
    lines = [line for line in text.splitlines() if line.startswith("| math | o")]
    mean = {line.split("|")[2].strip(): float(line.split("|")[4]) for line in lines if line.count("|") == 8}
    assert mean["on"] > mean["off"]


def test_inconsistent_funnel_is_shown_not_hidden(tmp_path):
    write_records(pair("One prompt."), tmp_path / "in")
    write_funnel(build_funnel([StageStats("mix", n_in=5, kept=5)]), tmp_path / "stats.json")
    run_export(
        ExportConfig(upstream_stats=str(tmp_path / "stats.json"), plots=False), [tmp_path / "in"], tmp_path / "out"
    )
    text = (tmp_path / "out" / "README.md").read_text()
    assert "**Accounting breaks:** mix.kept=5 != export.in=2" in text
    assert not (tmp_path / "out" / "plots").exists()


def test_token_lengths_with_a_real_tokenizer(tiny_model_dir, tmp_path):
    write_records(pair("What is 1 + 2 * 3?", answer="\\boxed{7}"), tmp_path / "in")
    run_export(
        ExportConfig(tokenizer=str(tiny_model_dir), plots=False, upstream_stats=""), [tmp_path / "in"], tmp_path / "out"
    )
    text = (tmp_path / "out" / "README.md").read_text()
    assert f"Unit: tokens ({tiny_model_dir.name})." in text


@pytest.mark.parametrize(("rows", "name"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (2_500_000, "1M<n<10M")])
def test_size_category(rows, name):
    assert size_category(rows) == name


def test_stats_json_of_export(card_dir):
    stats = json.loads((card_dir / "stats.json").read_text())
    assert stats["in"] == stats["kept"] == 22


def test_the_card_shows_the_recipe_with_paths_relative_to_the_recipe_file(tmp_path, monkeypatch):
    """The runner expands `${recipe_dir}` to the recipe file's folder, an absolute path of the machine that ran
    it, in recipe.resolved.yaml; the card writes that folder back as `${recipe_dir}`."""
    from thinktoggle.runner.recipe import load_recipe

    recipes = tmp_path / "checkout" / "recipes"
    (recipes / "data").mkdir(parents=True)
    (recipes / "data" / "bench.jsonl").write_text('{"problem": "What is 2 + 2?"}\n')
    (recipes / "toy.yaml").write_text(
        "name: toy\nout_dir: run\ninputs: [in]\n"
        'decontaminate:\n  benchmarks:\n  - {name: bench, path: "${recipe_dir}/data/bench.jsonl"}\n'
        "export: {plots: false}\n"
    )
    monkeypatch.chdir(tmp_path / "checkout")  # the run names its recipe as typed, relative to where it started
    resolved = load_recipe("recipes/toy.yaml").to_yaml()
    assert f"path: {recipes.resolve()}/data/bench.jsonl" in resolved  # what the run folder keeps
    run = tmp_path / "run"
    write_records(pair("One prompt."), run / "mix")
    (run / "recipe.resolved.yaml").write_text(resolved)
    run_export(ExportConfig(upstream_stats="", plots=False), [run / "mix"], run / "export")
    card = (run / "export" / "README.md").read_text()
    assert "# resolved from toy.yaml\n" in card
    assert "path: ${recipe_dir}/data/bench.jsonl" in card
    assert str(tmp_path) not in card


def test_only_the_recipe_folder_itself_becomes_recipe_dir(tmp_path):
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.parent.mkdir()
    recipe.write_text("name: r\n")
    folder = recipe.resolve().parent
    text = (
        f"# resolved from {recipe} with --set a=1\nx: {folder}/data.jsonl\ny: {folder}-old/data.jsonl\nz: '{folder}'\n"
    )
    assert portable_recipe(text) == (
        f"# resolved from r.yaml with --set a=1\nx: ${{recipe_dir}}/data.jsonl\ny: {folder}-old/data.jsonl\n"
        "z: '${recipe_dir}'\n"
    )
    moved = f"# resolved from {tmp_path}/gone/r.yaml\nx: {tmp_path}/gone/data.jsonl\n"
    assert portable_recipe(moved) == moved  # the folder cannot be told from here: shown as it is
