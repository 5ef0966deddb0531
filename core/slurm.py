"""Slurm: the one policy every stage follows under Slurm, and the pieces that carry it out.

The policy
    Under Slurm a stage runs as ONE sbatch job that runs the whole stage with a local executor inside. The job asks
    for the stage's per-task resources times the tasks that run at once (`allocation`), on one node. The stage's
    ranks are processes of that job, and what a stage does after its ranks (merging rank stats, MinHash clustering,
    mixing, the card) runs there too, with every rank's output at hand. So stages hold no Slurm code
    (`make_executor` refuses `type: slurm`); whoever submits a stage uses this module:
      - `thinktoggle run` (runner/slurm.py): one job per stage, chained `afterok`; it returns once they are queued;
      - a single stage given `executor.type: slurm` (`call_stage`): one job, and it waits for it.
    Nobody waits forever. `wait` polls the stage's completion marker and `squeue`, and raises one `SlurmJobError`
    when the job has left the queue without completing the stage (failed, cancelled, timed out, node failure, out
    of memory: `sacct` names the state where accounting is on), when it is pending on something that cannot happen
    (a dependency that failed, a held job), or when it is still listed a grace period past its time limit, counted
    from when it was first seen running (pending time is the scheduler's; `squeue` shows it). The error names the
    stage, the job id, its state, the stage's ranks that did not complete (where its logs tell), the job's log
    file and the exact command that resumes it.
    Every submission is recorded (job id, log, resume command). A later run that finds a recorded job gone without
    its stage complete reports it the same way, once, instead of waiting or resubmitting blindly; the resume
    command then resubmits (cancelling the old job first if Slurm still lists it), and the stage resumes from its
    own markers. A recorded job still queued or running is waited for (`call_stage`) or refused (`thinktoggle
    run`; --force cancels it and submits again), never run twice. When `squeue` cannot reach the controller the
    job is taken for alive (only the deadline applies), never for dead.

Why not datatrove's Slurm arrays, one per pipeline: sbatch returns at submission, so a stage that merges all its
ranks' results would wait on the login node for arrays it cannot see, and a rank that died would leave that wait
hanging (dedup even runs three pipelines with in-process work between them). One job per stage keeps every stage's
code path the same as a local run, and one waiting rule covers all of them. The price: a stage uses one node
(`nodes_per_task` must be 1); to go wider, split the inputs over several runs.

The jobs are datatrove `SlurmPipelineExecutor`s with one task (sbatch script, pickled body, requeue on preemption,
completion marker), without datatrove's stats-merge job: one task has nothing to merge, and a merge job waiting
`afterok` on a job that died would sit in the queue forever.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import math
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatrove.executor import SlurmPipelineExecutor

from thinktoggle.core.executors import ExecutorConfig, slurm_time_seconds
from thinktoggle.core.stats import StageStats
from thinktoggle.schemas.io import atomic_write_text

POLL_S = 30.0  # how often a wait asks squeue and looks for the completion marker
GRACE_S = 600.0  # how long past its time limit a job may stay listed (epilog, a slow requeue) before a wait gives up

# squeue states of a job that may still complete; any other listed state has ended.
ACTIVE = frozenset(
    {
        "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED", "RESIZING",
        "SIGNALING", "STAGE_OUT", "STOPPED", "POWER_UP_NODE", "REQUEUE_HOLD", "RESV_DEL_HOLD",
    }
)  # fmt: skip
# Pending reasons that no waiting resolves: a dependency that failed, a bad request, a hold.
NEVER_STARTS = frozenset(
    {"DependencyNeverSatisfied", "BadConstraints", "InvalidAccount", "InvalidQOS", "JobHeldAdmin", "JobHeldUser"}
)


class SlurmPlanError(ValueError):
    """Executor settings that one job per stage cannot honour, or a submission that would run a stage twice."""


class SlurmJobError(RuntimeError):
    """A stage's Slurm job that will not complete it: the message names stage, job, state, log and resume command."""

    def __init__(self, job: SlurmJob, state: str, message: str) -> None:
        self.job, self.state = job, state
        super().__init__(message)


