"""Sandboxed executions/s against the anchor, bare `subprocess.run([python, file])`, on the same programs.

    .venv/bin/python bench/filters_code.py [--programs 120] [--workers 2]

Each program is a small competitive-programming style script fed its stdin; both sides run them one at a time
(the ratio compares like with like), and the outputs must agree. Also reported, for information: a fresh
sandbox per program (warm=False) and the warm pool with `--workers` concurrent programs.
`bench/filters.py` calls `main()` and gets the figures back as a dict.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

from thinktoggle.filters.sandbox import Program, Sandbox, SandboxLimits

PROGRAMS = [
    ("a, b = map(int, input().split())\nprint(a + b)", "{i} {j}\n"),
    ("n = int(input())\nprint(sum(range(n + 1)))", "{n}\n"),
    ("import sys\nxs = sorted(map(int, sys.stdin.read().split()[1:]))\nprint(*xs)", "5\n{i} 3 {j} 1 {n}\n"),
    (
        "n = int(input())\nsieve = bytearray([1]) * (n + 1)\nsieve[0:2] = b'\\x00\\x00'\n"
        "for p in range(2, int(n ** 0.5) + 1):\n    if sieve[p]:\n        sieve[p * p :: p] = bytes(len(sieve[p * p :: p]))\n"
        "print(sum(sieve))",
        "{n}\n",
    ),
    ("from collections import Counter\nprint(Counter(input()).most_common(1)[0][0])", "abracadabra{i}\n"),
    ("s = input().strip()\nprint(s == s[::-1])", "level{j}level\n"),
    (
        "from functools import lru_cache\n@lru_cache(None)\ndef fib(k):\n    return k if k < 2 else fib(k - 1) + fib(k - 2)\n"
        "print(fib(int(input())))",
        "{f}\n",
    ),
    ("import math\nprint(math.gcd(*map(int, input().split())))", "{n} {j}\n"),
]


def programs(n: int) -> list[tuple[str, str]]:
    out = []
    for k in range(n):
        code, stdin = PROGRAMS[k % len(PROGRAMS)]
        out.append((code, stdin.format(i=k, j=k * 7 % 13, n=1000 + 37 * k, f=30 + k % 40)))
    return out


def bare(progs: list[tuple[str, str]], python: str, workdir: Path) -> tuple[float, list[bytes]]:
    files = []
    for k, (code, _) in enumerate(progs):
        path = workdir / f"prog{k}.py"
        path.write_text(code)
        files.append(path)
    outputs = []
    started = time.perf_counter()
    for path, (_, stdin) in zip(files, progs, strict=True):
        done = subprocess.run([python, str(path)], input=stdin.encode(), capture_output=True, timeout=30)
        outputs.append(done.stdout)
    return time.perf_counter() - started, outputs


def sandboxed(sandbox: Sandbox, progs: list[tuple[str, str]]) -> tuple[float, list[bytes]]:
    started = time.perf_counter()
    if sandbox.workers == 1:
        results = [sandbox.run(Program(c, stdin=s)) for c, s in progs]
    else:
        results = sandbox.run_many(Program(c, stdin=s) for c, s in progs)
    elapsed = time.perf_counter() - started
    bad = [r for r in results if r.status != "ok" or r.exit_code != 0]
    if bad:
        raise RuntimeError(f"{len(bad)} sandboxed programs failed, e.g. {bad[0]}")
    return elapsed, [r.stdout for r in results]


def warm_pool(workers: int) -> Sandbox:
    sandbox = Sandbox(SandboxLimits(), warm=True, workers=workers)
    sandbox.run_many([Program("pass")] * workers)  # started outside the timed region, as in a long-running stage
    return sandbox


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    progs = programs(args.programs)
    python = os.path.realpath(sys.executable)  # the base interpreter the sandbox runs (no venv .pth start-up)
    rounds = 4  # interleaved, so that the load of a shared machine hits every runner alike
    chunks = [progs[r::rounds] for r in range(rounds)]
    times = {"bare": 0.0, "warm": 0.0, "cold": 0.0, "pool": 0.0}
    outputs: dict[str, list[bytes]] = {k: [] for k in times}
    cold_chunks = [chunk[: max(2, len(chunk) // 4)] for chunk in chunks]  # ~60 ms+ each: a sample is enough
    with (
        tempfile.TemporaryDirectory() as tmp,
        warm_pool(1) as warm,
        warm_pool(args.workers) as pool,
        Sandbox(SandboxLimits(), warm=False) as cold,
    ):
        for r in track(range(rounds), description="bare vs sandboxed, interleaved rounds"):
            for key, run in [
                ("bare", lambda c: bare(c, python, Path(tmp))),
                ("warm", lambda c: sandboxed(warm, c)),
                ("pool", lambda c: sandboxed(pool, c)),
            ]:
                elapsed, out = run(chunks[r])
                times[key] += elapsed
                outputs[key] += out
            elapsed, out = sandboxed(cold, cold_chunks[r])
            times["cold"] += elapsed
            outputs["cold"] += out
            if out != outputs["bare"][-len(chunks[r]) :][: len(out)]:
                raise RuntimeError("one-sandbox-per-program outputs differ from the bare subprocess outputs")
    if not (outputs["bare"] == outputs["warm"] == outputs["pool"]):
        raise RuntimeError("sandboxed outputs differ from the bare subprocess outputs")
    bare_s, warm_s, cold_s, pool_s = times["bare"], times["warm"], times["cold"], times["pool"]
    cold_out = outputs["cold"]
    n, n_cold = len(progs), len(cold_out)
    figures = {
        "programs": n,
        "bare_per_s": n / bare_s,
        "sandbox_warm_per_s": n / warm_s,
        "sandbox_cold_per_s": n_cold / cold_s,
        f"sandbox_warm_x{args.workers}_per_s": n / pool_s,
        "ratio_warm_vs_bare": bare_s / warm_s,
        "ratio_cold_vs_bare": (n_cold / cold_s) / (n / bare_s),
    }
    table = Table(title=f"code sandbox: {n} programs, one at a time unless noted (cpus: {os.cpu_count()})")
    table.add_column("runner")
    table.add_column("executions/s", justify="right")
    table.add_column("ms/program", justify="right")
    table.add_column("vs bare", justify="right")
    for label, per_s in [
        ("bare subprocess.run(\\[python, file])", figures["bare_per_s"]),
        ("sandbox, warm pool (1 worker)", figures["sandbox_warm_per_s"]),
        ("sandbox, one bwrap per program", figures["sandbox_cold_per_s"]),
        (f"sandbox, warm pool ({args.workers} workers)", figures[f"sandbox_warm_x{args.workers}_per_s"]),
    ]:
        table.add_row(label, f"{per_s:.1f}", f"{1000 / per_s:.1f}", f"{per_s / figures['bare_per_s']:.2f}x")
    Console().print(table)
    return figures


if __name__ == "__main__":
    main()
