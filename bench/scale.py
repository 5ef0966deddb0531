"""Scale: the filter and export stages over N synthetic published rows, with the peak RSS of the process tree.

    nice .venv/bin/python bench/scale.py --rows 1000000 --work /tmp/scale [--workers 2]

1. bench/make_synthetic_rows.py writes N rows (skipped when `--work/rows` already holds N rows).
2. `thinktoggle filter rows --tasks W --workers W --only format,length,repetition,math` (code rows are absent: the
   sandbox has its own bench), then `thinktoggle export filter/kept --tasks W`, each as its own process.
3. A sampler thread sums the RSS of the stage's whole process tree (the CLI, datatrove's workers, the math
   verifier processes) every 0.2 s. Reported per stage: wall seconds, rows/s, peak RSS, and the peak RSS
   of the first and the last third of the run: a stage that holds rows in memory grows from one to the
   other; one that streams stays flat.
4. Accounting is checked: filter in == N, export in == filter kept, export kept == rows in the export folder.

Target: peak RSS <= 2 GB per stage at N = 1,000,000. Results go to `--work/scale.json` and stdout (markdown).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))  # make_synthetic_rows beside this file

import contextlib

from make_synthetic_rows import write_synthetic_rows  # noqa: E402

GB = 2**30


@dataclass
class StageRun:
    stage: str
    rows_in: int
    seconds: float = 0.0
    peak_rss: int = 0
    peak_rss_first_third: int = 0
    peak_rss_last_third: int = 0
    returncode: int = 0
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (seconds, tree RSS)

    @property
    def rows_per_s(self) -> float:
        return self.rows_in / self.seconds if self.seconds else 0.0


def tree_rss(root: psutil.Process) -> int:
    """RSS of a process and all its descendants (a process that exits while we look counts as 0)."""
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total


def run_measured(stage: str, command: list[str], rows_in: int, log: Path, interval: float = 0.2) -> StageRun:
    run = StageRun(stage, rows_in)
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                run.timeline.append((time.monotonic() - started, tree_rss(root)))
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        run.returncode = proc.wait()
        done.set()
        sampler.join()
    run.seconds = time.monotonic() - started
    rss = [r for _, r in run.timeline] or [0]
    third = max(1, len(rss) // 3)
    run.peak_rss, run.peak_rss_first_third, run.peak_rss_last_third = max(rss), max(rss[:third]), max(rss[-third:])
    if run.returncode != 0:
        raise RuntimeError(f"{stage} exited {run.returncode}; see {log}:\n{log.read_text()[-3000:]}")
    return run


def count_rows(folder: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.rglob("*.parquet") if not p.name.startswith("."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/thinktoggle-scale"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="format,length,repetition,math")
    args = parser.parse_args(argv)

    work: Path = args.work
    rows_dir = work / "rows"
    if not rows_dir.exists() or count_rows(rows_dir) != args.rows:
        for old in rows_dir.glob("*.parquet") if rows_dir.exists() else ():
            old.unlink()
        t0 = time.monotonic()
        write_synthetic_rows(rows_dir, args.rows)
        print(f"rows: {args.rows} written in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    for stage in ("filter", "export"):
        if (work / stage).exists():
            subprocess.run(["rm", "-rf", str(work / stage)], check=True)

    cli = [sys.executable, "-m", "thinktoggle.cli.main"]
    filter_run = run_measured(
        "filter",
        [*cli, "filter", str(rows_dir), "--out", str(work / "filter"), "--tasks", str(args.workers)]
        + ["--workers", str(args.workers)]
        + ["--only", args.only],
        args.rows,
        work / "filter.log",
    )
    filter_stats = json.loads((work / "filter" / "stats.json").read_text())
    assert filter_stats["in"] == args.rows, filter_stats
    export_run = run_measured(
        "export",
        [*cli, "export", str(work / "filter" / "kept"), "--out", str(work / "export")]
        + ["--tasks", str(args.workers), "--workers", str(args.workers), "--upstream-stats", "", "--recipe", ""],
        filter_stats["kept"],
        work / "export.log",
    )
    export_stats = json.loads((work / "export" / "stats.json").read_text())
    assert export_stats["in"] == filter_stats["kept"] == export_stats["kept"], export_stats
    assert count_rows(work / "export" / "SFT") == export_stats["kept"]

    runs = [filter_run, export_run]
    result = {
        "rows": args.rows,
        "workers": args.workers,
        "only": args.only,
        "filter_stats": {k: filter_stats[k] for k in ("in", "kept", "dropped", "failed")},
        "runs": [{**asdict(r), "rows_per_s": r.rows_per_s, "timeline": r.timeline[:: max(1, len(r.timeline) // 200)]}
                 for r in runs],
    }  # fmt: skip
    (work / "scale.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nN = {args.rows:,} rows, {args.workers} workers, filters {args.only}\n")
    print("| stage | rows in | seconds | rows/s | peak RSS (tree) | peak, first third | peak, last third |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r.stage} | {r.rows_in:,} | {r.seconds:.0f} | {r.rows_per_s:,.0f} | {r.peak_rss / GB:.2f} GB "
            f"| {r.peak_rss_first_third / GB:.2f} GB | {r.peak_rss_last_third / GB:.2f} GB |"
        )
    over = [r.stage for r in runs if r.peak_rss > 2 * GB]
    print(f"\ntarget peak RSS <= 2 GB: {'MISSED by ' + ', '.join(over) if over else 'met'}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
