"""The bubblewrap command line: which namespaces, binds and mounts a sandbox gets, the seccomp filter, the
unprivileged host uid bubblewrap runs as when we are root, and the zygote's argv."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from thinktoggle.filters.sandbox.seccomp import SeccompUnavailable, filter_fd
from thinktoggle.filters.sandbox.spec import SandboxLimits, SandboxUnavailable

ZYGOTE_SOURCE = Path(__file__).with_name("zygote.py")
ZYGOTE_INSIDE = "/sandbox/zygote.py"
SANDBOX_UID = 65534  # nobody: the uid inside, and (when we are root) bubblewrap's own uid outside
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")


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


def host_uid_for_bwrap(host_uid: int = SANDBOX_UID) -> int | None:
    """The uid bubblewrap drops to before it starts: `host_uid` when we are root, None (stay as we are) if not.

    As root, bwrap's user namespace maps the sandbox's uid to root outside, so a file an escaped process
    creates is root's; run as `host_uid`, the mapping ends there. The cgroup set-up stays in the root parent.
    """
    return host_uid if os.geteuid() == 0 else None


def _reachable_by(path: str, uid: int) -> bool:
    """Whether `uid` (with gid == uid and no other groups, as setpriv leaves it) can look up `path`."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = os.path.join(current, part)
        try:
            st = os.stat(current)
        except OSError:
            return False
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid == uid else stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


_stage_lock = threading.Lock()
_stage: list[str] = []  # the staging folder this process uses


def _own_folder(path: str) -> bool:
    st = os.lstat(path)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o755


def _stage_dir(index: int) -> str:
    """An empty, world-traversable folder to mount a bind source on (in a private mount namespace only; on the
    host it stays empty). One fixed folder per host uid under /tmp (not $TMPDIR, which the dropped uid may not
    reach), reused by every process and never removed, so ranks that end without atexit leave nothing new;
    a private one if someone else made that path first."""
    with _stage_lock:
        if not _stage or not os.path.isdir(_stage[0]):
            top = f"/tmp/thinktoggle-stage-{os.geteuid()}"
            with contextlib.suppress(FileExistsError):
                os.mkdir(top, 0o755)
                os.chmod(top, 0o755)  # whatever the umask
            if not _own_folder(top):
                top = tempfile.mkdtemp(prefix="thinktoggle-stage-", dir="/tmp")
                os.chmod(top, 0o755)
            _stage[:] = [top]
        path = os.path.join(_stage[0], str(index))
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
            os.chmod(path, 0o755)
        return path


@dataclass
class Launch:
    """One sandbox start: the argv, and the fds it reads (seccomp program, zygote source) that the caller passes
    to the child and closes after spawning it."""

    argv: list[str]
    fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


def bwrap_command(
    bwrap: str,
    limits: SandboxLimits,
    inner: list[str],
    info_fd: int | None = None,
    host_uid: int | None = None,
) -> Launch:
    """The command that runs `inner` (an argv inside the sandbox), as `host_uid` outside when that is set."""
    _, python_binds = _python_binds()
    launch = Launch([])
    try:
        seccomp = filter_fd()
        launch.fds.append(seccomp)
        zygote = os.open(ZYGOTE_SOURCE, os.O_RDONLY | os.O_CLOEXEC)  # copied in: its folder may be private
        launch.fds.append(zygote)
    except (OSError, SeccompUnavailable) as exc:
        launch.close()
        raise SandboxUnavailable(f"cannot build the sandbox's seccomp filter: {exc}") from exc
    args = [bwrap, "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--disable-userns"]
    # --as-pid-1: the zygote is the namespace's init, so nothing inside can SIGKILL or SIGSTOP it (the kernel
    # drops such signals to an init from its own namespace), and no bwrap reaper lives beside it.
    args += ["--unshare-pid", "--as-pid-1", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox"]
    args += ["--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv", "--seccomp", str(seccomp)]
    args += ["--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp/work", "--setenv", "LANG", "C.UTF-8"]
    args += ["--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    staged: list[str] = []  # source, stage, ...: binds the dropped uid cannot reach (a Python under /root)
    for path in python_binds:
        if host_uid is not None and not _reachable_by(path, host_uid):
            stage = _stage_dir(len(staged) // 2)
            staged += [path, stage]
            args += ["--ro-bind", stage, path]
        else:
            args += ["--ro-bind", path, path]
    args += ["--ro-bind-data", str(zygote), ZYGOTE_INSIDE]
    args += ["--proc", "/proc", "--dev", "/dev", "--mqueue", "/dev/mqueue"]
    size = str(limits.tmpfs_mb << 20)
    args += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm"]
    # Only /tmp, /dev/shm (wiped after every program) and /dev/mqueue (checked empty) stay writable.
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp"]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    args += inner
    if host_uid is not None:
        drop = ["setpriv", f"--reuid={host_uid}", f"--regid={host_uid}", "--clear-groups", "--"]
        args = drop + args
        if staged:  # a private mount namespace, as root, where each source is mounted on its stage
            mount = 'while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 96; shift 2; done; shift; exec "$@"'
            private = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", mount, "sh"]
            args = [*private, *staged, "--", *args]
    launch.argv = args
    return launch


def zygote_argv(once: bool, contained: bool) -> list[str]:
    """The zygote started as a script by path (-I: no site-packages, no env), inside bwrap or on the host."""
    interpreter, _ = _python_binds()
    script = ZYGOTE_INSIDE if contained else str(ZYGOTE_SOURCE)
    return [interpreter, "-I", script, *(["--contained"] if contained else []), *(["--once"] if once else [])]


_probe_lock = threading.Lock()
_probe_result: dict[tuple[str, int | None], str | None] = {}
PROBE = "import os; print(os.getuid(), [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')])"


def check_bwrap(bwrap: str | None = None, host_uid: int | None = None) -> str:
    """The bwrap path, after proving once per process that it can build our sandbox here (as `host_uid`
    outside, with the seccomp filter active inside)."""
    bwrap = bwrap or find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap (`bwrap`) is not installed, so model-written code cannot be run safely. Install it "
            "(Debian/Ubuntu: `apt-get install bubblewrap`), or pass allow_unsafe=True (CLI: `thinktoggle filter --code-allow-unsafe`) "
            "to run untrusted programs as plain host processes WITHOUT any isolation."
        )
    with _probe_lock:
        if (bwrap, host_uid) not in _probe_result:
            interpreter, _ = _python_binds()
            launch = bwrap_command(bwrap, SandboxLimits(), [interpreter, "-I", "-c", PROBE], host_uid=host_uid)
            try:
                done = subprocess.run(
                    launch.argv,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    stdin=subprocess.DEVNULL,
                    pass_fds=launch.fds,
                )
            except OSError as exc:  # setpriv or unshare missing
                done = subprocess.CompletedProcess(launch.argv, 127, "", str(exc))
            finally:
                launch.close()
            ok = done.returncode == 0 and done.stdout.strip() == f"{SANDBOX_UID} ['2']"
            _probe_result[(bwrap, host_uid)] = (
                None if ok else (done.stderr.strip() or done.stdout.strip() or "no output")
            )
        error = _probe_result[(bwrap, host_uid)]
    if error is not None:
        raise SandboxUnavailable(f"bubblewrap at {bwrap} cannot build the sandbox here: {error}")
    return bwrap