# -- the request ------------------------------------------------------------------------------------------------
def allocation(executor: ExecutorConfig, stage: str = "stage") -> ExecutorConfig:
    """The Slurm request for one stage job: the per-task resources times the tasks that run at once."""
    if executor.nodes_per_task != 1:
        # srun would start the stage once per node; a stage job runs its tasks on one node.
        raise SlurmPlanError(
            f"{stage}.executor.nodes_per_task: a stage runs as one job on one node under Slurm (core/slurm.py); "
            f"got {executor.nodes_per_task}: ask for 1 (split the inputs over several runs to go wider)"
        )
    at_once = executor.tasks if executor.workers == -1 else max(1, min(executor.workers, executor.tasks))
    return dataclasses.replace(
        executor,
        tasks=1,
        workers=-1,
        cpus_per_task=executor.cpus_per_task * at_once,
        gpus_per_task=executor.gpus_per_task * at_once,
    )


class OneJobExecutor(SlurmPipelineExecutor):
    """datatrove's Slurm executor for one-task stage jobs: no stats-merge job after it (see the module docstring)."""

    def launch_merge_stats(self) -> None:
        return None


def job_executor(
    executor: ExecutorConfig,
    body: Any,
    job_dir: str | Path,
    job_name: str,
    stage: str,
    depends: OneJobExecutor | None = None,
    **options: Any,
) -> OneJobExecutor:
    """The sbatch job that runs `body` (a datatrove pipeline step: the stage run locally) for `stage`.

    `executor` is the stage's own; the job asks for `allocation(executor)`. `options` go to datatrove's
    SlurmPipelineExecutor as they are (e.g. `slurm_logs_folder`).
    """
    if executor.type != "slurm":
        raise SlurmPlanError(f"{stage}.executor.type: a Slurm job needs type slurm; got {executor.type}")
    request = allocation(executor, stage)
    return OneJobExecutor(
        pipeline=[body],
        tasks=1,
        workers=-1,
        logging_dir=str(job_dir),
        depends=depends,
        skip_completed=True,
        time=request.time,
        partition=request.partition,
        cpus_per_task=request.cpus_per_task,
        mem_per_cpu_gb=math.ceil(request.mem_per_cpu_gb),  # sbatch takes whole gigabytes
        gpus_per_task=request.gpus_per_task,
        nodes_per_task=1,
        qos=request.qos,
        job_name=job_name,
        venv_path=request.venv_path or None,
        env_command=request.env_command or None,
        sbatch_args=dict(request.sbatch_args) or None,
        **options,
    )


def job_log(executor: OneJobExecutor) -> str:
    """The file Slurm writes the submitted job's output to (its one array task, 0)."""
    return str(Path(executor.slurm_logs_folder) / f"{executor.job_id}_0.out")


# -- what Slurm says ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobState:
    """One job as `squeue` lists it. `listed` None: squeue could not tell (missing, controller unreachable)."""

    listed: bool | None
    state: str = ""
    reason: str = ""
    problem: str = ""  # why squeue could not tell

    @property
    def never_starts(self) -> bool:
        return bool(self.listed) and (
            self.state == "REQUEUE_HOLD" or (self.state == "PENDING" and self.reason in NEVER_STARTS)
        )

    @property
    def ended(self) -> bool:
        return self.listed is False or (self.listed is True and self.state not in ACTIVE)

    @property
    def alive(self) -> bool:
        """May still complete the stage (pending, running, or nobody can tell)."""
        return not self.ended and not self.never_starts

    def describe(self) -> str:
        if self.listed is None:
            return f"unknown (squeue: {self.problem})"
        if not self.listed:
            return "no longer listed by squeue"
        return f"{self.state} ({self.reason})" if self.reason and self.reason != "None" else self.state


