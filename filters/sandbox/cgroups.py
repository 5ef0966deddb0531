"""Per-sandbox cgroups: `pids.max` and a memory limit that bind every process of one sandbox together.

RLIMIT_NPROC does not bind when we run as root (the sandbox's uid maps to the outside root), and RLIMIT_AS
bounds each process alone, so these cgroups are the real process-count and total-memory limits wherever a
cgroup v1 `pids`/`memory` hierarchy or a delegating v2 tree is writable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_PREFIX = "thinktoggle-sandbox-"


@dataclass(frozen=True, slots=True)
class CgroupRoots:
    """Folders where we may create limited cgroups: cgroup v1 `pids`/`memory` hierarchies, or a v2 tree that
    delegates those controllers. None where not available (then that limit is not enforced by a cgroup)."""

    pids: Path | None
    memory: Path | None
    v2: bool = False


def find_cgroup_roots() -> CgroupRoots:
    def writable(path: Path) -> bool:
        return (path / "cgroup.procs").exists() and os.access(path, os.W_OK)

    v1_pids, v1_memory = Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/memory")
    if writable(v1_pids) or writable(v1_memory):
        return CgroupRoots(v1_pids if writable(v1_pids) else None, v1_memory if writable(v1_memory) else None)
    v2 = Path("/sys/fs/cgroup")
    with contextlib.suppress(OSError):
        delegated = (v2 / "cgroup.subtree_control").read_text().split()
        if writable(v2):
            return CgroupRoots(v2 if "pids" in delegated else None, v2 if "memory" in delegated else None, v2=True)
    return CgroupRoots(None, None)


def sweep_stale_cgroups(roots: CgroupRoots, min_age_s: float = 300.0) -> int:
    """Remove empty sandbox cgroups left by a host process that was SIGKILLed. Only old ones: a fresh, still
    empty cgroup may belong to a sandbox that another process is starting right now."""
    removed = 0
    for root in {r for r in (roots.pids, roots.memory) if r is not None}:
        for path in root.glob(f"{CGROUP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > min_age_s and not (path / "cgroup.procs").read_text().strip():
                    path.rmdir()
                    removed += 1
    return removed


class SandboxCgroups:
    """One sandbox's cgroups: `pids.max` and a memory limit bound every process in it, root-owned or not.

    RLIMIT_AS bounds each process; the memory cgroup bounds them together (a fork of memory hogs).
    """

    def __init__(self, roots: CgroupRoots, max_pids: int, memory_bytes: int) -> None:
        name = f"{CGROUP_PREFIX}{uuid.uuid4().hex[:12]}"
        self.paths: list[Path] = []
        self.memory: Path | None = None
        try:
            for root, kind in ((roots.pids, "pids"), (roots.memory, "memory")):
                if root is None:
                    continue
                path = root / name
                if path not in self.paths:
                    path.mkdir()
                    self.paths.append(path)
                if kind == "pids":
                    (path / "pids.max").write_text(str(max_pids))
                elif roots.v2:
                    (path / "memory.max").write_text(str(memory_bytes))
                    with contextlib.suppress(OSError):
                        (path / "memory.swap.max").write_text("0")
                    self.memory = path
                else:
                    (path / "memory.limit_in_bytes").write_text(str(memory_bytes))
                    with contextlib.suppress(OSError):  # no swap accounting: nothing to bound
                        (path / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
                    self.memory = path
        except BaseException:
            self.kill_and_remove()
            raise

    @property
    def procs_files(self) -> list[str]:
        return [str(p / "cgroup.procs") for p in self.paths]

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.paths:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        return sorted(found)

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in this sandbox so far."""
        if self.memory is None:
            return 0
        name = "memory.events" if (self.memory / "memory.events").exists() else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.memory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def kill_and_remove(self, timeout_s: float = 5.0) -> None:
        """SIGKILL every member until none is left, then remove the cgroups (busy while dying tasks linger)."""
        deadline = time.monotonic() + timeout_s
        while True:
            pids = self.pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if not pids:
                for path in list(self.paths):
                    with contextlib.suppress(FileNotFoundError):
                        try:
                            path.rmdir()
                        except OSError:  # EBUSY: a task still exiting
                            continue
                    self.paths.remove(path)
                if not self.paths:
                    return
            if time.monotonic() > deadline:
                log.warning("sandbox cgroups %s still busy after %.0f s: %s", self.paths, timeout_s, pids)
                return
            time.sleep(0.005)
