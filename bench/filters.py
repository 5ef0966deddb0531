"""The filters' speed against their anchors, in one run: math pairs/s and sandboxed code executions/s.

    .venv/bin/python bench/filters.py [--pairs 600] [--processes 2] [--rounds 4] [--warmup 200] [--skip-code]

Math anchor: single-process math-verify as open-r1 uses it — `parse(gold)`, `parse(output)`,
`verify(gold, pred)` — in this process, one pair after another. Ours: `MathVerifierPool` with `--processes`
workers (the stage's verifier: final-answer extraction, parse, verify, per-row hard deadline). Both judge the
same pairs; the runners alternate over `--rounds` interleaved chunks so the load of a shared machine hits
both alike, and their pass/fail decisions must agree wherever both reached one. The pool is started before
the timed region (a stage starts it once per rank); its start-up is reported separately. Both sides first
judge `--warmup` other pairs, so that the figures are steady-state rates (per-process parser caches warm).

The code part is `bench/filters_code.py`'s `main()` (sandbox vs bare subprocess).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/filters_code.py beside this file


def math_pairs(n: int, start: int = 0) -> list[tuple[str, str]]:
    """(model output, gold) pairs in the shapes of real math rows: right and wrong, several answer forms."""
    pairs = []
    for k in range(start, start + n):
        a, b = k % 17 + 2, k % 13 + 3
        kind = k % 8
        if kind == 0:
            out, gold = f"\\boxed{{\\frac{{{a}}}{{{b}}}}}", f"{a}/{b}"
        elif kind == 1:
            out, gold = f"The final answer is ${a * b}$.", str(a * b)
        elif kind == 2:
            out, gold = f"\\boxed{{x^2 + {2 * a}x + {a * a}}}", f"(x+{a})^2"
        elif kind == 3:
            out, gold = f"\\boxed{{{a}\\sqrt{{{b}}}}}", f"\\sqrt{{{a * a * b}}}"
        elif kind == 4:
            out, gold = f"\\boxed{{{a + 1}}}", str(a)  # wrong
        elif kind == 5:
            out, gold = f"\\boxed{{\\{{{a}, {b}\\}}}}", f"\\{{{b},{a}\\}}"
        elif kind == 6:
            out, gold = f"\\boxed{{{a}.{b}}}", f"{a}+\\frac{{{b}}}{{10}}"
        else:
            out, gold = f"\\boxed{{\\frac{{\\pi}}{{{b}}}}}", f"\\pi/{b + 1}"  # wrong
        pairs.append((f"<think>\nworking on case {k}\n</think>\n\n{out}", gold))
    return pairs


def anchor(pairs: list[tuple[str, str]]) -> tuple[float, float, list[bool]]:
    """(wall seconds, CPU seconds, passed) of single-process math-verify on the pairs."""
    from math_verify import parse, verify

    started, cpu = time.perf_counter(), time.process_time()
    results = []
    for output, gold in pairs:
        gold_parsed = parse(f"${gold}$")
        results.append(bool(gold_parsed) and verify(gold_parsed, parse(output)))
    return time.perf_counter() - started, time.process_time() - cpu, results


def pooled(pool, pairs: list[tuple[str, str]]) -> tuple[float, float, list[str]]:
    """(wall seconds, CPU seconds of parent + workers, verdicts) of the pool on the pairs."""
    started, cpu, workers_cpu = time.perf_counter(), time.process_time(), pool.worker_cpu_seconds()
    outcomes = pool.verify_many(pairs)
    wall = time.perf_counter() - started
    used = time.process_time() - cpu + pool.worker_cpu_seconds() - workers_cpu
    return wall, used, [o.verdict for o in outcomes]


def bench_math(n_pairs: int, processes: int, rounds: int, warmup_pairs: int) -> dict[str, float]:
    from thinktoggle.filters.math_pool import MathVerifierPool

    pairs = math_pairs(n_pairs)
    chunks = [pairs[r::rounds] for r in range(rounds)]
    # Steady state, as in a long-running stage: both sides first judge a warm-up set of other pairs (the
    # LaTeX parser's ANTLR DFA cache and sympy's caches fill as they meet new inputs, per process).
    warmup = math_pairs(warmup_pairs, start=10 * n_pairs)
    anchor(warmup)
    started = time.perf_counter()
    pool = MathVerifierPool(processes=processes, row_timeout_s=10.0)
    pool.verify_many([("\\boxed{\\frac{1}{2}}", "0.5")] * processes)
    startup_s = time.perf_counter() - started
    pool.verify_many(warmup)
    times = {"anchor": 0.0, "pool": 0.0}
    cpu = {"anchor": 0.0, "pool": 0.0}
    disagreements = 0
    try:
        for chunk in chunks:
            anchor_s, anchor_cpu, anchor_results = anchor(chunk)
            pool_s, pool_cpu, pool_verdicts = pooled(pool, chunk)
            times["anchor"] += anchor_s
            times["pool"] += pool_s
            cpu["anchor"] += anchor_cpu
            cpu["pool"] += pool_cpu
            for passed, verdict in zip(anchor_results, pool_verdicts, strict=True):
                if verdict in ("pass", "fail") and passed != (verdict == "pass"):
                    disagreements += 1
    finally:
        pool.close()
    if disagreements:
        raise RuntimeError(f"the pool and single-process math-verify disagree on {disagreements} pairs")
    return {
        "pairs": n_pairs,
        "anchor_pairs_per_s": n_pairs / times["anchor"],
        "pool_pairs_per_s": n_pairs / times["pool"],
        "ratio_pool_vs_anchor": times["anchor"] / times["pool"],
        "pool_startup_s": startup_s,
        # CPU seconds a pair costs each side, and the share of a core each got while timed: under load the
        # wall-clock ratio is bounded by the CPU share the machine grants, not by the pool.
        "anchor_cpu_ms_per_pair": 1000 * cpu["anchor"] / n_pairs,
        "pool_cpu_ms_per_pair": 1000 * cpu["pool"] / n_pairs,
        "anchor_cores_used": cpu["anchor"] / times["anchor"],
        "pool_cores_used": cpu["pool"] / times["pool"],
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=200, help="pairs each side judges before the timed region")
    parser.add_argument("--skip-code", action="store_true", help="math only")
    parser.add_argument("--programs", type=int, default=120, help="code: programs (bench/filters_code.py)")
    args = parser.parse_args(argv)
    console = Console()
    load = os.getloadavg()[0]
    figures = {"math": bench_math(args.pairs, args.processes, args.rounds, args.warmup)}
    m = figures["math"]
    table = Table(title=f"math verification: {args.pairs} pairs (cpus: {os.cpu_count()}, load {load:.1f})")
    table.add_column("runner")
    table.add_column("pairs/s", justify="right")
    table.add_column("vs anchor", justify="right")
    table.add_column("CPU ms/pair", justify="right")
    table.add_column("cores used", justify="right")
    table.add_row(
        "single-process math-verify (anchor)",
        f"{m['anchor_pairs_per_s']:.1f}",
        "1.00x",
        f"{m['anchor_cpu_ms_per_pair']:.1f}",
        f"{m['anchor_cores_used']:.2f}",
    )
    table.add_row(
        f"MathVerifierPool, {args.processes} processes",
        f"{m['pool_pairs_per_s']:.1f}",
        f"{m['ratio_pool_vs_anchor']:.2f}x",
        f"{m['pool_cpu_ms_per_pair']:.1f}",
        f"{m['pool_cores_used']:.2f}",
    )
    console.print(table)
    console.print(f"pool start-up (outside the timed region): {m['pool_startup_s']:.2f} s")
    if not args.skip_code:
        import filters_code

        figures["code"] = filters_code.main(["--programs", str(args.programs)])
    console.print(f"math ratio (pool / single process): {m['ratio_pool_vs_anchor']:.2f}x")
    if "code" in figures:
        console.print(f"code ratio (warm sandbox / bare subprocess): {figures['code']['ratio_warm_vs_bare']:.2f}x")
    return figures


if __name__ == "__main__":
    main()
