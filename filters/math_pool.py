"""A pool of math-verify worker processes with a per-row deadline and a hard kill of stuck workers.

Why processes, and why a hand-made pool: math-verify times out with SIGALRM, which only works in a process's
main thread (so not in threads), and which cannot interrupt long C-level arithmetic at all (`9^{9^9}`
compared with an equal power runs in CPython's big-int code). So every comparison runs in a worker process
whose main thread is free for SIGALRM, and the parent enforces a wall-clock deadline per row: a worker that
overruns is killed (SIGKILL to its session) and replaced, and the row is `unverifiable: timeout`. Workers
are plain `subprocess` children talking JSON lines over pipes, so the pool also works inside datatrove's
daemonic multiprocessing workers (which may not start `multiprocessing` children).

What a worker cannot do: exceed `memory_mb` of address space (RLIMIT_AS), outlive its parent (PDEATHSIG,
and it exits when its stdin closes). It is not a security sandbox: it parses untrusted text with sympy, it
does not execute it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinktoggle.filters.math import TIMEOUT, MathOutcome

WORKER_DIED = "worker_died"


def inner_timeout(row_timeout_s: float) -> int:
    """math-verify's own (integer, SIGALRM) timeout per parse/compare: a quarter of the row's budget.

    A row does up to three such steps (parse gold, parse answer, compare); when one trips, the worker
    answers `timeout` itself and stays alive. The parent's kill is for what SIGALRM cannot interrupt.
    """
    return max(1, int(row_timeout_s / 4))


@dataclass
class _Worker:
    proc: subprocess.Popen
    started: float
    ready: bool = False
    jobs: deque[int] = field(default_factory=deque)  # in flight, in the order the worker runs them
    deadline: float = 0.0  # of the job at the head of `jobs`
    buffer: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True, slots=True)
class ClusterResult:
    """Majority-vote input for one group of samples: each sample's answer, and the groups of equal answers."""

    answers: list[str | None]
    clusters: list[list[int]]  # indices into answers; unanswered or unparsable samples are in no cluster
    timed_out: bool = False
    error: str = ""


