"""Run untrusted Python (model-written programs) under bubblewrap, bounded in time, memory, processes and output.

Every program runs inside a bubblewrap sandbox (`bwrap`): new user, pid, net, ipc and uts namespaces; uid/gid
65534 with every capability dropped and no nested user namespaces; read-only binds of the system and of the
Python install only (nothing else of the host: no /etc, /root, /work or /home, no venv); a private, size-capped
tmpfs for /tmp (the working directory) and /dev/shm; an empty environment (PATH, HOME, LANG only: no HF_TOKEN);
`--die-with-parent` and `--new-session`. Inside, each program runs in a child forked from a small zygote
(`zygote.py`) with rlimits on CPU time, address space, file size, open files and processes, a
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

Modules, one job each: `spec` (Program, SandboxLimits, ExecResult), `command` (the bwrap command line and
its one-time probe), `cgroups` (the per-sandbox pids/memory cgroups), `process` (one sandbox: start, run a
program under a deadline, kill), `pool` (`Sandbox`: the warm pool), and `zygote.py` (runs inside the
sandbox, started as a script by path; stdlib only).
"""

from thinktoggle.filters.sandbox.cgroups import CgroupRoots, SandboxCgroups, find_cgroup_roots, sweep_stale_cgroups
from thinktoggle.filters.sandbox.command import bwrap_command, check_bwrap, find_bwrap, zygote_argv
from thinktoggle.filters.sandbox.pool import Sandbox
from thinktoggle.filters.sandbox.process import SandboxProcess
from thinktoggle.filters.sandbox.spec import ExecResult, Mode, Program, SandboxLimits, SandboxUnavailable, Status

__all__ = [
    "CgroupRoots",
    "ExecResult",
    "Mode",
    "Program",
    "Sandbox",
    "SandboxCgroups",
    "SandboxLimits",
    "SandboxProcess",
    "SandboxUnavailable",
    "Status",
    "bwrap_command",
    "check_bwrap",
    "find_bwrap",
    "find_cgroup_roots",
    "sweep_stale_cgroups",
    "zygote_argv",
]