def job_state(job_id: str) -> JobState:
    """What `squeue` says of `job_id` now."""
    try:
        done = subprocess.run(
            ["squeue", "-h", "-j", str(job_id), "-o", "%F|%T|%r"], capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        return JobState(None, problem="not found on PATH")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return JobState(None, problem=str(exc))
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()
        if "invalid job id" in said.lower():  # the controller no longer knows it: it ended a while ago
            return JobState(False)
        return JobState(None, problem=said.splitlines()[-1] if said else f"exit {done.returncode}")
    rows = [line.split("|") for line in done.stdout.splitlines() if line.strip()]
    rows = [row + [""] * (3 - len(row)) for row in rows if row[0].strip() == str(job_id)]
    if not rows:
        return JobState(False)
    rows.sort(key=lambda row: row[1].strip() not in ACTIVE)  # an array's live task speaks for the job
    return JobState(True, rows[0][1].strip(), rows[0][2].strip())


def final_state(job_id: str) -> str | None:
    """The state `sacct` recorded for `job_id` (e.g. "CANCELLED by 1000", "FAILED (exit 1:0)"); None without it."""
    try:
        done = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "JobID,State,ExitCode"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = [line.split("|") for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []
    rows = [row + [""] * (3 - len(row)) for row in rows]
    if not rows:
        return None
    _, state, exit_code = (part.strip() for part in rows[-1][:3])
    return state if exit_code in ("", "0:0") else f"{state} (exit {exit_code})"


def cancel(job_ids: Iterable[str]) -> None:
    """`scancel` the jobs (those Slurm still lists); a missing scancel changes nothing."""
    ids = [str(i) for i in job_ids]
    if ids:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["scancel", *ids], capture_output=True, timeout=60)


# -- a submitted job, and what went wrong with it -------------------------------------------------------------------
@dataclass
class SlurmJob:
    """A submission as it is recorded: enough to wait for it, or to report it later."""

    stage: str
    job_id: str
    log: str = ""  # the job's output file
    resume: str = ""  # the command that resumes the stage
    time: str = ""  # the job's time limit
    stage_logs: str = ""  # the stage's datatrove logs (completion markers tell the ranks that finished)
    submitted_at: str = ""
    signature: str = ""  # what was submitted (call_stage: a resubmission with other settings is told apart)
    reported: bool = False  # a SlurmJobError was raised for it: the resume command may resubmit

    @classmethod
    def from_dict(cls, stage: str, data: Any) -> SlurmJob:
        if not isinstance(data, dict):  # the older record: the bare job id
            return cls(stage, str(data))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in known}, "stage": stage, "job_id": str(data["job_id"])})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("stage")
        return data


def read_jobs(path: Path) -> dict[str, SlurmJob]:
    """The recorded submissions, by stage."""
    try:
        data = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {stage: SlurmJob.from_dict(stage, value) for stage, value in data.items()}


def write_jobs(path: Path, jobs: dict[str, SlurmJob]) -> None:
    atomic_write_text(json.dumps({s: j.to_dict() for s, j in jobs.items()}, indent=2) + "\n", Path(path))


def incomplete_ranks(stage_logs: str | Path) -> str:
    """'; ranks 1, 3 of 4 did not complete (...)' from a stage's datatrove logs, or '' where they do not tell."""
    logs = Path(stage_logs) if stage_logs else None
    try:
        world = int(json.loads((logs / "executor.json").read_text())["world_size"]) if logs else 0
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    done = {p.name for p in (logs / "completions").glob("*")} if (logs / "completions").is_dir() else set()
    missing = [r for r in range(world) if f"{r:05d}" not in done]
    if not missing:
        return ""
    shown = ", ".join(map(str, missing[:10])) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
    return f"; rank(s) {shown} of {world} did not complete (task logs in {logs / 'logs'})"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _tail(job: SlurmJob, listed: bool) -> str:
    resume = f"Resume (cancels job {job.job_id} first): " if listed else "Resume: "
    return f". Log: {job.log or '(unknown)'}. {resume}{job.resume or '(rerun the command that submitted it)'}"


def ended_error(job: SlurmJob, state: str) -> SlurmJobError:
    return SlurmJobError(
        job,
        state,
        f"{job.stage}: Slurm job {job.job_id} ended without completing the stage: {state}"
        f"{incomplete_ranks(job.stage_logs)}{_tail(job, listed=False)}",
    )


