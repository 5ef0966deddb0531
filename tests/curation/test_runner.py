"""The runner: stages chained through their folders, markers, refusal of a changed recipe, --from/--only,
the CLI, and the shipped demo recipe end to end (with `thinktoggle check`) and after a kill -9."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from toy_stages import toy_stages

from thinktoggle.cli.main import app
from thinktoggle.runner.recipe import loads_recipe
from thinktoggle.runner.run import RunError, RunLayout, run_recipe
from thinktoggle.schemas.io import iter_records

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo-curation.yaml"
TOY_DIR = Path(__file__).resolve().parent

TOY = """\
name: toy
out_dir: {out}
executor: {{type: local, tasks: 2, workers: 1}}
generate:
  teacher: {{model: tiny}}
  count: 20
filter:
  drop_multiples_of: 3
"""


def toy_recipe(out: Path, overrides=()):
    return loads_recipe(TOY.format(out=out), name="toy.yaml", overrides=list(overrides), stages=toy_stages())


def ids(folder: Path) -> list[str]:
    return [record.id for _, record in iter_records([folder])]


def run_quiet(recipe, **kwargs):
    lines: list[str] = []
    result = run_recipe(recipe, stages=toy_stages(), report=lines.append, **kwargs)
    return result, lines


def test_stages_chain_through_folders_and_the_funnel_adds_up(tmp_path):
    result, _ = run_quiet(toy_recipe(tmp_path / "run"))
    root = tmp_path / "run"
    assert result.ran == ["generate", "filter"]
    numbers = sorted(r.metadata["n"] for _, r in iter_records([root / "filter"]))
    assert numbers == [n for n in range(20) if n % 2 == 0 and n % 3]  # read generate's records, judged each
    funnel = json.loads((root / "stats.json").read_text())
    assert [s["stage"] for s in funnel["stages"]] == ["make", "keep_even"]  # the stages' own names
    assert funnel["folders"] == {"make": "generate", "keep_even": "filter"}
    generate, keep_even = funnel["stages"]
    assert generate["kept"] == keep_even["in"] == 20 and funnel["consistent"]
    assert keep_even["dropped_reasons"] == {"odd": 10, "multiple_of_3": 4}  # 0, 6, 12, 18
    assert keep_even["in"] == keep_even["kept"] + keep_even["dropped"] + keep_even["failed"]
    resolved = (root / "recipe.resolved.yaml").read_text()
    assert "drop_multiples_of: 3" in resolved and "temperature: 0.6" in resolved  # defaults written out
    for stage in ("generate", "filter"):
        marker = json.loads((root / ".run" / "done" / f"{stage}.json").read_text())
        assert marker["stats"]["stage"] in ("make", "keep_even")
        assert (root / stage / "stats.json").stat().st_mtime <= (
            root / ".run" / "done" / f"{stage}.json"
        ).stat().st_mtime


def test_rerun_skips_completed_stages(tmp_path):
    recipe = toy_recipe(tmp_path / "run")
    run_quiet(recipe)
    shard = next((tmp_path / "run" / "filter" / "kept").glob("rank*.parquet"))
    before = shard.stat().st_mtime_ns
    result, lines = run_quiet(recipe)
    assert result.ran == [] and result.skipped == ["generate", "filter"]
    assert shard.stat().st_mtime_ns == before
    assert "complete, skipped" in lines[0]


def test_changed_recipe_is_refused_then_forced_reruns_only_what_changed(tmp_path):
    root = tmp_path / "run"
    run_quiet(toy_recipe(root))
    generate_shard = root / "generate" / "kept" / "part-00000-00000.parquet"
    generated_at = generate_shard.stat().st_mtime_ns
    changed = toy_recipe(root, ["filter.drop_multiples_of=4"])
    with pytest.raises(RunError, match=r"different recipe; changed:\n  filter.drop_multiples_of: 3 -> 4"):
        run_quiet(changed)
    result, _ = run_quiet(changed, force=True)
    assert result.skipped == ["generate"] and result.ran == ["filter"]
    assert generate_shard.stat().st_mtime_ns == generated_at
    numbers = sorted(r.metadata["n"] for _, r in iter_records([root / "filter"]))
    assert numbers == [n for n in range(20) if n % 2 == 0 and n % 4]
    # The executor is part of the recipe too: a different task count would split inputs differently.
    with pytest.raises(RunError, match="executor.tasks: 2 -> 3"):
        run_quiet(toy_recipe(root, ["filter.drop_multiples_of=4", "executor.tasks=3"]))


def test_from_and_only(tmp_path):
    root = tmp_path / "run"
    with pytest.raises(RunError, match="earlier stage.s. not complete: generate"):
        run_quiet(toy_recipe(root), from_stage="filter")
    with pytest.raises(RunError, match="no such stage"):
        run_quiet(toy_recipe(root), only="dedup")
    run_quiet(toy_recipe(root))
    result, _ = run_quiet(toy_recipe(root), only="filter")
    assert result.ran == ["filter"]
    result, _ = run_quiet(toy_recipe(root), from_stage="generate")
    assert result.ran == ["generate", "filter"]
    assert len(ids(root / "filter")) == len(set(ids(root / "filter"))) == 6


def test_stage_failure_leaves_no_marker_and_the_rerun_resumes(tmp_path):
    root = tmp_path / "run"
    recipe = toy_recipe(root, ["generate.count=25"])
    # Some of generate's shards exist (as a killed run leaves them); the rerun writes only the rest.
    (root / "generate").mkdir(parents=True)
    from toy_stages import MakeConfig, Teacher, run_make

    run_make(MakeConfig(Teacher("tiny"), count=10), [], root / "generate")
    (root / "generate" / "stats.json").unlink()
    kept_early = {p.name: p.stat().st_mtime_ns for p in (root / "generate").glob("*.parquet")}
    result, _ = run_quiet(recipe)
    assert result.ran == ["generate", "filter"]
    assert {
        p.name: p.stat().st_mtime_ns for p in (root / "generate").glob("*.parquet") if p.name in kept_early
    } == kept_early
    assert sorted(r.metadata["n"] for _, r in iter_records([root / "generate"])) == list(range(25))


# ------------------------------------------------------------------------------------------------ the CLI


def test_cli_reports_recipe_errors_with_lines_and_no_traceback(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(DEMO.read_text().replace("  shard_size: 16", "  shard_sise: 16").replace("limit: 12", "limit: x"))
    result = CliRunner().invoke(app, ["run", str(recipe), "--set", "mix.seed=abc"])
    assert result.exit_code == 2
    out = result.output
    assert f"{recipe}:" in out and "generate.shard_sise: unknown key (did you mean 'shard_size'?)" in out
    assert "sources.1.limit: expected an integer, got 'x'" in out
    assert "--set mix.seed=abc: mix.seed: expected an integer, got 'abc'" in out
    assert "Traceback" not in out


def test_cli_names_a_failing_stage_and_keeps_the_traceback_in_the_log(tmp_path):
    out = tmp_path / "run"
    args = ["run", str(DEMO), "--set", f"out_dir={out}", "--set", "sources.0.path=no_such_task"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "error: stage sources failed: ValueError: unknown procedural task 'no_such_task'" in result.output
    assert "Traceback" not in result.output
    assert "Traceback" in (out / "run.log").read_text()
    assert not (out / ".run" / "done").exists()


def test_dry_run_plans_without_running_or_importing_vllm(tmp_path):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from thinktoggle.cli.main import app\n"
        f"r = CliRunner().invoke(app, ['run', {str(DEMO)!r}, '--dry-run', '--set', 'out_dir={tmp_path}/plan'])\n"
        "print(r.output)\n"
        "assert r.exit_code == 0, r.output\n"
        "assert not [m for m in sys.modules if m == 'vllm' or m.startswith(('vllm.', 'torch'))], 'heavy import'\n"
    )
    wide = {**os.environ, "COLUMNS": "200"}  # the table folds cells on a narrow terminal; the test reads cells
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=wide)
    assert done.returncode == 0, done.stdout + done.stderr
    for stage in ("sources", "generate", "filter", "dedup", "decontaminate", "mix"):
        assert stage in done.stdout
    assert "engine.kind=procedural" in done.stdout and "generate/kept/" in done.stdout
    assert not (tmp_path / "plan").exists()


# ------------------------------------------------------------------------------------ the demo, end to end


def thinktoggle(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "thinktoggle.cli.main", *args], cwd=cwd, capture_output=True, text=True, **kwargs
    )


def final_folder(root: Path) -> Path:
    return root / "export"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "run"
    done = thinktoggle("run", str(DEMO), "--set", f"out_dir={out}", cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_demo_recipe_runs_end_to_end(demo_run):
    import yaml

    funnel = json.loads((demo_run / "stats.json").read_text())
    stages = [s["stage"] for s in funnel["stages"]]
    assert stages == ["sources", "generate", "filter", "dedup", "decontaminate", "mix", "export"]
    assert funnel["consistent"], funnel["breaks"]
    assert funnel["stages"][1]["in"] == 2 * funnel["stages"][0]["kept"]  # each prompt answered on and off
    decontaminate = funnel["stages"][4]
    assert decontaminate["dropped_reasons"] == {"contaminated:demo-benchmark": 4}  # 2 planted prompts x 2 modes
    for stage in funnel["stages"]:
        assert stage["in"] == stage["kept"] + stage["dropped"] + stage["failed"]
    export = demo_run / "export"
    check = thinktoggle("check", str(export), cwd=ROOT, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    rows = funnel["stages"][-1]["kept"]
    assert f"{rows} rows, {rows} valid, 0 invalid" in check.stdout
    card = (export / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["configs"][0]["config_name"] == "SFT"
    plots = sorted(p.name for p in (export / "plots").glob("*.png"))
    assert "funnel.png" in plots and plots and all(f"plots/{p}" in card for p in plots)
    assert "name: demo-curation" in card or "demo-curation" in card  # the recipe that produced it


def test_resume_after_kill_9_loses_and_duplicates_nothing(demo_run, tmp_path):
    """Kill `thinktoggle run` at a seeded random moment, rerun, compare with the uninterrupted run."""
    expected = sorted(ids(final_folder(demo_run)))
    out = tmp_path / "killed"
    uninterrupted = json.loads((demo_run / "stats.json").read_text())
    total = sum(m["seconds"] for m in (json.loads(p.read_text()) for p in (demo_run / ".run" / "done").glob("*")))
    delay = random.Random(5).uniform(0.3, 1.0 + total)  # seeded: the same moment on every run of the test
    process = subprocess.Popen(
        [sys.executable, "-m", "thinktoggle.cli.main", "run", str(DEMO), "--set", f"out_dir={out}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # kill the whole group: datatrove's workers too
    )
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    layout = RunLayout(out)
    done_before = sorted(p.stem for p in (out / ".run" / "done").glob("*.json")) if out.exists() else []
    rerun = thinktoggle("run", str(DEMO), "--set", f"out_dir={out}", cwd=ROOT, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    for stage in done_before:
        assert f"{stage}: complete, skipped" in rerun.stdout
    assert sorted(ids(final_folder(out))) == expected
    funnel = json.loads((out / "stats.json").read_text())
    assert [(s["stage"], s["in"], s["kept"]) for s in funnel["stages"]] == [
        (s["stage"], s["in"], s["kept"]) for s in uninterrupted["stages"]
    ]
    assert layout.fingerprint_file.exists()


def test_forced_rerun_with_a_train_stage_reuses_every_curation_stage(demo_run):
    """Adding `train` (and changing nothing else) reruns only train, which reads the export."""
    from thinktoggle.runner.recipe import load_recipe

    settings = ["max_steps=2", "warmup_steps=1", "batch_size=2", "seq_len=128", "save_every=0", "progress=false"]
    recipe = load_recipe(DEMO, [f"out_dir={demo_run}", *(f"train.{s}" for s in settings)])
    with pytest.raises(RunError, match=r"(?s)changed:.*train: added.*--force"):
        run_recipe(recipe, report=lambda _: None)
    lines: list[str] = []
    result = run_recipe(recipe, force=True, report=lines.append)
    assert result.ran == ["train"]
    assert result.skipped == ["sources", "generate", "filter", "dedup", "decontaminate", "mix", "export"]
    funnel = json.loads((demo_run / "stats.json").read_text())
    export, train = funnel["stages"][-2:]
    assert train["stage"] == "train" and train["in"] == export["kept"] and funnel["consistent"]
    assert (demo_run / "train" / "model" / "config.json").exists()


def test_one_run_per_folder_at_a_time(tmp_path):
    recipe = toy_recipe(tmp_path / "run")
    with (
        RunLayout(tmp_path / "run").lock(),
        pytest.raises(RunError, match=r"in use by another .thinktoggle run. \(pid"),
    ):
        run_quiet(recipe)
    result, _ = run_quiet(recipe)  # released: runs
    assert result.ran == ["generate", "filter"]


def test_a_recipe_can_start_from_records_on_disk(tmp_path):
    run_quiet(toy_recipe(tmp_path / "first"))
    text = f"name: later\nout_dir: {tmp_path / 'second'}\ninputs: [{tmp_path / 'first' / 'generate'}]\n"
    recipe = loads_recipe(text + "filter: {drop_multiples_of: 5}\n", stages=toy_stages())
    result, _ = run_quiet(recipe)
    assert result.ran == ["filter"]
    assert sorted(r.metadata["n"] for _, r in iter_records([tmp_path / "second" / "filter"])) == [
        2,
        4,
        6,
        8,
        12,
        14,
        16,
        18,
    ]
    changed = loads_recipe(text.replace("first", "other") + "filter: {drop_multiples_of: 5}\n", stages=toy_stages())
    assert changed.stage_fingerprint("filter") != recipe.stage_fingerprint("filter")


def test_plan_shows_what_a_run_would_do_in_the_folder(tmp_path):
    from rich.console import Console

    from thinktoggle.runner.plan import print_plan

    root = tmp_path / "run"
    run_quiet(toy_recipe(root))
    console = Console(record=True, width=200)
    print_plan(toy_recipe(root, ["filter.drop_multiples_of=4"]), stages=toy_stages(), console=console)
    text = console.export_text()
    assert "done (skip)" in text and "changed (rerun)" in text
    assert "made by a different recipe" in text and "filter.drop_multiples_of: 3 -> 4" in text
    assert "2 task(s), 1 at once" in text
