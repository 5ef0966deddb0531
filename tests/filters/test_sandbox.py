"""The sandbox under attack: one adversarial property per test, in both modes (warm pool and one sandbox per run).

Every test ends by checking that nothing the programs started is alive: the only processes below the test
process are the warm sandboxes' bwrap and their idle zygote, which has no children.
"""

from __future__ import annotations

import socket
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from thinktoggle.filters import sandbox as sandbox_module
from thinktoggle.filters.sandbox import Program, Sandbox, SandboxLimits, SandboxUnavailable
from thinktoggle.filters.sandbox import command as sandbox_command

# Generous time limits, so that a loaded machine never turns a memory or output test into a timeout; the
# timeout tests set tight per-program limits (TIGHT) instead.
LIMITS = SandboxLimits(wall_s=20.0, cpu_s=10, memory_mb=512, output_bytes=64 * 1024, processes=16)
TIGHT = {"wall_s": 1.5, "cpu_s": 1}
REPO = Path(__file__).resolve().parents[2]


# Processes that other test modules left running below pytest (e.g. the session's shared vLLM engine) are
# not the sandbox's: only processes that appear after this module starts count as strays.
_PREEXISTING: set[int] = set()


@pytest.fixture(scope="module", autouse=True)
def _note_preexisting_processes() -> None:
    _PREEXISTING.clear()
    _PREEXISTING.update(p.pid for p in psutil.Process().children(recursive=True))


@pytest.fixture(scope="module")
def warm() -> Sandbox:
    with Sandbox(LIMITS, warm=True, workers=2) as sb:
        yield sb


@pytest.fixture(scope="module")
def cold() -> Sandbox:
    with Sandbox(LIMITS, warm=False) as sb:
        yield sb


@pytest.fixture(params=["warm", "cold"])
def sandbox(request, warm: Sandbox, cold: Sandbox) -> Sandbox:
    sb = warm if request.param == "warm" else cold
    yield sb
    assert_no_stray_processes()


def assert_no_stray_processes() -> None:
    """Below us: only bwrap processes and idle zygotes (no children). Anything else escaped a kill."""
    deadline = time.monotonic() + 3
    while True:
        stray = []
        for proc in psutil.Process().children(recursive=True):
            if proc.pid in _PREEXISTING:
                continue
            try:
                cmdline = proc.cmdline()
                if cmdline and cmdline[0].endswith("bwrap"):
                    continue
                if any(arg.endswith("zygote.py") for arg in cmdline) and not proc.children():
                    continue
                stray.append((proc.pid, cmdline[:4]))
            except psutil.NoSuchProcess:
                continue
        if not stray:
            return
        assert time.monotonic() < deadline, f"processes left behind: {stray}"
        time.sleep(0.05)


def run(sb: Sandbox, code: str, **kwargs) -> sandbox_module.ExecResult:
    return sb.run(Program(textwrap.dedent(code), **kwargs))


def test_a_plain_program_runs_with_its_stdin(sandbox: Sandbox) -> None:
    result = run(sandbox, "import sys\nprint(sys.stdin.read().upper(), end='')", stdin="hello\n")
    assert (result.status, result.exit_code, result.stdout) == ("ok", 0, b"HELLO\n")


def test_secret_files_outside_are_invisible(sandbox: Sandbox) -> None:
    token = uuid.uuid4().hex
    # Under the home folder (/root here) and the repository (/work/main here): both outside the sandbox.
    secrets = [Path.home() / f".thinktoggle-secret-{token}", REPO / f".thinktoggle-secret-{token}"]
    for path in secrets:
        path.write_text(f"SECRET-{token}")
        path.chmod(0o644)
    try:
        code = f"""
            import os
            for path in {[str(p) for p in secrets]!r} + ["/etc/shadow", "/root/.bashrc", "/work/main/pyproject.toml"]:
                try:
                    print(open(path).read())
                except OSError as exc:
                    print("blocked", path, type(exc).__name__)
            print(sorted(os.listdir("/")), sorted(os.listdir("/root")))
        """
        result = run(sandbox, code)
        out = result.stdout.decode()
        assert result.status == "ok" and result.exit_code == 0, result
        assert f"SECRET-{token}" not in out
        assert out.count("blocked") == 5
        assert "'work'" not in out and "'etc'" not in out and "'home'" not in out
        assert "'.bashrc'" not in out
    finally:
        for path in secrets:
            path.unlink()