def _how_it_ended(job_id: str, state: JobState) -> tuple[str, bool]:
    """A job out of the queue: its final state, and whether that state says it failed (else: ended well, or
    nobody can say)."""
    final = final_state(job_id)
    if final is not None:
        return final, not final.startswith("COMPLETED")
    if state.listed:  # squeue still shows it, in a final state
        return state.state, state.state != "COMPLETED"
    return "left the queue (sacct cannot tell how it ended)", False


def dead_error(job: SlurmJob, state: JobState) -> SlurmJobError | None:
    """The error for a job that will not complete its stage (ended, or can never start); None while it may."""
    if state.never_starts:
        return SlurmJobError(
            job,
            state.describe(),
            f"{job.stage}: Slurm job {job.job_id} will never start: {state.describe()}{_tail(job, listed=True)}",
        )
    if state.ended:
        return ended_error(job, _how_it_ended(job.job_id, state)[0])
    return None


# -- waiting ---------------------------------------------------------------------------------------------------------
def wait(
    job: SlurmJob,
    is_complete: Callable[[], bool],
    *,
    poll_s: float = POLL_S,
    grace_s: float = GRACE_S,
    deadline_s: float | None = None,
    report: Callable[[str], None] | None = None,
) -> None:
    """Return when `is_complete()`; raise SlurmJobError when the job will not get there (see the module docstring).

    `deadline_s`: how long the job may be listed as started (running, completing, or unknown to squeue) before
    the wait gives up; default the job's time limit plus `grace_s`. Pending time does not count, and a job put
    back in the queue (requeued after preemption) starts its clock again.
    """
    limit = deadline_s if deadline_s is not None else slurm_time_seconds(job.time or "24:00:00") + grace_s
    started: float | None = None  # when it was first seen out of PENDING
    gone: float | None = None  # when it was first seen gone, with no failing state to say why
    said = ""
    while True:
        if is_complete():
            return
        state = job_state(job.job_id)
        if is_complete():  # it may have finished between the two looks
            return
        now = time.monotonic()
        if state.never_starts:
            raise dead_error(job, state)
        if state.ended:
            final, failed = _how_it_ended(job.job_id, state)
            gone = now if gone is None else gone
            # Ended well (or nobody can say) without the marker: give a shared file system time to show it.
            if failed or now - gone >= 2 * poll_s:
                raise ended_error(job, final)
        else:
            gone = None
            if state.listed and state.state == "PENDING":
                started = None
            elif started is None:
                started = now
            if started is not None and now - started > limit:
                how = (
                    f"its deadline of {_duration(limit)}"
                    if deadline_s is not None
                    else f"its time limit {job.time} and {_duration(grace_s)} of grace"
                )
                raise SlurmJobError(
                    job,
                    state.describe(),
                    f"{job.stage}: Slurm job {job.job_id} is still {state.describe()} {_duration(now - started)} "
                    f"after it started, past {how}, and the stage is not complete"
                    f"{incomplete_ranks(job.stage_logs)}{_tail(job, listed=bool(state.listed))}",
                )
        if report is not None and state.describe() != said:
            said = state.describe()
            report(f"{job.stage}: Slurm job {job.job_id} {said}")
        time.sleep(poll_s)


# -- one stage as one job ------------------------------------------------------------------------------------------
class StageJob:
    """The body of a single stage's sbatch job: the stage's run function, run here with a local executor."""

    name = "thinktoggle stage"
    type = "runner"

    def __init__(self, module: str, function: str, config: Any, inputs: list[str], out_dir: str, executor: Any):
        self.module, self.function = module, function
        self.config, self.inputs, self.out_dir, self.executor = config, inputs, out_dir, executor

    def __call__(self, data=None, rank: int = 0, world_size: int = 1):
        run = getattr(importlib.import_module(self.module), self.function)
        out_dir = Path(self.out_dir)
        stats = run(self.config, [Path(p) for p in self.inputs], out_dir, self.executor)
        if isinstance(stats, StageStats) and not (out_dir / "stats.json").exists():
            stats.write(out_dir / "stats.json")
        yield from ()


