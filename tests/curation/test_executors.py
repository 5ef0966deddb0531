"""Executors: the recipe's `executor:` mapped onto datatrove's Local and Ray executors, and the one Slurm policy
(core/slurm.py: a stage is one sbatch job running it locally; nobody waits forever; a dead job is reported with
the command that resumes it).

There is no Slurm scheduler here: `fake_slurm/` stands in for sbatch, squeue, sacct, scancel, srun and scontrol
at the process boundary. sbatch records every script, argument list and the job's state, and (FAKE_SLURM_RUN=1)
runs the job at once as array task 0, honouring afterok dependencies, so the generated scripts, the pickled jobs
and the dependency chain are all exercised for real; FAKE_SLURM_STATE gives a job a state (cancelled, running
forever, held) without running it, so no test depends on timing: a wait sees that state on its first poll.
Ray runs for real on a local cluster (`ray.init(num_cpus=2)`) in a subprocess.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from toy_stages import toy_stages

from thinktoggle.cli.main import app
from thinktoggle.core.executors import ExecutorConfig, make_executor, slurm_time_seconds
from thinktoggle.core.slurm import SlurmJobError, call_stage, job_executor, read_jobs
from thinktoggle.runner.recipe import loads_recipe
from thinktoggle.runner.run import RunError, run_recipe
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
    # Under Slurm a stage is one job, sized for the 3 tasks that run at once; its own executor is never Slurm.
    job = job_executor(config, None, tmp_path / "slurm", "gen", "generate", slurm_logs_folder=str(tmp_path / "sl"))
    assert isinstance(job, SlurmPipelineExecutor) and job.tasks == 1
    args = job.get_sbatch_args(1)
    assert args["partition"] == "gpu" and args["time"] == "04:00:00" and args["gpus"] == 6
    assert args["cpus-per-task"] == 18 and args["mem-per-cpu"] == "2G"  # whole gigabytes, rounded up
    assert args["array"] == "0-0" and args["account"] == "lab" and args["job-name"] == "gen"
    with pytest.raises(ValueError, match="gen: executor.type slurm reached the stage's own executor"):
        make_executor(config, [], tmp_path / "refused", job_name="gen")


def test_slurm_time_limits_parse_as_sbatch_reads_them():
    assert slurm_time_seconds("30") == 1800 and slurm_time_seconds("30:15") == 1815
    assert slurm_time_seconds("48:00:00") == 172800 and slurm_time_seconds("2-12") == 216000
    assert slurm_time_seconds("1-00:30") == 88200 and slurm_time_seconds("1-00:00:05") == 86405
    with pytest.raises(ValueError, match="time: expected a Slurm time limit"):
        ExecutorConfig(type="slurm", partition="cpu", time="two hours")


def test_executor_config_checks():
    with pytest.raises(ValueError, match="partition: required"):
        ExecutorConfig(type="slurm")
    with pytest.raises(ValueError, match="tasks: must be >= 1"):
        ExecutorConfig(tasks=0)
    with pytest.raises(ValueError, match="workers"):
        ExecutorConfig(workers=0)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """The Slurm stand-ins first on PATH; job records in the returned folder; jobs run at once."""
    jobs = tmp_path / "slurm-jobs"
    jobs.mkdir()
    monkeypatch.setenv("PATH", f"{HERE / 'fake_slurm'}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(jobs))
    monkeypatch.setenv("FAKE_SLURM_RUN", "1")
    for name in ("FAKE_SLURM_STATE", "FAKE_SLURM_DOWN", "FAKE_SLURM_NO_SACCT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", f"{HERE}:{os.environ.get('PYTHONPATH', '')}")  # the jobs unpickle toy_stages
    return jobs


def job_states(jobs: Path) -> dict[str, str]:
    return {p.stem.removeprefix("job-"): p.read_text().strip() for p in sorted(jobs.glob("job-*.state"))}


def job_logs(out: Path) -> str:
    return "\n".join(p.read_text()[-2000:] for p in out.rglob("slurm_logs/*.out"))


def test_slurm_chain_submits_one_job_per_stage_with_resources_and_dependency(tmp_path, fake_slurm):
    out = tmp_path / "run"
    lines: list[str] = []
    result = run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lines.append)
    assert result.submitted == ["generate=1000", "filter=1001"]  # no stats-merge jobs between them
    generate, filter_ = (fake_slurm / "job-1000.sh").read_text(), (fake_slurm / "job-1001.sh").read_text()
    assert "#SBATCH --partition=cpu" in generate and "#SBATCH --time=02:00:00" in generate
    assert "#SBATCH --cpus-per-task=4" in generate  # 2 cpus per task x 2 tasks at once
    assert "#SBATCH --array=0-0" in generate and "--gpus" not in generate
    assert "#SBATCH --job-name=toy-generate" in generate
    assert "#SBATCH --partition=gpu" in filter_ and "#SBATCH --time=04:30:00" in filter_
    assert "#SBATCH --gpus=3" in filter_ and "#SBATCH --account=lab" in filter_  # 3 GPUs per task x 1 at once
    assert "#SBATCH --cpus-per-task=2" in filter_
    assert f"launch_pickled_pipeline {out.resolve()}/.slurm/filter/executor.pik" in filter_
    assert "--dependency=afterok:1000" in (fake_slurm / "job-1001.args").read_text().split()
    assert "--dependency" not in (fake_slurm / "job-1000.args").read_text()
    # The jobs ran (as the fake scheduler's array task 0): the same records as a local run.
    assert job_states(fake_slurm) == {"1000": "COMPLETED|0:0", "1001": "COMPLETED|0:0"}, job_logs(out)
    recorded = read_jobs(out / ".run" / "slurm_jobs.json")
    assert recorded["filter"].log == str(out.resolve() / ".slurm" / "filter" / "slurm_logs" / "1001_0.out")
    assert Path(recorded["filter"].log).exists() and recorded["filter"].time == "04:30:00"
    local_out = tmp_path / "local"
    run_recipe(toy(local_out), stages=toy_stages(), report=lambda _: None)
    assert kept_numbers(out / "filter") == kept_numbers(local_out / "filter") == [2, 4, 8, 10, 14, 16]
    funnel = json.loads((out / "stats.json").read_text())
    assert [s["kept"] for s in funnel["stages"]] == [20, 6]
    # Resubmitting submits nothing: both stages completed.
    again = run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lines.append)
    assert again.submitted == [] and len(list(fake_slurm.glob("job-*.sh"))) == 2
    assert "generate: complete, not submitted" in lines


def test_failed_slurm_stage_stops_the_chain_and_a_rerun_reports_it(tmp_path, fake_slurm):
    out = tmp_path / "run"
    recipe = toy(out, "slurm", ["generate.teacher.model=FAIL"])
    result = run_recipe(recipe, stages=toy_stages(), report=lambda _: None)
    assert result.submitted == ["generate=1000", "filter=1001"]
    # As in Slurm: the failed job ends FAILED, the one after it can never start.
    assert job_states(fake_slurm) == {"1000": "FAILED|1:0", "1001": "PENDING|DependencyNeverSatisfied"}
    assert not (out / "filter").exists() and not (out / ".run" / "done").exists()
    log = out.resolve() / ".slurm" / "generate" / "slurm_logs" / "1000_0.out"
    assert "teacher 'FAIL' always fails" in log.read_text()
    # The rerun reports the dead job instead of refusing (the filter job is queued) or resubmitting blindly.
    with pytest.raises(RunError) as caught:
        run_recipe(recipe, stages=toy_stages(), report=lambda _: None)
    message = str(caught.value)
    assert message.startswith("generate: Slurm job 1000 ended without completing the stage: FAILED (exit 1:0)")
    assert f"Log: {log}." in message
    resume = f"thinktoggle run {out.resolve()}/recipe.resolved.yaml --set out_dir={out.resolve()}"
    assert message.endswith(
        f"Resume: {resume}\nNot completing either: filter (job 1001: PENDING (DependencyNeverSatisfied))"
    )
    assert isinstance(caught.value.__cause__, SlurmJobError) and len(list(fake_slurm.glob("job-*.sh"))) == 2


def test_a_cancelled_stage_job_is_reported_on_rerun_and_the_resume_command_resumes(tmp_path, fake_slurm, monkeypatch):
    from thinktoggle.runner.recipe import load_recipe

    out = tmp_path / "run"
    monkeypatch.delenv("FAKE_SLURM_RUN")
    monkeypatch.setenv("FAKE_SLURM_STATE", "CANCELLED by 4242|0:15")  # both jobs cancelled before they ran
    first = run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lambda _: None)
    assert first.submitted == ["generate=1000", "filter=1001"]
    started = time.monotonic()
    with pytest.raises(RunError) as caught:
        run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lambda _: None)
    assert time.monotonic() - started < 10  # no waiting: the record, squeue and sacct tell at once
    resume = f"thinktoggle run {out.resolve()}/recipe.resolved.yaml --set out_dir={out.resolve()}"
    assert str(caught.value) == (
        "generate: Slurm job 1000 ended without completing the stage: CANCELLED by 4242 (exit 0:15). "
        f"Log: {out.resolve()}/.slurm/generate/slurm_logs/1000_0.out. Resume: {resume}\n"
        "Not completing either: filter (job 1001: CANCELLED by 4242 (exit 0:15))"
    )
    # The plan shows the recorded jobs (without asking squeue).
    from rich.console import Console

    from thinktoggle.runner.plan import print_plan

    console = Console(record=True, width=300)
    print_plan(toy(out, "slurm"), stages=toy_stages(), console=console)
    plan = console.export_text()
    assert "Slurm job 1000 recorded" in plan and "Slurm job 1001 recorded" in plan
    # The resume command (reported once: no second report) resubmits the incomplete stages, which now run.
    monkeypatch.delenv("FAKE_SLURM_STATE")
    monkeypatch.setenv("FAKE_SLURM_RUN", "1")
    recipe_path, _, override = shlex.split(resume)[2:]
    resumed = load_recipe(recipe_path, [override], stages=toy_stages())
    again = run_recipe(resumed, stages=toy_stages(), report=lambda _: None)
    assert again.submitted == ["generate=1002", "filter=1003"]
    assert kept_numbers(out / "filter") == [2, 4, 8, 10, 14, 16]


def test_thinktoggle_run_reports_a_dead_stage_job_on_rerun(tmp_path, fake_slurm, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.delenv("FAKE_SLURM_RUN")  # nothing runs: the real recipe's six stages are only submitted
    first = CliRunner().invoke(app, ["run", str(ROOT / "recipes" / "example-slurm.yaml"), "--set", f"out_dir={out}"])
    assert first.exit_code == 0, first.output
    assert "submitted 6 Slurm job(s): sources=1000 generate=1001" in first.output
    # The sources job hits its time limit; as in Slurm, every job after it can then never start.
    (fake_slurm / "job-1000.state").write_text("TIMEOUT|0:0\n")
    for job in range(1001, 1006):
        (fake_slurm / f"job-{job}.state").write_text("PENDING|DependencyNeverSatisfied\n")
    rerun = CliRunner().invoke(app, ["run", str(ROOT / "recipes" / "example-slurm.yaml"), "--set", f"out_dir={out}"])
    assert rerun.exit_code == 2, rerun.output
    text = " ".join(rerun.output.split())
    root = out.resolve()
    resume = f"thinktoggle run {root}/recipe.resolved.yaml --set out_dir={root}"
    assert (
        "error: sources: Slurm job 1000 ended without completing the stage: TIMEOUT. "
        f"Log: {root}/.slurm/sources/slurm_logs/1000_0.out. Resume: {resume} "
        "Not completing either: generate (job 1001: PENDING (DependencyNeverSatisfied)); filter (job 1002:"
    ) in text
    assert len(list(fake_slurm.glob("job-*.sh"))) == 6  # nothing resubmitted
    # The resume command, as printed: cancels what is left of the old chain and submits it again.
    resumed = CliRunner().invoke(app, shlex.split(resume)[1:])
    assert resumed.exit_code == 0, resumed.output
    assert "submitted 6 Slurm job(s): sources=1006 generate=1007" in resumed.output
    states = job_states(fake_slurm)
    assert states["1000"] == "TIMEOUT|0:0" and all(states[str(j)].startswith("CANCELLED") for j in range(1001, 1006))


def test_resubmitting_while_jobs_are_queued_is_refused_unless_forced(tmp_path, fake_slurm, monkeypatch):
    monkeypatch.delenv("FAKE_SLURM_RUN")  # submitted jobs stay queued: nothing runs them
    out = tmp_path / "run"
    first = run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lambda _: None)
    assert first.submitted == ["generate=1000", "filter=1001"]
    recorded = json.loads((out / ".run" / "slurm_jobs.json").read_text())
    assert {stage: job["job_id"] for stage, job in recorded.items()} == {"generate": "1000", "filter": "1001"}
    with pytest.raises(SlurmPlanError, match=r"generate, filter already submitted \(job\(s\) 1000, 1001\)"):
        run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lambda _: None)
    # A controller that cannot be reached is no proof the jobs died: still refused.
    monkeypatch.setenv("FAKE_SLURM_DOWN", "1")
    with pytest.raises(SlurmPlanError, match="or squeue cannot tell"):
        run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lambda _: None)
    monkeypatch.delenv("FAKE_SLURM_DOWN")
    lines: list[str] = []
    again = run_recipe(toy(out, "slurm"), stages=toy_stages(), report=lines.append, force=True)
    assert again.submitted == ["generate=1002", "filter=1003"]
    assert "generate: cancelled the earlier job 1000" in lines  # never two jobs writing one folder
    assert job_states(fake_slurm)["1000"].startswith("CANCELLED by")
    assert job_states(fake_slurm)["1002"] == "PENDING|Priority"


SLURM = ExecutorConfig(type="slurm", partition="cpu", time="00:10:00", tasks=2, workers=2)
FAST = {"poll_s": 0.05, "report": lambda _: None}  # the waits poll every 50 ms; every state is set beforehand
RESUME = "thinktoggle filter made --out keep"


def made_records(tmp_path: Path) -> Path:
    from toy_stages import MakeConfig, Teacher, run_make

    folder = tmp_path / "made"
    folder.mkdir()
    run_make(MakeConfig(teacher=Teacher(model="tiny"), count=20), [], folder)
    return folder


def keep_even(made: Path, out: Path, executor: ExecutorConfig = SLURM, **options):
    from toy_stages import KeepEvenConfig, run_keep_even

    return call_stage(run_keep_even, KeepEvenConfig(drop_multiples_of=3), [made], out, executor, **options)


def test_a_single_stage_on_slurm_is_one_job_that_is_waited_for(tmp_path, fake_slurm):
    made, out = made_records(tmp_path), tmp_path / "keep"
    stats = keep_even(made, out, **FAST)
    assert stats.kept == 6 and stats.dropped == {"odd": 10, "multiple_of_3": 4}
    assert kept_numbers(out) == [2, 4, 8, 10, 14, 16]
    script = (fake_slurm / "job-1000.sh").read_text()
    assert "#SBATCH --array=0-0" in script and "#SBATCH --cpus-per-task=2" in script  # 1 cpu x 2 tasks at once
    assert job_states(fake_slurm) == {"1000": "COMPLETED|0:0"}
    assert sorted(p.name for p in (out / "logs" / "completions").iterdir()) == ["00000", "00001"]  # local ranks
    # Called again: the recorded job completed this very stage, so its stats come back without a new job.
    assert keep_even(made, out, **FAST).to_dict() == stats.to_dict() and len(job_states(fake_slurm)) == 1
    # A local executor runs here, as it always did.
    assert keep_even(made, tmp_path / "local", ExecutorConfig(tasks=2)).to_dict() == stats.to_dict()


def test_a_cancelled_single_stage_job_is_reported_within_seconds_and_resumed(tmp_path, fake_slurm, monkeypatch):
    made, out = made_records(tmp_path), tmp_path / "keep"
    monkeypatch.delenv("FAKE_SLURM_RUN")
    monkeypatch.setenv("FAKE_SLURM_STATE", "CANCELLED by 4242|0:15")  # squeue no longer lists it; no stats
    logs = out / "logs"  # as if the job had finished rank 0 of 2 before it was cancelled
    (logs / "completions").mkdir(parents=True)
    (logs / "completions" / "00000").touch()
    (logs / "executor.json").write_text(json.dumps({"world_size": 2}))
    started = time.monotonic()
    with pytest.raises(SlurmJobError) as caught:
        keep_even(made, out, resume=RESUME, **FAST)
    assert time.monotonic() - started < 5
    root = out.resolve()
    assert str(caught.value) == (
        "keep_even: Slurm job 1000 ended without completing the stage: CANCELLED by 4242 (exit 0:15); "
        f"rank(s) 1 of 2 did not complete (task logs in {root}/logs/logs). "
        f"Log: {root}/logs/slurm/slurm_logs/1000_0.out. Resume: {RESUME}"
    )
    assert read_jobs(root / "logs" / "slurm" / "job.json")["keep_even"].reported
    # The resume command is the same call: it submits again (the stage resumes from its own markers).
    for path in (logs / "completions" / "00000", logs / "executor.json"):
        path.unlink()
    monkeypatch.delenv("FAKE_SLURM_STATE")
    monkeypatch.setenv("FAKE_SLURM_RUN", "1")
    assert keep_even(made, out, resume=RESUME, **FAST).kept == 6
    assert job_states(fake_slurm)["1001"] == "COMPLETED|0:0"


def test_a_single_stage_job_past_its_time_limit_is_reported_and_cancelled_on_resume(tmp_path, fake_slurm, monkeypatch):
    made, out = made_records(tmp_path), tmp_path / "keep"
    monkeypatch.delenv("FAKE_SLURM_RUN")
    monkeypatch.setenv("FAKE_SLURM_STATE", "RUNNING|None")  # listed as running for ever, never completing
    one_second = dataclasses.replace(SLURM, time="0:01")  # MM:SS
    started = time.monotonic()
    with pytest.raises(SlurmJobError) as caught:
        keep_even(made, out, one_second, resume=RESUME, grace_s=0.2, **FAST)
    assert 1.2 <= time.monotonic() - started < 6
    assert re.fullmatch(
        r"keep_even: Slurm job 1000 is still RUNNING 0:00:0\d after it started, past its time limit 0:01 and "
        r"0:00:00 of grace, and the stage is not complete\. Log: \S+/logs/slurm/slurm_logs/1000_0\.out\. "
        rf"Resume \(cancels job 1000 first\): {RESUME}",
        str(caught.value),
    ), str(caught.value)
    monkeypatch.delenv("FAKE_SLURM_STATE")
    monkeypatch.setenv("FAKE_SLURM_RUN", "1")
    assert keep_even(made, out, one_second, resume=RESUME, **FAST).kept == 6
    assert job_states(fake_slurm)["1000"].startswith("CANCELLED by") and job_states(fake_slurm)["1001"].startswith(
        "COMPLETED"
    )


@pytest.mark.parametrize(
    ("state", "env", "expected"),
    [
        ("PENDING|JobHeldAdmin", {}, "keep_even: Slurm job 1000 will never start: PENDING (JobHeldAdmin). Log: "),
        # No accounting: gone from the queue without the marker, for two polls (a shared file system may lag).
        ("CANCELLED|0:0", {"FAKE_SLURM_NO_SACCT": "1"}, "ended without completing the stage: left the queue (sacct"),
        # squeue cannot reach the controller: never taken for dead, but the deadline still ends the wait.
        ("CANCELLED|0:0", {"FAKE_SLURM_DOWN": "1"}, "is still unknown (squeue: slurm_load_jobs error: Unable to con"),
    ],
)
def test_what_slurm_says_decides_the_error(tmp_path, fake_slurm, monkeypatch, state, env, expected):
    made, out = made_records(tmp_path), tmp_path / "keep"
    monkeypatch.delenv("FAKE_SLURM_RUN")
    monkeypatch.setenv("FAKE_SLURM_STATE", state)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    with pytest.raises(SlurmJobError, match=re.escape(expected)):
        keep_even(made, out, dataclasses.replace(SLURM, time="0:01"), resume=RESUME, grace_s=0, **FAST)
    assert time.monotonic() - started < 6


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


def test_a_stage_command_given_a_slurm_executor_submits_one_job_and_waits_for_it(tmp_path, fake_slurm):
    made, out = made_records(tmp_path), tmp_path / "dedup"
    done = subprocess.run(
        [sys.executable, "-m", "thinktoggle.cli.main", "dedup", str(made), "--out", str(out)]
        + ["--type", "slurm", "--partition", "cpu", "--no-minhash-enabled"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert job_states(fake_slurm) == {"1000": "COMPLETED|0:0"}  # one job, run by the stand-in sbatch
    assert "dedup: in 20, kept 20, dropped 0, failed 0" in done.stdout
    assert json.loads((out / "stats.json").read_text())["kept"] == 20
