"""The bubblewrap command line: which namespaces, binds and mounts a sandbox gets, and the zygote's argv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from thinktoggle.filters.sandbox.spec import SandboxLimits, SandboxUnavailable

ZYGOTE_SOURCE = Path(__file__).with_name("zygote.py")
ZYGOTE_INSIDE = "/sandbox/zygote.py"
SANDBOX_UID = 65534  # nobody
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
    """The zygote started as a script by path (-I: no site-packages, no env), inside bwrap or on the host."""
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
            "(Debian/Ubuntu: `apt-get install bubblewrap`), or pass allow_unsafe=True (CLI: `thinktoggle filter --code-allow-unsafe`) "
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