def _signature(body: StageJob) -> str:
    config = dataclasses.asdict(body.config) if dataclasses.is_dataclass(body.config) else repr(body.config)
    text = json.dumps(
        [f"{body.module}.{body.function}", config, body.inputs, dataclasses.asdict(body.executor)],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def call_stage(
    run: Callable[..., StageStats],
    config: Any,
    inputs: list[Path],
    out_dir: Path,
    executor: ExecutorConfig = ExecutorConfig(),
    *,
    resume: str | None = None,
    poll_s: float = POLL_S,
    grace_s: float = GRACE_S,
    deadline_s: float | None = None,
    report: Callable[[str], None] = _stderr,
) -> StageStats:
    """Run a stage's `run_x(config, inputs, out_dir, executor)`: here for local and Ray executors; under Slurm as
    one sbatch job that runs it with a local executor, waited for (see the module docstring).

    The job's files and its record are in `out_dir/logs/slurm/`. A call that finds its earlier job (same stage,
    settings and inputs) still queued or running waits for that one; finished, returns its stats; dead and not
    yet reported, reports it. `resume` is the command the errors print (default: this process's command line).
    """
    if executor.type != "slurm":
        return run(config, inputs, out_dir, executor)
    out_dir = Path(out_dir).resolve()
    stage = getattr(run, "__name__", "stage").removeprefix("run_")
    job_dir = out_dir / "logs" / "slurm"
    record_path = job_dir / "job.json"
    marker = job_dir / "completions" / "00000"
    body = StageJob(
        run.__module__,
        run.__qualname__,
        config,
        [str(Path(p).resolve()) for p in inputs],
        str(out_dir),
        dataclasses.replace(executor, type="local"),
    )
    signature = _signature(body)
    earlier = read_jobs(record_path).get(stage)
    if earlier is not None and earlier.signature == signature:
        if marker.exists() and (out_dir / "stats.json").exists():
            return StageStats.read(out_dir / "stats.json")
        if not earlier.reported:
            error = dead_error(earlier, job_state(earlier.job_id))
            if error is None:
                report(f"{stage}: Slurm job {earlier.job_id} was submitted before and may still complete: waiting")
                return _wait_for(earlier, record_path, marker, out_dir, poll_s, grace_s, deadline_s, report)
            _mark_reported(record_path, earlier)
            raise error
    if earlier is not None:
        state = job_state(earlier.job_id)
        if earlier.signature != signature and not earlier.reported and state.alive:
            raise SlurmPlanError(
                f"{out_dir}: Slurm job {earlier.job_id} of {stage} with other settings or inputs is still "
                f"{state.describe()}; scancel {earlier.job_id} or use another output folder"
            )
        if state.listed:  # reported (or never starting): out of the way before the resubmission
            cancel([earlier.job_id])
    marker.unlink(missing_ok=True)
    submitted = job_executor(executor, body, job_dir, f"thinktoggle-{stage}", stage)
    submitted.run()
    job = SlurmJob(
        stage,
        str(submitted.job_id),
        log=job_log(submitted),
        resume=resume or shlex.join(sys.argv),
        time=executor.time,
        stage_logs=str(out_dir / "logs"),
        submitted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        signature=signature,
    )
    write_jobs(record_path, {stage: job})
    report(f"{stage}: submitted as Slurm job {job.job_id}; log {job.log}")
    return _wait_for(job, record_path, marker, out_dir, poll_s, grace_s, deadline_s, report)


def _mark_reported(record_path: Path, job: SlurmJob) -> None:
    jobs = read_jobs(record_path)
    job.reported = True
    jobs[job.stage] = job
    write_jobs(record_path, jobs)


def _wait_for(job, record_path, marker, out_dir, poll_s, grace_s, deadline_s, report) -> StageStats:
    try:
        wait(job, marker.exists, poll_s=poll_s, grace_s=grace_s, deadline_s=deadline_s, report=report)
    except SlurmJobError:
        _mark_reported(record_path, job)
        raise
    return StageStats.read(out_dir / "stats.json")