class MathVerifierPool:
    """`processes` warm math-verify workers; `row_timeout_s` wall-clock seconds per row, enforced by SIGKILL."""

    def __init__(
        self,
        processes: int = 1,
        row_timeout_s: float = 10.0,
        memory_mb: int = 4096,
        startup_timeout_s: float = 120.0,
        prefetch: int = 2,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.processes = processes
        self.row_timeout_s = row_timeout_s
        self.memory_mb = memory_mb
        self.startup_timeout_s = startup_timeout_s
        self.prefetch = max(1, prefetch)
        self._remaining = 0
        self.kills = 0  # workers killed on overrun (for stats and tests)
        self._startup_failures = 0
        self._workers: list[_Worker] = []

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> MathVerifierPool:
        """Spawn the workers now, so that they import math-verify while the caller does other work (the
        evaluation starts them before its model generates); otherwise they start at the first batch."""
        self._ensure_workers()
        return self

    def __enter__(self) -> MathVerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self) -> _Worker:
        proc = subprocess.Popen(
            [sys.executable, "-m", "thinktoggle.filters.math_pool", str(self.memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the kill reaches anything it started
            close_fds=True,
        )
        return _Worker(proc, time.monotonic())

    def _ensure_workers(self) -> None:
        self._workers = [w for w in self._workers if w.proc.poll() is None]
        while len(self._workers) < self.processes:
            self._workers.append(self._spawn())

    def _kill(self, worker: _Worker) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        for pipe in (worker.proc.stdin, worker.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def close(self) -> None:
        for worker in self._workers:  # a worker exits when its input ends: tell them all, then wait
            with contextlib.suppress(OSError):
                if worker.proc.stdin:
                    worker.proc.stdin.close()
        deadline = time.monotonic() + 2
        for worker in self._workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            self._kill(worker)
        self._workers = []

    def worker_cpu_seconds(self) -> float:
        """CPU seconds (user + system) the live workers have used so far (Linux /proc; 0.0 elsewhere)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for worker in self._workers:
            try:
                fields = Path(f"/proc/{worker.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15 of stat)
        return total

    # -- the event loop ----------------------------------------------------------------------------------
    def run_jobs(self, jobs: Sequence[dict[str, Any]], budgets: Sequence[float]) -> list[dict[str, Any]]:
        """Run JSON jobs on the workers; each job's reply, `{"timeout": True}` on overrun, or `{"error": …}`.

        Each worker holds up to `prefetch` jobs, so that it starts the next one without waiting for this
        process to be scheduled (on a loaded machine that wait costs milliseconds a row). A worker runs its
        jobs in order, so the head job's clock starts when the previous reply arrives (or when it was sent).
        """
        results: list[dict[str, Any] | None] = [None] * len(jobs)
        pending = deque(range(len(jobs)))
        self._remaining = len(jobs)
        self._ensure_workers()
        while self._remaining:
            now = time.monotonic()
            for worker in self._workers:
                while worker.ready and len(worker.jobs) < self.prefetch and pending:
                    index = pending.popleft()
                    if not worker.jobs:
                        worker.deadline = now + budgets[index]
                    worker.jobs.append(index)
                    self._send(worker, jobs[index])
            waits = [
                (w.deadline if w.jobs else w.started + self.startup_timeout_s) - now
                for w in self._workers
                if w.jobs or not w.ready
            ]
            wait = max(0.0, min(waits)) if waits else 0.05
            readable, _, _ = select.select([w.proc.stdout for w in self._workers], [], [], wait)
            for worker in list(self._workers):
                if worker.proc.stdout in readable:
                    self._read(worker, results, budgets, pending)
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.jobs and now > worker.deadline:
                    self._finish(worker, results, {"timeout": True}, budgets)
                    self.kills += 1
                    self._requeue(worker, pending)
                    self._replace(worker)
                elif not worker.ready and now > worker.started + self.startup_timeout_s:
                    self.close()
                    raise RuntimeError(f"math-verify worker did not start within {self.startup_timeout_s:.0f} s")
        return [r if r is not None else {"error": WORKER_DIED} for r in results]

    def _finish(self, worker: _Worker, results: list, reply: dict[str, Any], budgets: Sequence[float]) -> None:
        """The head job of `worker` is done with `reply`; the next one's clock starts now."""
        results[worker.jobs.popleft()] = reply
        self._remaining -= 1
        if worker.jobs:
            worker.deadline = time.monotonic() + budgets[worker.jobs[0]]

    def _requeue(self, worker: _Worker, pending: deque[int]) -> None:
        """Jobs a killed or dead worker had queued but not started go back to the front of the line."""
        pending.extendleft(reversed(worker.jobs))
        worker.jobs.clear()

    def _send(self, worker: _Worker, job: dict[str, Any]) -> None:
        assert worker.proc.stdin is not None
        try:
            worker.proc.stdin.write(json.dumps(job).encode() + b"\n")
            worker.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the worker died; the read side sees EOF and accounts the job

    def _read(self, worker: _Worker, results: list, budgets: Sequence[float], pending: deque[int]) -> None:
        """Consume a worker's output. A dead worker fails its head job as error and hands back the rest."""
        assert worker.proc.stdout is not None
        data = os.read(worker.proc.stdout.fileno(), 1 << 20)
        if not data:
            if worker.jobs:
                code = worker.proc.wait()
                self._finish(worker, results, {"error": f"{WORKER_DIED}: exit {code}"}, budgets)
                self._requeue(worker, pending)
            elif not worker.ready:
                self._startup_failures += 1
                if self._startup_failures >= 3:
                    self.close()
                    raise RuntimeError("math-verify workers die on startup (is math-verify installed?)")
            self._replace(worker)
            return
        worker.buffer += data
        while (end := worker.buffer.find(b"\n")) >= 0:
            line, worker.buffer = bytes(worker.buffer[:end]), worker.buffer[end + 1 :]
            message = json.loads(line)
            if not worker.ready:
                worker.ready = True
            elif worker.jobs:
                self._finish(worker, results, message, budgets)

    def _replace(self, worker: _Worker) -> None:
        self._kill(worker)
        self._workers[self._workers.index(worker)] = self._spawn()

    # -- the two job kinds ------------------------------------------------------------------------------
    def verify_many(self, pairs: Sequence[tuple[str, str | None]]) -> list[MathOutcome]:
        """Judge each (model output, gold answer) pair. Never raises for a bad row; never hangs."""
        timeout_s = inner_timeout(self.row_timeout_s)
        jobs = [{"op": "verify", "output": out, "gold": gold, "timeout": timeout_s} for out, gold in pairs]
        replies = self.run_jobs(jobs, [self.row_timeout_s] * len(jobs))
        outcomes = []
        for reply in replies:
            if reply.get("timeout"):
                outcomes.append(MathOutcome("unverifiable", TIMEOUT))
            elif "error" in reply:
                outcomes.append(MathOutcome("error", reply["error"]))
            else:
                outcomes.append(MathOutcome(reply["verdict"], reply["reason"], reply.get("answer")))
        return outcomes

    def cluster_many(self, groups: Sequence[Sequence[str]]) -> list[ClusterResult]:
        """For each group of outputs (samples of one prompt): their answers, clustered by equivalence."""
        timeout_s = inner_timeout(self.row_timeout_s)
        jobs = [{"op": "cluster", "outputs": list(g), "timeout": timeout_s} for g in groups]
        # A group compares up to n answers with each cluster representative: budget grows with n.
        budgets = [self.row_timeout_s * max(2, len(g)) for g in groups]
        results = []
        for group, reply in zip(groups, self.run_jobs(jobs, budgets), strict=True):
            if reply.get("timeout"):
                results.append(ClusterResult([None] * len(group), [], timed_out=True))
            elif "error" in reply:
                results.append(ClusterResult([None] * len(group), [], error=reply["error"]))
            else:
                results.append(ClusterResult(reply["answers"], reply["clusters"], reply["timed_out"]))
        return results


# -- the worker side ---------------------------------------------------------------------------------------
def _cluster(outputs: list[str], timeout_s: int) -> dict[str, Any]:
    from thinktoggle.filters.math import answer_of_output, equivalent, parse_math

    answers = [answer_of_output(o) for o in outputs]
    clusters: list[list[int]] = []
    representatives: list[list] = []
    timed_out = False
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        parsed, parse_timeout = parse_math(answer, timeout_s)
        timed_out |= parse_timeout
        if not parsed:
            continue
        for cluster, rep in zip(clusters, representatives, strict=True):
            same, cmp_timeout = equivalent(rep, parsed, timeout_s)  # the cluster's first answer acts as gold
            timed_out |= cmp_timeout
            if same:
                cluster.append(i)
                break
        else:
            clusters.append([i])
            representatives.append(parsed)
    return {"answers": answers, "clusters": clusters, "timed_out": timed_out}


def _handle(job: dict[str, Any]) -> dict[str, Any]:
    from thinktoggle.filters.math import judge_math

    if job["op"] == "verify":
        outcome = judge_math(job["output"], job["gold"], job["timeout"])
        return {"verdict": outcome.verdict, "reason": outcome.reason, "answer": outcome.answer}
    if job["op"] == "cluster":
        return _cluster(job["outputs"], job["timeout"])
    return {"error": f"unknown op {job['op']!r}"}


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: stdin EOF still ends the worker


def worker_main(memory_mb: int) -> None:
    import logging
    import resource

    protocol = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
    _die_with_parent()
    if memory_mb > 0:
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.disable(logging.WARNING)  # math-verify logs every timeout as a warning

    from thinktoggle.filters.math import judge_math

    judge_math("\\boxed{\\frac{1}{2}}", "0.5")  # warm the parser (latex2sympy builds its grammar on first use)
    protocol.write(b'{"ready": true}\n')
    for line in sys.stdin.buffer:
        try:
            reply = _handle(json.loads(line))
        except Exception as exc:  # noqa: BLE001 - report, stay alive for the next row
            reply = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        protocol.write(json.dumps(reply).encode() + b"\n")


if __name__ == "__main__":
    worker_main(int(sys.argv[1]) if len(sys.argv) > 1 else 4096)
