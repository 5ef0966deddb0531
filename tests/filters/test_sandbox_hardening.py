"""The sandbox's hardening under attack: the seccomp filter (one test per group of denied calls) and the
unprivileged host uid bubblewrap runs as when the pipeline is root.

Each denied call is made with all-zero arguments, which the kernel would accept or fail with another errno
(unshare(0), settimeofday(NULL, NULL), ptrace(PTRACE_TRACEME) and get_mempolicy succeed; mount and bpf fail with
EFAULT or EINVAL): EPERM can only come from the filter. What one program can leave for the next in a warm sandbox is tested in
test_sandbox_isolation.py.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import textwrap
import threading
import time

import psutil
import pytest

from thinktoggle.filters.sandbox import Program, Sandbox, SandboxLimits
from thinktoggle.filters.sandbox import command as sandbox_command
from thinktoggle.filters.sandbox import pool as sandbox_pool
from thinktoggle.filters.sandbox.seccomp import DENIED, syscall_number

LIMITS = SandboxLimits(wall_s=20.0, cpu_s=10, memory_mb=512, output_bytes=64 * 1024, processes=16)
# Which zygote served a program: its start time (field 22 of /proc/1/stat, readable though it is not dumpable).
ZYGOTE_ID = "print('zygote', open('/proc/1/stat').read().rsplit(')', 1)[1].split()[19])"


@pytest.fixture(scope="module")
def warm() -> Sandbox:
    with Sandbox(LIMITS, warm=True, workers=1) as sb:
        yield sb


def run(sb: Sandbox, code: str, **kw) -> tuple[str, dict[str, str]]:
    """Runs `code` with ZYGOTE_ID appended; returns the zygote's id and the program's other `key value` lines."""
    result = sb.run(Program(textwrap.dedent(code) + "\n" + ZYGOTE_ID, **kw))
    assert result.status == "ok" and result.exit_code == 0, result
    lines = dict(line.split(" ", 1) for line in result.stdout.decode().splitlines())
    return lines.pop("zygote"), lines


def syscalls_fail_with(names: list[str]) -> str:
    """A program that calls each system call with zero arguments and prints `name errno-name`."""
    numbers = {name: syscall_number(name) for name in names}
    return f"""
        import ctypes, errno
        libc = ctypes.CDLL(None, use_errno=True)
        for name, nr in {numbers!r}.items():
            if nr is None:
                continue
            ctypes.set_errno(0)
            rc = libc.syscall(nr, *[ctypes.c_ulong(0)] * 6)
            print(name, errno.errorcode.get(ctypes.get_errno(), "OK") if rc == -1 else "OK")
    """


def test_the_filter_is_active_inside(warm: Sandbox) -> None:
    _, lines = run(warm, "for l in open('/proc/self/status'):\n    k, v = l.split(':', 1)\n    print(k, v.strip())")
    assert lines["Seccomp"] == "2" and lines["NoNewPrivs"] == "1"  # 2: SECCOMP_MODE_FILTER


@pytest.mark.parametrize("group", sorted(DENIED))
def test_each_denied_call_fails_with_eperm(warm: Sandbox, group: str) -> None:
    _, lines = run(warm, syscalls_fail_with(list(DENIED[group])))
    assert lines, f"no call of {group} exists on this architecture"
    assert set(lines.values()) == {"EPERM"}, lines


def test_namespace_flags_of_clone_fail_and_clone3_falls_back(warm: Sandbox) -> None:
    code = """
        import ctypes, errno, os, subprocess, threading
        libc = ctypes.CDLL(None, use_errno=True)
        for flag in (0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000):
            rc = libc.syscall(56, ctypes.c_ulong(flag | 17), *[ctypes.c_ulong(0)] * 4)  # clone(flag|SIGCHLD)
            if rc == 0:
                os._exit(0)
            print(hex(flag), errno.errorcode.get(ctypes.get_errno()) if rc == -1 else "forked")
        rc = libc.syscall(435, ctypes.c_ulong(0), ctypes.c_ulong(0))
        print("clone3", errno.errorcode.get(ctypes.get_errno()) if rc == -1 else "OK")
        # and ordinary processes and threads still start (glibc falls back from clone3 to clone)
        t = threading.Thread(target=print, args=("thread ok",))
        t.start(); t.join()
        print("subprocess", subprocess.run(["/bin/sh", "-c", "exit 3"]).returncode)
    """
    _, lines = run(warm, code)
    assert lines.pop("clone3") == "ENOSYS" and lines.pop("thread") == "ok" and lines.pop("subprocess") == "3"
    assert lines and set(lines.values()) == {"EPERM"}, lines


def test_personality_changes_and_other_abis_fail(warm: Sandbox) -> None:
    code = """
        import ctypes, errno
        libc = ctypes.CDLL(None, use_errno=True)
        def call(nr, arg=0):
            rc = libc.syscall(nr, ctypes.c_ulong(arg))
            return errno.errorcode.get(ctypes.get_errno()) if rc == -1 else "OK"
        print("query", call(135, 0xFFFFFFFF), "linux", call(135, 0))
        print("no_randomize", call(135, 0x0040000), "read_implies_exec", call(135, 0x0400000))
        print("near_query", call(135, 0xFFFDFFF7))
        print("x32_getpid", call(0x40000000 | 39))
    """
    _, lines = run(warm, code)
    assert lines == {
        "query": "OK linux OK",
        "no_randomize": "EPERM read_implies_exec EPERM",
        "near_query": "EPERM",
        "x32_getpid": "EPERM",
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="the privilege drop applies to a root-run pipeline")
def test_seen_from_the_host_every_sandbox_process_has_an_unprivileged_uid() -> None:
    """From outside, bwrap, the zygote and the program run as uid/gid 65534, not as the root that started them."""
    with Sandbox(LIMITS, warm=True, workers=1) as sb:
        done = threading.Event()
        runner = threading.Thread(
            target=lambda: (sb.run(Program("import time\ntime.sleep(30)", wall_s=30)), done.set()), daemon=True
        )
        runner.start()
        deadline = time.monotonic() + 20
        seen: dict[str, tuple[int, int]] = {}
        while time.monotonic() < deadline and "program" not in seen:
            for box in list(sb._live):  # the live sandbox: its bwrap, its zygote (init) and the program under it
                if box.init_pid is None:
                    continue
                with contextlib.suppress(psutil.NoSuchProcess):
                    zygote = psutil.Process(box.init_pid)
                    children = zygote.children()
                    if children:
                        bwrap = psutil.Process(box.proc.pid)
                        seen["bwrap"] = bwrap.uids().real, bwrap.gids().real
                        seen["zygote"] = zygote.uids().effective, zygote.gids().effective
                        seen["program"] = children[0].uids().effective, children[0].gids().effective
            time.sleep(0.02)
        sb.close()
        runner.join(10)
    assert seen == {"bwrap": (65534, 65534), "zygote": (65534, 65534), "program": (65534, 65534)}, seen


def test_without_root_bubblewrap_starts_as_is_and_is_still_filtered(monkeypatch) -> None:
    """The path of a pipeline that is not root: no setpriv, no private mount namespace; the same sandbox inside."""
    monkeypatch.setattr(sandbox_pool, "host_uid_for_bwrap", lambda uid: None)
    launch = sandbox_command.bwrap_command("bwrap", LIMITS, ["true"], host_uid=None)
    launch.close()
    assert launch.argv[0] == "bwrap" and "--seccomp" in launch.argv
    with Sandbox(LIMITS, warm=True, workers=1) as sb:
        _, lines = run(
            sb,
            "import os\nprint('uid', os.getuid())\nprint('seccomp', open('/proc/self/status').read().count('Seccomp:\\t2'))",
        )
    assert lines == {"uid": "65534", "seccomp": "1"}


def test_a_python_the_dropped_uid_cannot_reach_is_staged() -> None:
    """The staging decision: a bind source under a folder closed to the uid goes through a private mount."""
    with tempfile.TemporaryDirectory(dir="/tmp") as top:  # not pytest's tmp_path: its parent is 0700
        os.chmod(top, 0o755)
        closed = os.path.join(top, "closed")
        os.makedirs(os.path.join(closed, "python"))
        os.chmod(closed, 0o700)
        assert not sandbox_command._reachable_by(os.path.join(closed, "python"), 65534)
        os.chmod(closed, 0o711)  # search permission is all a bind needs
        assert sandbox_command._reachable_by(os.path.join(closed, "python"), 65534)
    assert sandbox_command._reachable_by("/usr/lib", 65534)
