"""One bwrap sandbox running the zygote: start it (inside its cgroups), run one program at a time with a
deadline on every pipe operation, and kill the whole sandbox (bwrap, its pid namespace, its cgroups)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import signal
import struct
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from thinktoggle.filters.sandbox.cgroups import CgroupRoots, SandboxCgroups
from thinktoggle.filters.sandbox.command import Launch, bwrap_command, zygote_argv
from thinktoggle.filters.sandbox.spec import ExecResult, Program, SandboxLimits, Status

FRAME = struct.Struct(">II")  # the zygote's framing: header length, payload length
ZYGOTE_MEMORY_MB = 128  # the warm interpreter, bwrap and page-table slack, on top of the program's own limit
START_TIMEOUT_S = 30.0  # a loaded 2-core machine can take seconds to start an interpreter
ANSWER_GRACE_S = 5.0  # how much longer than the program's wall limit the zygote may take to answer
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


class ProtocolError(Exception):
    """The zygote broke the framing or closed its output: this sandbox is unusable."""


class SandboxProcess:
    """One bwrap sandbox running the zygote; executes programs one at a time."""

    def __init__(
        self,
        limits: SandboxLimits,
        bwrap: str | None,
        cgroup_roots: CgroupRoots,
        once: bool,
        host_uid: int | None = None,
    ) -> None:
        """`host_uid`: the uid bubblewrap drops to outside (see `command.host_uid_for_bwrap`); None: stay as is."""
        self.limits = limits
        self.programs = 0
        self.cgroup: SandboxCgroups | None = None
        self.init_pid: int | None = None  # the sandbox's pid 1, seen from outside
        self._private_dir: tempfile.TemporaryDirectory | None = None
        info_r, info_w = os.pipe()
        launch = Launch([])
        try:
            if cgroup_roots.pids is not None or cgroup_roots.memory is not None:
                # + bwrap, init, zygote; the program's memory, its two tmpfs, and the zygote's own share
                memory = (limits.memory_mb + 2 * limits.tmpfs_mb + ZYGOTE_MEMORY_MB) << 20
                self.cgroup = SandboxCgroups(cgroup_roots, limits.processes + 3, memory)
            if bwrap is not None:
                launch = bwrap_command(bwrap, limits, zygote_argv(once, contained=True), info_w, host_uid)
                cmd = launch.argv
                cwd, env = "/", {"PATH": "/usr/bin:/bin"}
            else:  # unsafe: a plain host process in a private folder
                self._private_dir = tempfile.TemporaryDirectory(prefix="thinktoggle-unsafe-")
                cwd, env = self._private_dir.name, {"PATH": "/usr/bin:/bin", "HOME": self._private_dir.name}
                cmd = zygote_argv(once, contained=False)
                if self.cgroup is not None:  # lets the zygote kill daemons that left the program's group
                    cmd += ["--cgroup-procs", self.cgroup.procs_files[0]]
            if self.cgroup is not None:
                # Join the cgroups before exec'ing (as root, before any privilege drop), so no process of the
                # sandbox is ever outside them.
                join = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'
                cmd = ["/bin/sh", "-c", join, "sh", *self.cgroup.procs_files, "--", *cmd]
            self.proc = _spawn(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=(info_w, *launch.fds),
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
        finally:
            launch.close()
        os.close(info_w)
        self._info_r = info_r
        self._out = self.proc.stdout.fileno()
        self._in = self.proc.stdin.fileno()
        os.set_blocking(self._out, False)
        try:
            header, _ = self._read_frame(time.monotonic() + START_TIMEOUT_S, max_payload=0)
            if not header.get("ready"):
                raise ProtocolError(f"unexpected greeting {header}")
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
                    raise ProtocolError("the sandbox closed its output (zygote died)")
                data += chunk
        return bytes(data)

    def _read_frame(self, deadline: float, max_payload: int) -> tuple[dict, bytes]:
        head_len, payload_len = FRAME.unpack(self._read_exact(FRAME.size, deadline))
        if head_len > 1 << 16 or payload_len > max_payload:
            raise ProtocolError(f"oversized frame from the sandbox ({head_len}, {payload_len})")
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
        except (ProtocolError, OSError, ValueError) as exc:
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
        """Kill the whole sandbox: bwrap, the namespace's init (the zygote: its death takes every process in the
        namespace), the cgroup."""
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