def test_writes_outside_the_sandbox_fail_and_leave_nothing(sandbox: Sandbox) -> None:
    token = uuid.uuid4().hex
    targets = [f"{Path.home()}/w-{token}", f"{REPO}/w-{token}", f"/usr/w-{token}", f"/w-{token}", f"/tmp/w-{token}"]
    code = f"""
        for path in {targets!r}:
            try:
                open(path, "w").write("x")
                print("wrote", path)
            except OSError as exc:
                print("blocked", path)
    """
    result = run(sandbox, code)
    assert result.status == "ok", result
    assert result.stdout.decode().count("blocked") == 4  # only its own private /tmp is writable
    for path in targets:
        assert not Path(path).exists()


def test_no_network_even_to_a_listener_on_the_host(sandbox: Sandbox) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = f"""
        import socket
        for target in [("127.0.0.1", {port}), ("1.1.1.1", 53)]:
            try:
                socket.create_connection(target, timeout=1)
                print("connected", target)
            except OSError as exc:
                print("blocked", type(exc).__name__)
    """
    try:
        result = run(sandbox, code)
        assert result.status == "ok", result
        assert result.stdout.decode().count("blocked") == 2
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_a_fork_bomb_is_bounded_and_cleaned_up(sandbox: Sandbox) -> None:
    counting = """
        import os, time
        n = 0
        while True:
            try:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
            except OSError:
                break
        print(n)
    """
    result = run(sandbox, counting)
    assert result.status == "ok", result
    assert 0 < int(result.stdout) <= LIMITS.processes  # the pids cgroup binds although we are root outside
    bomb = """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """
    result = run(sandbox, bomb, **TIGHT)
    assert result.status == "timeout"
    assert run(sandbox, "print('alive')").stdout == b"alive\n"  # the sandbox (or its replacement) still works


def test_a_memory_bomb_hits_the_memory_limit(sandbox: Sandbox) -> None:
    assert run(sandbox, "x = bytearray(2 << 30)").status == "memory_limit"
    grow = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))"
    assert run(sandbox, grow).status == "memory_limit"


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_a_forked_memory_bomb_is_bounded_together(warm: bool) -> None:
    """RLIMIT_AS bounds each process; 8 children x 200 MiB stay under it but not under the memory cgroup."""
    code = """
        import os, time
        kids = []
        for _ in range(8):
            pid = os.fork()
            if pid == 0:
                hog = bytearray(b"x") * (200 << 20)  # touched, so resident
                time.sleep(0.5)
                os._exit(0)
            kids.append(pid)
        killed = sum(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) == -9 for p in kids)
        raise SystemExit(killed)
    """
    with Sandbox(SandboxLimits(wall_s=20.0, memory_mb=512, processes=16), warm=warm) as sandbox:
        if not sandbox.memory_limited:
            pytest.skip("no writable memory cgroup here: only the per-process RLIMIT_AS applies")
        result = run(sandbox, code)
    assert result.status == "memory_limit" and result.exit_code > 0, result  # the OOM killer took some children
    assert_no_stray_processes()


def test_infinite_loops_hit_the_cpu_or_wall_clock_limit(sandbox: Sandbox) -> None:
    spin = run(sandbox, "while True:\n    pass", **TIGHT)
    assert spin.status == "timeout" and spin.detail in ("cpu time", "wall clock")  # a loaded machine: either
    started = time.monotonic()
    sleeper = run(sandbox, "import time\ntime.sleep(100)", **TIGHT)
    assert (sleeper.status, sleeper.detail) == ("timeout", "wall clock")
    assert time.monotonic() - started < TIGHT["wall_s"] + 5


