"""The warm interpreter that runs INSIDE the sandbox (stdlib only; never imports thinktoggle).

It is started once per sandbox by `thinktoggle.filters.sandbox`, reads requests on fd 0 and answers on fd 1.
For each program it forks a fresh child, which drops further (new session, rlimits, a fresh working
directory, only its own five fds) and runs the program; the zygote itself never runs untrusted code. After
every program it kills every other process in the sandbox's pid namespace (setsid daemons included), wipes
the writable mounts and checks that no SysV IPC object or POSIX message queue survived; anything it cannot
clean is reported as `clean: false` and the host throws the whole sandbox away.

Frames, both ways: struct `>II` (header length, payload length), a JSON header, raw payload bytes.
Request header: mode ("script" | "functional"), sizes [code, test, stdin, nonce], entry_point, limits.
Response header: status, exit_code, signal, cpu_s, sizes [stdout, stderr, result], clean, detail.

Payload bytes (program, tests, stdin, outputs) are handled only as bytearrays that are zeroed once used, so
a later child forked from this process does not inherit an earlier program's source or tests in its memory.
"""

import builtins
import contextlib
import ctypes
import json
import os
import resource
import selectors
import shutil
import signal
import struct
import sys
import time
import traceback
import types

FRAME = struct.Struct(">II")
WORKDIR = "/tmp/work"  # recreated empty for every program (a private folder when not contained)
WIPED_DIRS = ("/tmp", "/dev/shm")
RESULT_FD, NONCE_FD = 3, 4
DRAIN_S = 0.5  # after the child exits, how long leftover writers may keep the pipes open before being killed
# Modules most solutions import: imported once here, so a forked child finds them in sys.modules.
WARM_MODULES = (
    "math collections itertools functools heapq bisect string re typing random decimal fractions "
    "statistics json copy operator dataclasses traceback array"
)


