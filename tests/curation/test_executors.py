"""Executors: the recipe's `executor:` mapped onto datatrove's Local, Slurm and Ray executors.

There is no Slurm scheduler here: `fake_slurm/sbatch` stands in for sbatch at the process boundary. It records
every script and argument list, and (FAKE_SLURM_RUN=1) runs the job at once as array task 0, honouring afterok
dependencies, so the generated scripts, the pickled jobs and the dependency chain are all exercised for real.
Ray runs for real on a local cluster (`ray.init(num_cpus=2)`) in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from toy_stages import toy_stages
from typer.testing import CliRunner

from thinktoggle.cli.main import app
from thinktoggle.core.executors import ExecutorConfig, make_executor
from thinktoggle.runner.recipe import loads_recipe
from thinktoggle.runner.run import run_recipe
from thinktoggle.runner.slurm import SlurmPlanError
from thinktoggle.schemas.io import iter_records

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

TOY = """\
name: toy
out_dir: {out}
executor: {{type: {type}, partition: cpu, time: "02:00:00", tasks: 2, workers: 2, cpus_per_task: 2}}
generate:
  teacher: {{model: tiny}}
  count: 20
filter:
  executor: {{partition: gpu, gpus_per_task: 3, workers: 1, time: "04:30:00", sbatch_args: {{account: lab}}}}
  drop_multiples_of: 3
"""


def toy(out: Path, type_: str = "local", overrides=()):
    return loads_recipe(
        TOY.format(out=out, type=type_), name="toy.yaml", overrides=list(overrides), stages=toy_stages()
    )


def kept_numbers(folder: Path) -> list[int]:
    return sorted(r.metadata["n"] for _, r in iter_records([folder]))


def test_executor_config_maps_onto_datatrove_executors(tmp_path):
    from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor

    local = make_executor(ExecutorConfig(tasks=4, workers=2), [], tmp_path / "local")
    assert isinstance(local, LocalPipelineExecutor) and (local.tasks, local.workers) == (4, 2)
    config = ExecutorConfig(
        type="slurm", partition="gpu", time="04:00:00", tasks=8, workers=3, gpus_per_task=2, cpus_per_task=6,
        mem_per_cpu_gb=1.5, sbatch_args={"account": "lab"},
    )  # fmt: skip
    slurm = make_executor(config, [], tmp_path / "slurm", job_name="gen", slurm_logs_folder=str(tmp_path / "sl"))
    assert isinstance(slurm, SlurmPipelineExecutor)
    args = slurm.get_sbatch_args(8)
    assert args["partition"] == "gpu" and args["time"] == "04:00:00" and args["gpus"] == 2
    assert args["cpus-per-task"] == 6 and args["mem-per-cpu"] == "2G"  # whole gigabytes, rounded up
    assert args["array"] == "0-7%3" and args["account"] == "lab" and args["job-name"] == "gen"


def test_executor_config_checks():
    with pytest.raises(ValueError, match="partition: required"):
        ExecutorConfig(type="slurm")
    with pytest.raises(ValueError, match="tasks: must be >= 1"):
        ExecutorConfig(tasks=0)
    with pytest.raises(ValueError, match="workers"):
        ExecutorConfig(workers=0)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """sbatch/srun/scontrol stand-ins first on PATH; job records in the returned folder; jobs run at once."""
    jobs = tmp_path / "slurm-jobs"
    jobs.mkdir()
    monkeypatch.setenv("PATH", f"{HERE / 'fake_slurm'}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(jobs))
    monkeypatch.setenv("FAKE_SLURM_RUN", "1")
    monkeypatch.setenv("PYTHONPATH", f"{HERE}:{os.environ.get('PYTHONPATH', '')}")  # the jobs unpickle toy_stages
    return jobs


def test_slurm_chain_submits_one_job_per_stage_with_resources_and_dependency(tmp_path, fake_slurm):
    out = tmp_path / "run"
    lines: list[str] = []
    result = run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lines.append)
    assert result.submitted == ["generate=1000", "filter=1002"]  # 1001, 1003: datatrove's merge-stats jobs
    generate, filter_ = (fake_slurm / "job-1000.sh").read_text(), (fake_slurm / "job-1002.sh").read_text()
    assert "#SBATCH --partition=cpu" in generate and "#SBATCH --time=02:00:00" in generate
    assert "#SBATCH --cpus-per-task=4" in generate  # 2 cpus per task x 2 tasks at once
    assert "#SBATCH --array=0-0" in generate and "--gpus" not in generate
    assert "#SBATCH --job-name=toy-generate" in generate
    assert "#SBATCH --partition=gpu" in filter_ and "#SBATCH --time=04:30:00" in filter_
    assert "#SBATCH --gpus=3" in filter_ and "#SBATCH --account=lab" in filter_  # 3 GPUs per task x 1 at once
    assert "#SBATCH --cpus-per-task=2" in filter_
    assert f"launch_pickled_pipeline {out.resolve()}/.slurm/filter/executor.pik" in filter_
    assert "--dependency=afterok:1000" in (fake_slurm / "job-1002.args").read_text().split()
    assert "--dependency" not in (fake_slurm / "job-1000.args").read_text()
    # The jobs ran (as the fake scheduler's array task 0): the same records as a local run.
    assert not list(fake_slurm.glob("*.failed")), [p.read_text()[-2000:] for p in fake_slurm.glob("*.out")]
    local_out = tmp_path / "local"
    run_recipe(toy(local_out), stages=toy_stages(), report=lambda _: None)
    assert kept_numbers(out / "filter") == kept_numbers(local_out / "filter") == [2, 4, 8, 10, 14, 16]
    funnel = json.loads((out / "stats.json").read_text())
    assert [s["kept"] for s in funnel["stages"]] == [20, 6]
    # Resubmitting submits nothing: both stages completed.
    again = run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lines.append)
    assert again.submitted == [] and len(list(fake_slurm.glob("job-*.sh"))) == 4
    assert "generate: complete, not submitted" in lines


def test_failed_slurm_stage_stops_the_chain(tmp_path, fake_slurm):
    out = tmp_path / "run"
    result = run_recipe(toy(out, "slurm", ["generate.teacher.model=FAIL"]), stages=toy_stages(), report=lambda _: None)
    assert result.submitted == ["generate=1000", "filter=1002"]
    assert (fake_slurm / "job-1000.failed").exists() and (fake_slurm / "job-1002.failed").exists()
    assert not (out / "filter").exists() and not (out / ".run" / "done").exists()


def test_resubmitting_while_jobs_are_queued_is_refused_unless_forced(tmp_path, fake_slurm, monkeypatch):
    monkeypatch.delenv("FAKE_SLURM_RUN")  # submitted jobs stay "queued": nothing runs them
    out = tmp_path / "run"
    first = run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lambda _: None)
    assert first.submitted == ["generate=1000", "filter=1002"]
    assert json.loads((out / ".run" / "slurm_jobs.json").read_text()) == {"generate": "1000", "filter": "1002"}
    # No squeue here to ask: the runner cannot tell the jobs finished, so it refuses to start them twice.
    with pytest.raises(SlurmPlanError, match=r"generate, filter already submitted \(job\(s\) 1000, 1002\)"):
        run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lambda _: None)
    again = run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lambda _: None, force=True)
    assert again.submitted == ["generate=1004", "filter=1006"]


def test_a_slurm_run_needs_every_stage_on_slurm(tmp_path, fake_slurm):
    recipe = toy(tmp_path / "run", "slurm", ["generate.executor={type: local}"])
    with pytest.raises(SlurmPlanError, match="generate.executor.type: a Slurm run submits every stage; got local"):
        run_recipe(recipe, stages=toy_stages(), report=lambda _: None)
    assert not list(fake_slurm.glob("job-*"))


def test_slurm_dry_run_prints_the_sbatch_plan_and_writes_nothing(tmp_path):
    out = tmp_path / "planned"
    recipe = ROOT / "recipes" / "example-slurm.yaml"
    result = CliRunner().invoke(app, ["run", str(recipe), "--dry-run", "--set", f"out_dir={out}"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "sbatch plan" in text
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus=8",  # generate: 4 GPUs per task x 2 tasks at once
        "#SBATCH --time=48:00:00",
        "#SBATCH --partition=cpu",
        "#SBATCH --array=0-0",
        "#SBATCH --cpus-per-task=32",  # filter: 2 x 16
        "# generate: sbatch --dependency=afterok:<sources job id>",
        "# mix: sbatch --dependency=afterok:<decontaminate job id>",
        "source .venv/bin/activate",
    ):
        assert line in text, line
    assert not out.exists()


def test_multi_node_stage_is_refused_with_its_key(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(ROOT / "recipes" / "example-slurm.yaml"),
            "--dry-run",
            "--set",
            f"out_dir={tmp_path}",
            "--set",
            "generate.executor.nodes_per_task=2",
        ],
    )
    assert result.exit_code == 2
    assert "generate.executor.nodes_per_task: a stage runs as one job on one node" in result.output


RAY_SCRIPT = """
import json, sys
import ray
from toy_stages import toy_stages
from thinktoggle.runner.recipe import loads_recipe
from thinktoggle.runner.run import run_recipe
from thinktoggle.runner.slurm import SlurmPlanError