def test_the_cpu_limit_binds_before_a_generous_wall_clock(warm: Sandbox) -> None:
    spin = run(warm, "while True:\n    pass", wall_s=30.0, cpu_s=1)
    assert (spin.status, spin.detail) == ("timeout", "cpu time")
    assert 0.5 <= spin.cpu_s < 2.5  # rusage is tick-sampled: it can read under the limit that fired


def test_a_setsid_daemon_dies_with_its_program_and_does_not_hold_the_run(sandbox: Sandbox) -> None:
    code = """
        import os, sys, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                sys.stdout.write("daemon up\\n"); sys.stdout.flush()
                time.sleep(60)  # holds stdout open
            os._exit(0)
        time.sleep(0.2)
        print("parent done")
    """
    started = time.monotonic()
    result = run(sandbox, code)
    assert time.monotonic() - started < 5, "the run waited for the daemon"
    assert result.status == "ok" and b"parent done" in result.stdout, result
    assert_no_stray_processes()


def test_ignoring_sigterm_and_sigxcpu_does_not_help(sandbox: Sandbox) -> None:
    code = """
        import signal
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):
            signal.signal(sig, signal.SIG_IGN)
        while True:  # spin: SIGXCPU at the soft CPU limit is ignored, so SIGKILL at the hard one (or the wall clock)
            pass
    """
    result = run(sandbox, code, **TIGHT)
    assert result.status == "timeout" and result.exit_code == -9, result


def test_huge_output_is_capped(sandbox: Sandbox) -> None:
    result = run(sandbox, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)")
    assert result.status == "output_limit"
    assert len(result.stdout) <= LIMITS.output_bytes
    result = run(sandbox, "import sys\nwhile True:\n    sys.stderr.write('y' * 65536)")
    assert result.status == "output_limit" and len(result.stderr) <= LIMITS.output_bytes


def test_host_environment_does_not_leak(monkeypatch) -> None:
    token = "hf_" + uuid.uuid4().hex
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", token)
    code = """
        import os
        print(dict(os.environ))
        for pid in ("self", "1"):
            try:
                print(open(f"/proc/{pid}/environ", "rb").read())
            except OSError as exc:
                print("blocked", pid)
    """
    for warm in (True, False):  # new sandboxes: they start after the variables were set
        with Sandbox(LIMITS, warm=warm) as sb:
            result = run(sb, code)
        assert result.status == "ok", result
        assert token.encode() not in result.stdout
        assert b"PATH" in result.stdout
    assert_no_stray_processes()


def test_exiting_before_the_tests_run_never_passes(sandbox: Sandbox) -> None:
    check = "def check(candidate):\n    assert candidate(2) == 4\n"
    good = run(sandbox, "def f(x):\n    return 2 * x\n", mode="functional", test=check, entry_point="f")
    assert good.passed and good.status == "ok"
    early_exits = [
        "import sys\nsys.exit(0)\ndef f(x):\n    return 2 * x\n",
        "import os\nos._exit(0)\n",
        "raise SystemExit\n",
        "def f(x):\n    raise SystemExit(0)\n",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
        "import os\nos.execv('/bin/true', ['true'])\n",
        "import sys\nprint('pass:' + '0' * 32)\nsys.stdout.flush()\nimport os\nos.write(3, b'pass:' + b'0' * 32 + b'\\n')\nos._exit(0)\n",
    ]
    for code in early_exits:
        result = run(sandbox, code, mode="functional", test=check, entry_point="f")
        assert not result.passed, (code, result)


def test_files_and_globals_do_not_carry_over_between_programs(warm: Sandbox) -> None:
    writer = """
        import builtins, os, sys
        open("/tmp/left-behind", "w").write("x")
        open("left-in-cwd", "w").write("x")
        open("/dev/shm/left-in-shm", "w").write("x")
        builtins.LEAK = 1
        sys.modules["math"].pi = 3
        print(os.getcwd())
    """
    reader = """
        import __main__, builtins, math, os
        print(os.path.exists("/tmp/left-behind"), os.listdir("."), os.listdir("/dev/shm"),
              hasattr(builtins, "LEAK"), math.pi == 3, hasattr(__main__, "_serve_one"))
    """
    solo = Sandbox(LIMITS, warm=True, workers=1)  # one warm sandbox: the reader runs where the writer ran
    try:
        assert run(solo, writer).stdout.strip() == b"/tmp/work"
        assert run(solo, reader).stdout.strip() == b"False [] [] False False False"  # not even the zygote's globals
    finally:
        solo.close()
    assert_no_stray_processes()


