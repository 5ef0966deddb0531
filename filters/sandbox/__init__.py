"""Run untrusted Python (model-written programs) under bubblewrap, bounded in time, memory, processes and output.

Every program runs inside a bubblewrap sandbox (`bwrap`): new user, pid, net, ipc and uts namespaces; uid/gid
65534 with every capability dropped and no nested user namespaces; read-only binds of the system and of the
Python install only (nothing else of the host: no /etc, /root, /work or /home, no venv); a private, size-capped
tmpfs for /tmp (the working directory) and /dev/shm, everything else (/dev included) read-only; an empty
environment (PATH, HOME, LANG only: no HF_TOKEN); `--die-with-parent` and `--new-session`; a seccomp filter
(`seccomp.py`: libseccomp's BPF through `--seccomp`) under which tracing, mounting, namespaces, keyrings, bpf,
perf, userfaultfd, io_uring, kexec/modules, reboot, swap, chroot, open_by_handle_at, personality changes, clock
setting, NUMA policy and the limits/priority/affinity of another process fail with EPERM. When we run as root,
bubblewrap itself is started as an unprivileged host uid (65534, `Sandbox.host_uid`) through `setpriv`, after
the root parent has joined the sandbox's cgroups: the sandbox's uid then maps to that uid outside, not to root.
A Python install that uid cannot look up (pyenv under /root) is first bind-mounted, as root, on a world-
traversable stage folder in a private mount namespace (`unshare --mount`). Inside, each program runs in a
child forked from a small zygote (`zygote.py`) with rlimits on CPU time, address space, file size, open files
and processes, a wall-clock timeout, and stdout/stderr read with a byte cap.

Process count and memory together: RLIMIT_NPROC binds now that the sandbox's uid is not the outside root (a
root-mapped uid is exempt); the kernel counts it per user namespace, so per sandbox, the zygote included. On
top, per-sandbox cgroups wherever they are writable (cgroup v1 `pids`/`memory` hierarchies, or a v2 tree
delegating those controllers): `pids.max` bounds the whole sandbox's process count, and a memory limit (the
program's `memory_mb` + both tmpfs + 128 MiB) bounds all of the sandbox's processes together, since RLIMIT_AS
bounds each alone (8 forked children x 200 MiB would pass it). A process killed by that cgroup's OOM killer
makes the run `memory_limit`. `Sandbox.pids_limited` and `Sandbox.memory_limited` say which cgroups hold.

Killing: the zygote is the pid namespace's init (`--as-pid-1`: no bwrap reaper inside). After each program it
kills every other process in the namespace (`kill(-1, SIGKILL)`, which reaches setsid daemons that a
process-group kill misses), reaps them (orphans are its children) and waits until it is alone. On a timeout of
the zygote itself, or anything odd, the host SIGKILLs bwrap and the zygote (its pid from `--info-fd`): when a
pid namespace's init dies the kernel kills every process in it. Every member of the sandbox's cgroup is
killed as well. The host never waits on pipe EOF without a deadline.

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

What it does NOT protect against: kernel exploits through the system calls the filter leaves open (it is a
deny list of what untrusted code has no business calling, at least Docker's default for an unprivileged
container, not an allow list) — the sandbox shares the host kernel; an escape runs as the host uid bubblewrap
ran as (65534 when the pipeline is root). Files *inside* the bound system/Python paths that are readable by
that uid. CPU side channels (Spectre-class) and timing channels; CPU,
memory-bandwidth and disk-cache contention slowing other work on the machine; memory use up to the memory
cgroup's limit per running sandbox; reading the world-readable system files and the Python install that are
bound in (and /proc's view of the kernel: version, cpuinfo, meminfo). A program reading or patching the test
harness of its own run: functional tests run in the program's process, as in HumanEval, so a deliberate
adversary can forge its own pass (see `filters/code.py`).

Isolation between programs in one warm sandbox (honestly): each program is a fresh fork of a zygote that never
ran untrusted code, so no globals, imports, environment or monkeypatches carry over; its files, processes,
SysV IPC objects and message queues are gone before the next program starts (or the sandbox is discarded).
Nothing a program can signal or trace outlives it: the zygote is the namespace's init, so the kernel drops
every signal from inside it (it installs no handler; SIGKILL and SIGSTOP are never delivered to an init from
its own namespace), and the filter refuses prlimit, priority, affinity and scheduling calls on any process
but the caller. Not isolated: the sandbox's network, ipc and uts namespaces are reused (empty network; IPC
checked); programs in one sandbox share the zygote's hash seed (set/dict order is identical between them,
unlike fresh interpreters); timing channels between consecutive programs. The zygote is non-dumpable (no
ptrace, no /proc/<pid>/fd or mem access by the programs) and zeroes each request (source, tests, stdin, nonce) once the child is forked, so a
later program cannot find them in memory it inherits; the outputs of earlier programs pass through the zygote's
heap and may linger there (stdio expected outputs never enter the sandbox at all).

Without `bwrap` the sandbox refuses to run (`SandboxUnavailable`) unless `allow_unsafe=True`: then programs
run as plain host processes (same uid, same filesystem, same network) with rlimits, the wall clock and, where
writable, the cgroups — no isolation at all.

Modules, one job each: `spec` (Program, SandboxLimits, ExecResult), `command` (the bwrap command line, the
privilege drop, and its one-time probe), `seccomp` (the syscall filter), `cgroups` (the per-sandbox pids/memory cgroups), `process` (one sandbox: start, run a
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
