"""The public entry point: `Sandbox`, a bounded pool of warm sandboxes (or a fresh one per program)."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from thinktoggle.filters.sandbox.cgroups import find_cgroup_roots, sweep_stale_cgroups
from thinktoggle.filters.sandbox.command import SANDBOX_UID, check_bwrap, host_uid_for_bwrap
from thinktoggle.filters.sandbox.process import ProtocolError, SandboxProcess
from thinktoggle.filters.sandbox.spec import ExecResult, Program, SandboxLimits, SandboxUnavailable

log = logging.getLogger(__name__)


@dataclass
class Sandbox:
    """Executes untrusted programs: `run(program)`, `run_many(programs)`. Thread-safe; use as a context manager.

    `workers` bounds the warm pool (and `run_many`'s concurrency); `max_programs` recycles a warm sandbox;
    `host_uid` is the unprivileged uid bubblewrap runs as outside when the pipeline runs as root.
    """

    limits: SandboxLimits = field(default_factory=SandboxLimits)
    warm: bool = True
    workers: int = 1
    max_programs: int = 500
    allow_unsafe: bool = False
    host_uid: int = SANDBOX_UID

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        self._drop_to = host_uid_for_bwrap(self.host_uid)
        try:
            self._bwrap: str | None = check_bwrap(host_uid=self._drop_to)
        except SandboxUnavailable:
            if not self.allow_unsafe:
                raise
            log.warning("running untrusted code WITHOUT a sandbox (allow_unsafe=True)")
            self._bwrap = None
        self._cgroups = find_cgroup_roots()
        sweep_stale_cgroups(self._cgroups)
        if self._cgroups.pids is None:
            log.warning(
                "no writable pids cgroup: the sandbox's process count is bounded by RLIMIT_NPROC only (per sandbox: "
                "its user namespace), and the sandbox's memory by RLIMIT_AS per process"
            )
        self._idle: queue.LifoQueue[SandboxProcess] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(self.workers)
        self._lock = threading.Lock()
        self._live: set[SandboxProcess] = set()
        self._closed = False

    @property
    def isolated(self) -> bool:
        return self._bwrap is not None

    @property
    def pids_limited(self) -> bool:
        """Whether a pids cgroup bounds the process count (see the package docstring)."""
        return self._cgroups.pids is not None

    @property
    def memory_limited(self) -> bool:
        """Whether a memory cgroup bounds the sandbox's processes together (RLIMIT_AS bounds each alone)."""
        return self._cgroups.memory is not None

    def _start(self, once: bool) -> SandboxProcess:
        box = SandboxProcess(self.limits, self._bwrap, self._cgroups, once=once, host_uid=self._drop_to)
        with self._lock:
            self._live.add(box)
        return box

    def _discard(self, box: SandboxProcess) -> None:
        box.kill()
        with self._lock:
            self._live.discard(box)

    def run(self, program: Program) -> ExecResult:
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        with self._slots:
            if not self.warm:
                try:
                    box = self._start(once=True)
                except (TimeoutError, ProtocolError, OSError) as exc:
                    return ExecResult("sandbox_error", detail=f"could not start the sandbox: {exc}")
                try:
                    return box.execute(program)[0]
                finally:
                    self._discard(box)
            try:
                box = self._idle.get_nowait()
            except queue.Empty:
                try:
                    box = self._start(once=False)
                except (TimeoutError, ProtocolError, OSError) as exc:
                    return ExecResult("sandbox_error", detail=f"could not start the sandbox: {exc}")
            result, fit = box.execute(program)
            if fit and box.programs < self.max_programs and not self._closed:
                self._idle.put(box)
            else:
                self._discard(box)
            return result

    def run_many(self, programs: Iterable[Program]) -> list[ExecResult]:
        """Results in input order; up to `workers` programs at once."""
        programs = list(programs)
        if self.workers == 1 or len(programs) < 2:
            return [self.run(p) for p in programs]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox") as pool:
            return list(pool.map(self.run, programs))

    def close(self) -> None:
        self._closed = True
        with self._lock:
            boxes = list(self._live)
            self._live.clear()
        for box in boxes:
            box.kill()
        while not self._idle.empty():
            self._idle.get_nowait()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