def _read_exact(fd: int, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            raise EOFError
        got += k
    return buf


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _zero(buf: bytearray) -> None:
    buf[:] = bytes(len(buf))


def _send(header: dict, parts: list) -> None:
    head = json.dumps(header).encode()
    _write_all(1, FRAME.pack(len(head), sum(len(p) for p in parts)) + head)
    for part in parts:
        _write_all(1, part)


# --- the child: one program --------------------------------------------------------------------------


def _set_limits(limits: dict) -> None:
    def cap(which: int, value: int) -> None:
        resource.setrlimit(which, (value, value))

    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL if it is ignored
    cap(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    cap(resource.RLIMIT_FSIZE, int(limits["file_size_bytes"]))
    cap(resource.RLIMIT_NOFILE, int(limits["open_files"]))
    cap(resource.RLIMIT_NPROC, int(limits["processes"]))  # binds only where the outside uid is not root
    cap(resource.RLIMIT_CORE, 0)


def _report(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(RESULT_FD, text.encode() + b"\n")


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # a closed or broken stream must not mask the result
            stream.flush()


def _run_child(header: dict, payload: bytearray, fds: dict) -> None:
    """Runs in the forked child; never returns."""
    try:
        os.setsid()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGALRM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as in a fresh interpreter
        for target, fd in ((0, fds["stdin"]), (1, fds["out"]), (2, fds["err"]), (RESULT_FD, fds["res"])):
            os.dup2(fd, target)
        os.dup2(fds["nonce"], NONCE_FD)
        os.closerange(NONCE_FD + 1, 1 << 16)
        os.chdir(WORKDIR)
        n_code, n_test, n_stdin, _ = header["sizes"]
        code = bytes(payload[:n_code]).decode("utf-8", "replace")
        test = bytes(payload[n_code : n_code + n_test]).decode("utf-8", "replace")
        _zero(payload)  # the nonce and stdin were handed over as fds; drop every copy from memory
        del payload
        sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)  # noqa: SIM115
        sys.argv = ["solution.py"]
        import random

        random.seed()  # a fresh interpreter seeds from urandom; a forked one would repeat the zygote's state
        _set_limits(header["limits"])
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        os._exit(120)
    if header["mode"] == "functional":
        os._exit(_run_functional(code, test, header["entry_point"]))
    os._exit(_run_script(code))


def _exception_report(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "memory_limit"
    return "error:" + type(exc).__name__


def _fresh_main(name: str) -> dict:
    """A new, empty module for the program, installed as `__main__` (so `import __main__`, pickling and
    multiprocessing see the program, not the zygote)."""
    module = types.ModuleType(name)
    module.__dict__.update(__builtins__=builtins, __file__="solution.py")
    sys.modules["__main__"] = module
    return module.__dict__


def _run_script(code: str) -> int:
    namespace = _fresh_main("__main__")
    status = 0
    try:
        exec(compile(code, "solution.py", "exec"), namespace)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            status = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            status = 1
    except BaseException as exc:  # noqa: BLE001 - everything the program raises is its own failure
        _report(_exception_report(exc))
        traceback.print_exc()
        status = 1
    _interpreter_exit()
    return status & 0xFF


def _interpreter_exit() -> None:
    """What a normal interpreter exit does before the process ends: join non-daemon threads (the common
    `threading.Thread(target=main).start()` trick for deep recursion), run atexit handlers, flush stdio."""
    threading = sys.modules.get("threading")
    if threading is not None:
        with contextlib.suppress(BaseException):
            threading._shutdown()
    with contextlib.suppress(BaseException):
        import atexit

        atexit._run_exitfuncs()
    _flush_std()


def _run_functional(code: str, test: str, entry_point: str) -> int:
    """HumanEval form: define the solution, define `check`, call check(entry_point).

    Only after check returns does the harness read the nonce (from an fd the zygote filled before the fork)
    and write it to the result fd: a program that exits, by any means, before that point cannot pass.
    """
    namespace = _fresh_main("solution")
    phase = "load"
    try:
        exec(compile(code, "solution.py", "exec"), namespace)
        phase = "test"
        exec(compile(test, "tests.py", "exec"), namespace)
        if entry_point not in namespace:
            _report("error:missing_entry_point")
            return 1
        namespace["check"](namespace[entry_point])
    except SystemExit:
        _report("exited_early:" + phase)
        _flush_std()
        return 1
    except AssertionError:
        _report("wrong_answer")
        traceback.print_exc()
        _flush_std()
        return 1
    except BaseException as exc:  # noqa: BLE001
        _report(_exception_report(exc))
        traceback.print_exc()
        _flush_std()
        return 1
    _flush_std()
    nonce = os.read(NONCE_FD, 256)
    _report("pass:" + nonce.decode("ascii", "replace"))
    return 0


# --- the zygote side of one program ----------------------------------------------------------------------


CGROUP_PROCS = ""  # unsafe mode: our pids cgroup's member list, if the host gave us one


def _cgroup_members() -> list[int]:
    if not CGROUP_PROCS:
        return []
    try:
        with open(CGROUP_PROCS) as f:
            return [int(p) for p in f.read().split() if int(p) != os.getpid()]
    except OSError:
        return []


def _others_alive(contained: bool, pgid: int) -> list[int]:
    """Processes still alive in the sandbox other than the init (pid 1) and us."""
    if not contained:
        return _cgroup_members()
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]


def _kill_all(contained: bool, pgid: int) -> None:
    if contained:
        # Safe only because we are alone in a fresh pid namespace: -1 means every process we may signal
        # here except init and ourselves. The kernel aborts forks racing a fatal signal, so a fork bomb
        # cannot outrun this loop for long.
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
    else:  # no pid namespace: the program's process group, and whatever else is in our cgroup (daemons)
        for target in (-pgid, *_cgroup_members()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(target, signal.SIGKILL)


def _reap_orphans(keep: int) -> None:
    """As the namespace's init the zygote inherits every orphan (a daemon's exited parent, ...): reap the exited
    ones so they do not hold pids, but never the program's own process, whose status wait4 reads."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == keep:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, 0)


def _clean_up(contained: bool, pgid: int) -> tuple[bool, str]:
    deadline = time.monotonic() + 2.0
    while True:
        _kill_all(contained, pgid)
        _reap_orphans(keep=0)  # the program's process is reaped already
        alive = _others_alive(contained, pgid)
        if not alive:
            break
        if time.monotonic() > deadline:
            return False, f"{len(alive)} processes survived the kill"
        time.sleep(0.002)  # let the killed processes exit
    for top in WIPED_DIRS if contained else (WORKDIR,):
        if not os.path.isdir(top):
            continue
        for name in os.listdir(top):
            path = os.path.join(top, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            except OSError as exc:
                return False, f"could not wipe {path}: {exc}"
    if contained:
        for kind in ("shm", "msg", "sem"):
            with open(f"/proc/sysvipc/{kind}") as f:
                if len(f.read().splitlines()) > 1:
                    return False, f"a SysV {kind} object survived"
        if os.path.isdir("/dev/mqueue") and os.listdir("/dev/mqueue"):
            return False, "a POSIX message queue survived"
    return True, ""


def _serve_one(header: dict, payload: bytearray, contained: bool) -> None:
    limits = header["limits"]
    n_code, n_test, n_stdin, n_nonce = header["sizes"]
    os.makedirs(WORKDIR, mode=0o700, exist_ok=True)
    stdin_fd = os.memfd_create("stdin", 0)
    _write_all(stdin_fd, memoryview(payload)[n_code + n_test : n_code + n_test + n_stdin])
    os.lseek(stdin_fd, 0, os.SEEK_SET)
    nonce_r, nonce_w = os.pipe()
    _write_all(nonce_w, memoryview(payload)[n_code + n_test + n_stdin :])
    os.close(nonce_w)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        for fd in (out_r, err_r, res_r):
            os.close(fd)
        _run_child(header, payload, {"stdin": stdin_fd, "out": out_w, "err": err_w, "res": res_w, "nonce": nonce_r})
    _zero(payload)
    for fd in (stdin_fd, nonce_r, out_w, err_w, res_w):
        os.close(fd)
    cap = int(limits["output_bytes"])
    buffers = {out_r: bytearray(), err_r: bytearray(), res_r: bytearray()}
    caps = {out_r: cap, err_r: cap, res_r: 4096}
    pidfd = os.pidfd_open(pid)
    selector = selectors.DefaultSelector()
    for fd in buffers:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    selector.register(pidfd, selectors.EVENT_READ)
    deadline = started + float(limits["wall_s"])
    status, detail, exited_at = "ok", "", None
    wait_status, cpu_s = None, 0.0
    while selector.get_map():
        _reap_orphans(keep=pid)
        now = time.monotonic()
        if exited_at is None and now >= deadline:
            status, detail = "timeout", "wall clock"
            _kill_all(contained, pid)
            exited_at = now
        if exited_at is not None and now >= exited_at + DRAIN_S:
            _kill_all(contained, pid)  # setsid daemons still holding the pipes: they die, the pipes close
            if now >= exited_at + DRAIN_S + 1.0:
                break
        limit = deadline if exited_at is None else exited_at + DRAIN_S + 1.0
        for key, _ in selector.select(max(0.0, min(limit - now, 0.05))):
            fd = key.fd
            if fd == pidfd:
                selector.unregister(pidfd)
                _, wait_status, usage = os.wait4(pid, 0)
                cpu_s = usage.ru_utime + usage.ru_stime
                exited_at = time.monotonic()
                _kill_all(contained, pid)  # nothing the program started outlives it
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(fd)
                continue
            buffers[fd] += chunk
            if len(buffers[fd]) > caps[fd]:
                del buffers[fd][caps[fd] :]
                if fd != res_r and status == "ok":
                    status, detail = "output_limit", ("stdout" if fd == out_r else "stderr") + f" over {cap} bytes"
                    _kill_all(contained, pid)
                selector.unregister(fd)
    selector.close()
    if wait_status is None:  # the drain loop broke out before the child was reaped
        _kill_all(contained, pid)
        _, wait_status, usage = os.wait4(pid, 0)
        cpu_s = usage.ru_utime + usage.ru_stime
    for fd in (*buffers, pidfd):
        os.close(fd)
    exit_code = os.waitstatus_to_exitcode(wait_status)
    # SIGXCPU comes only from the CPU rlimit (or the program signalling itself); SIGKILL after it is the hard limit.
    cpu_killed = -exit_code == signal.SIGXCPU or (-exit_code == signal.SIGKILL and cpu_s >= 0.9 * limits["cpu_s"])
    if status == "ok" and cpu_killed:
        status, detail = "timeout", "cpu time"
    clean, why = _clean_up(contained, pid)
    parts = [buffers[out_r], buffers[err_r], buffers[res_r]]
    _send(
        {
            "status": status,
            "detail": detail or why,
            "exit_code": exit_code,
            "cpu_s": round(cpu_s, 4),
            "wall_s": round(time.monotonic() - started, 4),
            "sizes": [len(p) for p in parts],
            "clean": clean,
        },
        parts,
    )
    for part in parts:
        _zero(part)


def main() -> None:
    global WORKDIR, CGROUP_PROCS
    contained = "--contained" in sys.argv  # alone in a fresh pid namespace (bubblewrap)
    if "--cgroup-procs" in sys.argv:
        CGROUP_PROCS = sys.argv[sys.argv.index("--cgroup-procs") + 1]
    if not contained:  # unsafe mode: the host made our cwd a private temporary folder
        WORKDIR = os.path.join(os.getcwd(), "work")
    if contained and os.getpid() != 1:
        raise SystemExit("zygote: --contained but not the init of a fresh pid namespace; refusing to kill(-1)")
    if contained:
        # The init of its namespace: a signal from inside it reaches us only through a handler, and Python's
        # SIGINT handler is the only one installed. Without it no program can kill, stop or interrupt us.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Non-dumpable: a same-uid program can neither ptrace us nor open our fds or memory through /proc.
    if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE = 4
        raise SystemExit("zygote: prctl(PR_SET_DUMPABLE, 0) failed")
    if "--once" not in sys.argv:
        for name in WARM_MODULES.split():
            __import__(name)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # the host went away: die quietly
    _send({"ready": True, "pid": os.getpid()}, [])
    while True:
        try:
            head_len, payload_len = FRAME.unpack(bytes(_read_exact(0, FRAME.size)))
            header = json.loads(bytes(_read_exact(0, head_len)))
            payload = _read_exact(0, payload_len)
        except EOFError:
            return
        try:
            _serve_one(header, payload, contained)
        except Exception as exc:  # noqa: BLE001 - our own failure (fork refused, ...): not the program's
            empty = {"exit_code": None, "cpu_s": 0.0, "wall_s": 0.0, "sizes": [0, 0, 0], "clean": False}
            _send({**empty, "status": "sandbox_error", "detail": f"zygote: {type(exc).__name__}: {exc}"}, [])
            return
        if "--once" in sys.argv:
            return


if __name__ == "__main__":
    main()