if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        recipe = loads_recipe(sys.argv[1], stages=toy_stages())
        result = run_recipe(recipe, stages=toy_stages(), report=lambda _: None)
        print(json.dumps({k: v.to_dict() for k, v in result.stats.items()}))
    finally:
        ray.shutdown()
"""


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install '.[ray]')")
def test_ray_executor_runs_a_stage_on_a_local_cluster(tmp_path):
    out = tmp_path / "run"
    # 2 tasks of 1 CPU, no GPU: what a 2-CPU local cluster can schedule (Ray waits for resources it lacks).
    text = f"name: toy\nout_dir: {out}\nexecutor: {{type: ray, tasks: 2, workers: 2, cpus_per_task: 1}}\n"
    text += "generate: {teacher: {model: tiny}, count: 20}\nfilter: {drop_multiples_of: 3}\n"
    env = {**os.environ, "PYTHONPATH": f"{HERE}:{os.environ.get('PYTHONPATH', '')}", "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, "-c", RAY_SCRIPT, text], capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["filter"]["kept"] == 6 and stats["filter"]["dropped_reasons"] == {"odd": 10, "multiple_of_3": 4}
    assert kept_numbers(out / "filter") == [2, 4, 8, 10, 14, 16]
    executor = json.loads((out / "filter" / "logs" / "executor.json").read_text())
    assert "ray_remote_kwargs" in executor  # written by datatrove's RayPipelineExecutor
    assert sorted(p.name for p in (out / "filter" / "logs" / "completions").iterdir()) == ["00000", "00001"]
