"""Nothing a program does outlives it in a warm sandbox: attacks by one program on the programs after it.

Each test runs an attacking program and then a probe in ONE warm sandbox (one worker: the pool hands the same
sandbox back; both print the zygote's start time, so the test checks that they really shared it), and the probe
must find nothing of the attacker: no process, no file, no environment change, no changed zygote, and a verdict
of its own (a correct solution passes, a broken one fails).
"""

from __future__ import annotations

import textwrap

import pytest

from thinktoggle.filters.sandbox import ExecResult, Program, Sandbox, SandboxLimits

LIMITS = SandboxLimits(wall_s=20.0, cpu_s=10, memory_mb=512, output_bytes=64 * 1024, processes=16)
# The zygote's start time (field 22 of /proc/1/stat; readable though the zygote is not dumpable).
ZYGOTE_ID = "print('zygote', open('/proc/1/stat').read().rsplit(')', 1)[1].split()[19])"
SOLUTION = "def add(a, b):\n    return a + b\n"
BROKEN = "def add(a, b):\n    return a - b\n"
TEST = "def check(f):\n    assert f(2, 3) == 5\n    assert f(-1, 1) == 0\n"


@pytest.fixture(scope="module")
def warm() -> Sandbox:
    with Sandbox(LIMITS, warm=True, workers=1) as sb:
        yield sb


def lines_of(result: ExecResult) -> dict[str, str]:
    assert result.status == "ok" and result.exit_code == 0, result
    return dict(line.split(" ", 1) for line in result.stdout.decode().splitlines())


def script(sb: Sandbox, code: str, **kw) -> dict[str, str]:
    return lines_of(sb.run(Program(textwrap.dedent(code) + "\n" + ZYGOTE_ID, **kw)))


def functional(sb: Sandbox, code: str) -> ExecResult:
    return sb.run(Program(code + "\n" + ZYGOTE_ID, mode="functional", test=TEST, entry_point="add"))


def test_no_process_of_a_program_survives_into_the_next(warm: Sandbox) -> None:
    attack = """
        import os, signal, time
        for _ in range(3):  # daemons: double-forked, own session, deaf to SIGTERM/SIGHUP
            if (pid := os.fork()) == 0:
                os.setsid()
                if os.fork() == 0:
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    signal.signal(signal.SIGHUP, signal.SIG_IGN)
                    time.sleep(60)
                os._exit(0)
            os.waitpid(pid, 0)  # the daemon is an orphan now, the zygote's (the namespace's init)
        time.sleep(0.2)
        print("others", len([p for p in os.listdir("/proc") if p.isdigit()]) - 2)
    """
    probe = (
        "import os\nprint('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()))"
    )
    first = script(warm, attack)
    second = script(warm, probe)
    assert first["others"] == "3" and first["zygote"] == second["zygote"]
    assert second["pids"] == "[1]", second  # only the zygote: no daemon, no zombie


def test_no_file_environment_or_socket_carries_over(warm: Sandbox) -> None:
    attack = """
        import os, socket
        for path in ("/tmp/left", "/tmp/work/left", "/dev/shm/left"):
            open(path, "w").write("x")
        try:
            open("/dev/left", "w").write("x")  # /dev is read-only: only /tmp, /dev/shm, /dev/mqueue are writable
            print("dev written")
        except OSError as exc:
            print("dev", type(exc).__name__)
        os.environ["LEFT"] = "1"
        os.putenv("PYTHONSTARTUP", "/tmp/left")
        os.chdir("/")
        s = socket.socket(socket.AF_UNIX)
        s.bind("\\0left")  # an abstract socket: no file, lives as long as its holder
        s.listen()
        if os.fork() == 0:
            os.setsid()
            import time
            time.sleep(60)
    """
    probe = """
        import os, socket
        print("files", [p for p in ("/tmp/left", "/tmp/work/left", "/dev/shm/left", "/dev/left") if os.path.exists(p)])
        print("env", sorted(os.environ))
        print("cwd", os.getcwd())
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect("\\0left")
            print("socket", "connected")
        except OSError as exc:
            print("socket", type(exc).__name__)
    """
    before = script(warm, probe)
    first = script(warm, attack)
    second = script(warm, probe)
    assert first["dev"] == "OSError", first
    assert before["zygote"] == first["zygote"] == second["zygote"]
    assert second == before and second["files"] == "[]" and second["cwd"] == "/tmp/work", second
    assert "LEFT" not in second["env"] and "PYTHONSTARTUP" not in second["env"]
    assert second["socket"] == "ConnectionRefusedError", second


