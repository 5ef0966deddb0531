"""What the sandbox is asked to run, under which limits, and what it answers: plain data, no processes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Mode = Literal["script", "functional"]
Status = Literal["ok", "timeout", "memory_limit", "output_limit", "crashed", "sandbox_error"]


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here, and unsafe execution was not allowed."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Per-program bounds. The defaults suit test-case programs (competitive programming, HumanEval)."""

    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 1024  # address space (RLIMIT_AS) of the program's process
    file_size_mb: int = 16  # largest file it may write (RLIMIT_FSIZE)
    tmpfs_mb: int = 64  # total size of its writable /tmp (and again of /dev/shm)
    open_files: int = 128
    processes: int = 32  # pids cgroup limit for the whole sandbox, minus its own 3 processes
    output_bytes: int = 1 << 20  # stdout and stderr, each

    def for_zygote(self) -> dict[str, float | int]:
        return {
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "memory_bytes": self.memory_mb << 20,
            "file_size_bytes": self.file_size_mb << 20,
            "open_files": self.open_files,
            "processes": self.processes,
            "output_bytes": self.output_bytes,
        }


@dataclass(frozen=True, slots=True)
class Program:
    """One execution: a script fed `stdin`, or (functional) `code` + `test` then `check(entry_point)`."""

    code: str
    stdin: str = ""
    mode: Mode = "script"
    test: str = ""
    entry_point: str = ""
    wall_s: float | None = None  # per-program time limits (a problem's own); None: the sandbox's limits
    cpu_s: int | None = None


@dataclass(frozen=True, slots=True)
class ExecResult:
    status: Status
    exit_code: int | None = None  # negative: killed by that signal
    stdout: bytes = b""
    stderr: bytes = b""
    harness: str = ""  # what the in-process harness reported (error type, wrong_answer, exited_early, ...)
    passed: bool = False  # functional mode: the harness proved that check() returned (the nonce came back)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)