def test_left_over_ipc_objects_recycle_the_sandbox() -> None:
    solo = Sandbox(LIMITS, warm=True, workers=1)
    try:
        run(solo, "print(1)")
        (first,) = solo._live
        sysv = "import ctypes\nlibc = ctypes.CDLL(None)\nprint(libc.shmget(1234, 4096, 0o1600))"  # IPC_CREAT | 0600
        result = run(solo, sysv)
        assert result.status == "ok" and int(result.stdout) >= 0
        assert first not in solo._live  # discarded: a SysV segment survived its program
    finally:
        solo.close()
    assert_no_stray_processes()


def test_the_sandbox_runs_as_an_unprivileged_uid_without_capabilities(sandbox: Sandbox) -> None:
    code = """
        import os
        status = open("/proc/self/status").read()
        caps = [l.split()[1] for l in status.splitlines() if l.startswith(("CapEff", "CapPrm", "CapBnd"))]
        print(os.getuid(), os.getgid(), caps, open("/proc/sys/kernel/hostname").read().strip())
    """
    result = run(sandbox, code)
    assert result.stdout.decode().split(" ", 2)[:2] == ["65534", "65534"]
    assert result.stdout.decode().count("0000000000000000") == 3


def test_without_bwrap_it_refuses_unless_unsafe_is_explicit(monkeypatch) -> None:
    monkeypatch.setattr(sandbox_command, "find_bwrap", lambda: None)  # where check_bwrap looks it up
    with pytest.raises(SandboxUnavailable, match="allow_unsafe"):
        Sandbox(LIMITS)
    with Sandbox(LIMITS, allow_unsafe=True) as unsafe:
        assert not unsafe.isolated
        assert run(unsafe, "print(6 * 7)").stdout == b"42\n"
        assert run(unsafe, "while True:\n    pass", **TIGHT).status == "timeout"
        daemon = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('done')"
        assert run(unsafe, daemon).stdout == b"done\n"
        if unsafe.pids_limited:  # the zygote kills its cgroup's other members: the daemon is gone already
            assert_no_stray_processes()
    assert_no_stray_processes()


def test_a_program_cannot_kill_or_stop_its_zygote(warm: Sandbox) -> None:
    """The zygote is its pid namespace's init: SIGKILL/SIGSTOP from inside are dropped, the rest have no handler."""
    code = "import os, signal\nfor sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGINT, signal.SIGTERM):\n"
    code += "    os.kill(1, sig)\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept ProcessLookupError:\n"
    code += "    pass  # nobody else to kill\nprint(os.getppid())"
    result = run(warm, code)
    assert (result.status, result.stdout) == ("ok", b"1\n"), result  # kill(-1) spares the caller and init
    assert run(warm, "print('next')").stdout == b"next\n"
    assert_no_stray_processes()


def test_the_zygote_is_out_of_reach_of_its_programs(warm: Sandbox) -> None:
    """Same uid, but non-dumpable: no ptrace, no /proc/<zygote>/fd|mem|environ; no mount, no user namespace."""
    code = """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        zygote = os.getppid()
        print(libc.ptrace(16, zygote, 0, 0) == -1)  # PTRACE_ATTACH
        opened = 0
        try:
            fds = [f"/proc/{zygote}/fd/{fd}" for fd in os.listdir(f"/proc/{zygote}/fd")]
        except PermissionError:  # root-owned: the zygote is not dumpable, and we are not root outside
            fds = []
        for path in fds + [f"/proc/{zygote}/mem", f"/proc/{zygote}/environ"]:
            try:
                os.close(os.open(path, os.O_RDONLY))
                opened += 1
            except OSError:
                pass
        print(opened)
        print(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == -1, libc.unshare(0x10000000) == -1)
    """
    result = run(warm, code)
    assert result.stdout.split() == [b"True", b"0", b"True", b"True"], result
