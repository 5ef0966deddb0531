"""Run untrusted Python (model-written programs) under bubblewrap, bounded in time, memory, processes and output.

Every program runs inside a bubblewrap sandbox (`bwrap`): new user, pid, net, ipc and uts namespaces; uid/gid
65534 with every capability dropped and no nested user namespaces; read-only binds of the system and of the
Python install only (nothing else of the host: no /etc, /root, /work or /home, no venv); a private, size-capped
tmpfs for /tmp (the working directory) and /dev/shm; an empty environment (PATH, HOME, LANG only: no HF_TOKEN);
`--die-with-parent` and `--new-session`. Inside, each program runs in a child forked from a small zygote
(`sandbox_zygote.py`) with rlimits on CPU time, address space, file size, open files and processes, a
wall-clock timeout, and stdout/stderr read with a byte cap.

Process count and memory together: RLIMIT_NPROC does not bind here, because we run as root and the sandbox's
uid maps to the outside root (the kernel exempts it). The binding limits are per-sandbox cgroups wherever they
are writable (cgroup v1 `pids`/`memory` hierarchies, or a v2 tree delegating those controllers): `pids.max`
bounds the process count, and a memory limit (the program's `memory_mb` + both tmpfs + 128 MiB) bounds all of
the sandbox's processes together, since RLIMIT_AS bounds each alone (8 forked children x 200 MiB would pass
it). A process killed by that cgroup's OOM killer makes the run `memory_limit`. Without a writable pids cgroup
a fork bomb is bounded only by the wall-clock timeout and the machine's own limits; `Sandbox.pids_limited` and
`Sandbox.memory_limited` say which limits hold.

Killing: after each program the zygote, alone in its pid namespace, kills every other process in it
(`kill(-1, SIGKILL)`, which reaches setsid daemons that a process-group kill misses) and waits until only it
and the namespace's init remain. On a timeout of the zygote itself, or anything odd, the host SIGKILLs bwrap
and the namespace's init (its pid from `--info-fd`): when a pid namespace's init dies the kernel kills every
process in it. Every member of the sandbox's cgroup is killed as well. The host never waits on pipe EOF
without a deadline.

Two modes:
- `warm=True` (default): a bounded pool of long-lived sandboxes, one program at a time in each; a sandbox is
  recycled after `max_programs` programs or on any anomaly (a process that survived, a file that could not
  be wiped, a SysV IPC object or message queue left behind, a zygote that died or answered late).
- `warm=False`: a fresh sandbox per program (slower: ~45-65 ms of start-up each).

What the sandbox protects against: reading host files outside the read-only system/Python binds (secrets,
tokens, the dataset, /root, /work, /etc); writing anywhere on the host; network access (its own network
namespace has only a down loopback); seeing or signalling host processes; environment leaks; fork bombs (pids
cgroup), memory bombs (RLIMIT_AS, and the memory cgroup for many processes), CPU and wall-clock hogs, huge
outputs, huge files (RLIMIT_FSIZE, tmpfs size), fd exhaustion; daemons outliving their program.

What it does NOT protect against: kernel exploits — the sandbox shares the host kernel, there is no seccomp
filter (every syscall but new user namespaces is reachable), and the sandbox uid maps to the outside root, so
an escape is an escape as root; for the same reason, files *inside* the bound system/Python paths are readable
even when they are root-only (0600). CPU side channels (Spectre-class) and timing channels; CPU,
memory-bandwidth and disk-cache contention slowing other work on the machine; memory use up to the memory
cgroup's limit per running sandbox; reading the world-readable system files and the Python install that are
bound in (and /proc's view of the kernel: version, cpuinfo, meminfo). A program reading or patching the test
harness of its own run: functional tests run in the program's process, as in HumanEval, so a deliberate
adversary can forge its own pass (see `filters/code.py`).

Isolation between programs in one warm sandbox (honestly): each program is a fresh fork of a zygote that never
ran untrusted code, so no globals, imports or monkeypatches carry over; its files, processes, SysV IPC objects
and message queues are gone before the next program starts (or the sandbox is discarded). Not isolated: the
sandbox's network, ipc and uts namespaces are reused (empty network; IPC checked); a program can signal the
zygote (same uid) — that only kills or stalls its own sandbox, which the host then discards; programs in one
sandbox share the zygote's hash seed (set/dict order is identical between them, unlike fresh interpreters);
timing channels between consecutive programs. The zygote is non-dumpable (no ptrace, no /proc/<pid>/fd or
mem access by the programs) and zeroes each request (source, tests, stdin, nonce) once the child is forked, so a
later program cannot find them in memory it inherits; the outputs of earlier programs pass through the zygote's
heap and may linger there (stdio expected outputs never enter the sandbox at all).

Without `bwrap` the sandbox refuses to run (`SandboxUnavailable`) unless `allow_unsafe=True`: then programs
run as plain host processes (same uid, same filesystem, same network) with rlimits, the wall clock and, where
writable, the cgroups — no isolation at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

ZYGOTE_SOURCE = Path(__file__).with_name("sandbox_zygote.py")
ZYGOTE_INSIDE = "/sandbox/zygote.py"
FRAME = struct.Struct(">II")
SANDBOX_UID = 65534  # nobody
ZYGOTE_MEMORY_MB = 128  # the warm interpreter, bwrap and page-table slack, on top of the program's own limit
START_TIMEOUT_S = 30.0  # a loaded 2-core machine can take seconds to start an interpreter
ANSWER_GRACE_S = 5.0  # how much longer than the program's wall limit the zygote may take to answer
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
CGROUP_PREFIX = "thinktoggle-sandbox-"
# bwrap's --die-with-parent is PR_SET_PDEATHSIG, which fires when the *thread* that forked it exits: sandboxes
# started from a short-lived worker thread would die with it. One long-lived thread starts them all (one per
# process: a forked worker process inherits the executor object but not its thread).
_spawner: tuple[int, ThreadPoolExecutor] | None = None
_spawner_lock = threading.Lock()


def _spawn(*args, **kwargs) -> subprocess.Popen:
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner[0] != os.getpid():
            _spawner = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="sandbox-spawner"))
        executor = _spawner[1]
    return executor.submit(subprocess.Popen, *args, **kwargs).result()


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


# --- the bwrap command ----------------------------------------------------------------------------------


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def _python_binds() -> tuple[str, list[str]]:
    """The real interpreter (a venv's python is a symlink into its base install) and what to bind for it."""
    interpreter = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    binds = [] if prefix.startswith("/usr/") or prefix == "/usr" else [prefix]
    if not any(interpreter.startswith(p + "/") for p in [*binds, "/usr"]):
        binds.append(os.path.dirname(interpreter))
    return interpreter, binds


def bwrap_command(bwrap: str, limits: SandboxLimits, inner: list[str], info_fd: int | None = None) -> list[str]:
    """The bwrap invocation that runs `inner` (an argv inside the sandbox)."""
    _, python_binds = _python_binds()
    args = [bwrap, "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--disable-userns"]
    args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox"]
    args += ["--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv"]
    args += ["--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp/work", "--setenv", "LANG", "C.UTF-8"]
    args += ["--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in python_binds:
        args += ["--ro-bind", path, path]
    args += ["--ro-bind", str(ZYGOTE_SOURCE), ZYGOTE_INSIDE]
    args += ["--proc", "/proc", "--dev", "/dev", "--mqueue", "/dev/mqueue"]
    size = str(limits.tmpfs_mb << 20)
    args += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm"]
    args += ["--remount-ro", "/", "--chdir", "/tmp"]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    return [*args, *inner]


def zygote_argv(once: bool, contained: bool) -> list[str]:
    interpreter, _ = _python_binds()
    script = ZYGOTE_INSIDE if contained else str(ZYGOTE_SOURCE)
    return [interpreter, "-I", script, *(["--contained"] if contained else []), *(["--once"] if once else [])]


_probe_lock = threading.Lock()
_probe_result: dict[str, str | None] = {}


def check_bwrap(bwrap: str | None = None) -> str:
    """The bwrap path, after proving once per process that it can build our sandbox here."""
    bwrap = bwrap or find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap (`bwrap`) is not installed, so model-written code cannot be run safely. Install it "
            "(Debian/Ubuntu: `apt-get install bubblewrap`), or pass allow_unsafe=True (CLI: `thinktoggle filter --unsafe-code`) "
            "to run untrusted programs as plain host processes WITHOUT any isolation."
        )
    with _probe_lock:
        if bwrap not in _probe_result:
            interpreter, _ = _python_binds()
            cmd = bwrap_command(bwrap, SandboxLimits(), [interpreter, "-I", "-c", "import os; print(os.getuid())"])
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            ok = done.returncode == 0 and done.stdout.strip() == str(SANDBOX_UID)
            _probe_result[bwrap] = None if ok else (done.stderr.strip() or done.stdout.strip() or "no output")
        error = _probe_result[bwrap]
    if error is not None:
        raise SandboxUnavailable(f"bubblewrap at {bwrap} cannot build the sandbox here: {error}")
    return bwrap


# --- cgroups: pids and memory -------------------------------------------------------------------------------


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


# --- one sandbox process ----------------------------------------------------------------------------------


class _ProtocolError(Exception):
    pass


class SandboxProcess:
    """One bwrap sandbox running the zygote; executes programs one at a time."""

    def __init__(self, limits: SandboxLimits, bwrap: str | None, cgroup_roots: CgroupRoots, once: bool) -> None:
        self.limits = limits
        self.programs = 0
        self.cgroup: SandboxCgroups | None = None
        self.init_pid: int | None = None  # the sandbox's pid 1, seen from outside
        self._private_dir: tempfile.TemporaryDirectory | None = None
        info_r, info_w = os.pipe()
        try:
            if cgroup_roots.pids is not None or cgroup_roots.memory is not None:
                # + bwrap, init, zygote; the program's memory, its two tmpfs, and the zygote's own share
                memory = (limits.memory_mb + 2 * limits.tmpfs_mb + ZYGOTE_MEMORY_MB) << 20
                self.cgroup = SandboxCgroups(cgroup_roots, limits.processes + 3, memory)
            if bwrap is not None:
                cmd = bwrap_command(bwrap, limits, zygote_argv(once, contained=True), info_fd=info_w)
                cwd, env = "/", {"PATH": "/usr/bin:/bin"}
            else:  # unsafe: a plain host process in a private folder
                self._private_dir = tempfile.TemporaryDirectory(prefix="thinktoggle-unsafe-")
                cwd, env = self._private_dir.name, {"PATH": "/usr/bin:/bin", "HOME": self._private_dir.name}
                cmd = zygote_argv(once, contained=False)
                if self.cgroup is not None:  # lets the zygote kill daemons that left the program's group
                    cmd += ["--cgroup-procs", self.cgroup.procs_files[0]]
            if self.cgroup is not None:
                # Join the cgroups before exec'ing, so no process of the sandbox is ever outside them.
                join = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'
                cmd = ["/bin/sh", "-c", join, "sh", *self.cgroup.procs_files, "--", *cmd]
            self.proc = _spawn(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=(info_w,),
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            os.close(info_r)
            os.close(info_w)
            if self.cgroup:
                self.cgroup.kill_and_remove()
            raise
        os.close(info_w)
        self._info_r = info_r
        self._out = self.proc.stdout.fileno()
        self._in = self.proc.stdin.fileno()
        os.set_blocking(self._out, False)
        try:
            header, _ = self._read_frame(time.monotonic() + START_TIMEOUT_S, max_payload=0)
            if not header.get("ready"):
                raise _ProtocolError(f"unexpected greeting {header}")
            self._read_info()
        except BaseException:
            self.kill()
            raise

    def _read_info(self) -> None:
        """bwrap's --info-fd JSON: the outside pid of the sandbox's init, to kill the namespace by."""
        chunks = []
        os.set_blocking(self._info_r, False)
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self._info_r, 4096):
                chunks.append(chunk)
        with contextlib.suppress(ValueError):
            self.init_pid = int(json.loads(b"".join(chunks))["child-pid"])

    # framing with deadlines: never block on a pipe without one
    def _read_exact(self, n: int, deadline: float) -> bytes:
        data = bytearray()
        with selectors.DefaultSelector() as sel:
            sel.register(self._out, selectors.EVENT_READ)
            while len(data) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the sandbox did not answer in time")
                if not sel.select(left):
                    continue
                try:
                    chunk = os.read(self._out, n - len(data))
                except BlockingIOError:
                    continue
                if not chunk:
                    raise _ProtocolError("the sandbox closed its output (zygote died)")
                data += chunk
        return bytes(data)

    def _read_frame(self, deadline: float, max_payload: int) -> tuple[dict, bytes]:
        head_len, payload_len = FRAME.unpack(self._read_exact(FRAME.size, deadline))
        if head_len > 1 << 16 or payload_len > max_payload:
            raise _ProtocolError(f"oversized frame from the sandbox ({head_len}, {payload_len})")
        header = json.loads(self._read_exact(head_len, deadline))
        return header, self._read_exact(payload_len, deadline) if payload_len else b""

    def _write_all(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        with selectors.DefaultSelector() as sel:
            sel.register(self._in, selectors.EVENT_WRITE)
            while view:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the sandbox did not read its request in time")
                if sel.select(left):
                    view = view[os.write(self._in, view) :]

    def execute(self, program: Program) -> tuple[ExecResult, bool]:
        """Run one program. Returns the result and whether this sandbox is still fit for another one."""
        self.programs += 1
        nonce = secrets.token_hex(16) if program.mode == "functional" else ""
        parts = [p.encode("utf-8", "surrogatepass") for p in (program.code, program.test, program.stdin, nonce)]
        limits = self.limits.for_zygote()
        if program.wall_s is not None:
            limits["wall_s"] = float(program.wall_s)
        if program.cpu_s is not None:
            limits["cpu_s"] = int(program.cpu_s)
        header = {"mode": program.mode, "entry_point": program.entry_point, "sizes": [len(p) for p in parts]}
        head = json.dumps({**header, "limits": limits}).encode()
        oom_before = self.cgroup.oom_kills() if self.cgroup else 0
        started = time.monotonic()
        deadline = started + limits["wall_s"] + ANSWER_GRACE_S
        try:
            self._write_all(FRAME.pack(len(head), sum(map(len, parts))) + head + b"".join(parts), deadline)
            reply, payload = self._read_frame(deadline, max_payload=2 * self.limits.output_bytes + 8192)
        except TimeoutError as exc:
            return ExecResult("timeout", wall_s=time.monotonic() - started, detail=f"sandbox: {exc}"), False
        except (_ProtocolError, OSError, ValueError) as exc:
            # The zygote died mid-program: the program killed or broke it (same uid), or the OOM killer took it.
            status: Status = "memory_limit" if self._oom_since(oom_before) else "crashed"
            return ExecResult(status, wall_s=time.monotonic() - started, detail=f"sandbox: {exc}"), False
        n_out, n_err, n_res = reply["sizes"]
        stdout, stderr = payload[:n_out], payload[n_out : n_out + n_err]
        harness = payload[n_out + n_err : n_out + n_err + n_res].decode("utf-8", "replace")
        passed = bool(nonce) and f"pass:{nonce}" in harness.splitlines()
        status = reply["status"]
        if status == "ok" and "memory_limit" in harness.splitlines():
            status = "memory_limit"
        if status == "ok" and reply["exit_code"] != 0 and self._oom_since(oom_before):
            status = "memory_limit"  # the memory cgroup's OOM killer took one of the program's processes
        result = ExecResult(
            status=status,
            exit_code=reply["exit_code"],
            stdout=stdout,
            stderr=stderr,
            harness="pass" if passed else harness.strip().replace(nonce, "") if nonce else harness.strip(),
            passed=passed and status == "ok" and reply["exit_code"] == 0,
            cpu_s=reply["cpu_s"],
            wall_s=reply["wall_s"],
            detail=reply.get("detail", ""),
        )
        fit = bool(reply.get("clean")) and self.proc.poll() is None
        return result, fit

    def _oom_since(self, before: int) -> bool:
        return self.cgroup is not None and self.cgroup.oom_kills() > before

    def kill(self) -> None:
        """Kill the whole sandbox: bwrap, the namespace's init (which takes every process in it), the cgroup."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # bwrap (its own session)
        if self.init_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_and_remove()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        with contextlib.suppress(OSError):
            os.close(self._info_r)
        if self._private_dir is not None:
            self._private_dir.cleanup()


# --- the public API ---------------------------------------------------------------------------------------


@dataclass
class Sandbox:
    """Executes untrusted programs: `run(program)`, `run_many(programs)`. Thread-safe; use as a context manager.

    `workers` bounds the warm pool (and `run_many`'s concurrency); `max_programs` recycles a warm sandbox.
    """

    limits: SandboxLimits = field(default_factory=SandboxLimits)
    warm: bool = True
    workers: int = 1
    max_programs: int = 500
    allow_unsafe: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        try:
            self._bwrap: str | None = check_bwrap()
        except SandboxUnavailable:
            if not self.allow_unsafe:
                raise
            log.warning("running untrusted code WITHOUT a sandbox (allow_unsafe=True)")
            self._bwrap = None
        self._cgroups = find_cgroup_roots()
        sweep_stale_cgroups(self._cgroups)
        if self._cgroups.pids is None:
            log.warning(
                "no writable pids cgroup: the sandbox's process count is bounded by RLIMIT_NPROC only, which does "
                "not bind when running as root (a fork bomb is then stopped only by the wall-clock timeout)"
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
        """Whether a pids cgroup bounds the process count (see the module docstring)."""
        return self._cgroups.pids is not None

    @property
    def memory_limited(self) -> bool:
        """Whether a memory cgroup bounds the sandbox's processes together (RLIMIT_AS bounds each alone)."""
        return self._cgroups.memory is not None

    def _start(self, once: bool) -> SandboxProcess:
        box = SandboxProcess(self.limits, self._bwrap, self._cgroups, once=once)
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
                except (TimeoutError, _ProtocolError, OSError) as exc:
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
                except (TimeoutError, _ProtocolError, OSError) as exc:
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