def test_the_zygote_that_outlives_a_program_is_out_of_its_reach(warm: Sandbox) -> None:
    """Limits, priority, affinity, tracing, memory and signals of the zygote (pid 1): every way is closed, and
    the next program's verdict is its own."""
    attack = """
        import ctypes, errno, os, resource, signal
        libc = ctypes.CDLL(None, use_errno=True)
        def outcome(fn):
            try:
                fn()
                return "done"
            except OSError as exc:
                return errno.errorcode.get(exc.errno, str(exc.errno))
        def syscall(*args):
            if libc.syscall(*[ctypes.c_ulong(a) for a in args]) == -1:
                raise OSError(ctypes.get_errno(), "")
        print("prlimit", outcome(lambda: resource.prlimit(1, resource.RLIMIT_NOFILE, (4, 4))))
        print("priority_user", outcome(lambda: os.setpriority(os.PRIO_USER, 0, 19)))
        print("priority_zygote", outcome(lambda: os.setpriority(os.PRIO_PROCESS, 1, 19)))
        print("affinity", outcome(lambda: os.sched_setaffinity(1, {0})))
        print("ptrace", outcome(lambda: syscall(101, 16, 1, 0, 0)))  # PTRACE_ATTACH
        print("vm_read", outcome(lambda: syscall(310, 1, 0, 0, 0, 0, 0)))  # process_vm_readv
        print("mem", outcome(lambda: os.close(os.open("/proc/1/mem", os.O_RDWR))))
        print("environ", outcome(lambda: os.close(os.open("/proc/1/environ", os.O_RDONLY))))
        for sig in (signal.SIGSTOP, signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            os.kill(1, sig)  # delivered to nobody: an init gets only signals it has a handler for
        print("limits", [l for l in open("/proc/1/limits") if l.startswith("Max open files")][0].split()[3])
    """
    probe = "print('limits', [l for l in open('/proc/1/limits') if l.startswith('Max open files')][0].split()[3])"
    before = script(warm, probe)
    first = script(warm, attack)
    after = script(warm, probe)
    assert before["zygote"] == first["zygote"] == after["zygote"]
    assert after["limits"] == first["limits"] == before["limits"]
    denied = {k: v for k, v in first.items() if k not in ("zygote", "limits")}
    assert set(denied.values()) <= {"EPERM", "EACCES"}, denied
    assert functional(warm, SOLUTION).passed and not functional(warm, BROKEN).passed


def test_forged_harness_output_never_passes(warm: Sandbox) -> None:
    """Printing a pass, writing a guessed nonce to the result fd, exiting 0 before the tests: none pass, and
    none changes the next row's verdict."""
    forgeries = [
        BROKEN + "print('pass')\nprint('pass:' + '0' * 32)\n",
        BROKEN + "import os\nos.write(3, b'pass:' + b'0' * 32 + b'\\n')\nos.write(3, b'pass\\n')\nos._exit(0)\n",
        BROKEN + "import os\nos.close(4)\nos.write(3, b'pass:\\n')\nraise SystemExit(0)\n",
        BROKEN + "import sys\nsys.stdout.write('\\x00' * 8 + 'pass')\nimport os\nos._exit(0)\n",
    ]
    for code in forgeries:
        result = functional(warm, code)
        assert not result.passed and result.harness != "pass", result
        assert functional(warm, SOLUTION).passed  # the row after it gets its own, right verdict


def test_a_stopped_program_costs_its_own_row_only(warm: Sandbox) -> None:
    attack = "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)\nprint('resumed')"
    stopped = warm.run(Program(attack, wall_s=1.0, cpu_s=1))
    assert stopped.status == "timeout" and b"resumed" not in stopped.stdout, stopped
    assert functional(warm, SOLUTION).passed and not functional(warm, BROKEN).passed
