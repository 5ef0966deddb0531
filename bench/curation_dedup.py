"""Curation speed against its anchors, in one run (ratios).

- dedup: `run_dedup` (exact prompt + exact response + MinHash, pair-consistent, records in and out) against
  datatrove's bare MinHash stages 1-3 on the same prompts (one parquet of unique prompts, no records, no
  exact passes, no output). The ratio is what the stage adds around datatrove.
- decontaminate: `run_decontaminate` (records in, kept/dropped shards and a report out, a datatrove step)
  against the open-r1 style loop: a set of benchmark n-grams and a scan of each prompt's n-grams in memory.

    .venv/bin/python bench/curation_dedup.py --pairs 5000
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

WORDS = [
    "triangle",
    "circle",
    "square",
    "prime",
    "integer",
    "sum",
    "product",
    "area",
    "volume",
    "sequence",
    "series",
    "limit",
    "derivative",
    "integral",
    "matrix",
    "vector",
    "probability",
    "dice",
    "coin",
    "graph",
    "tree",
    "path",
    "cycle",
    "modulo",
    "remainder",
    "digit",
    "fraction",
    "ratio",
    "angle",
]


def make_prompts(pairs: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    prompts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(14, 30))) + f" case {i}?" for i in range(pairs)]
    for i in range(0, pairs, 20):  # 5% planted near duplicates: one word changed
        words = prompts[i].split()
        words[3] = "changed"
        prompts[min(i + 1, pairs - 1)] = " ".join(words)
    return prompts


def write_inputs(prompts: list[str], folder: Path) -> None:
    from thinktoggle.schemas.arrow import RECORD_SCHEMA
    from thinktoggle.schemas.convert import record_to_arrow_row
    from thinktoggle.schemas.io import ShardWriter
    from thinktoggle.schemas.record import Record

    with ShardWriter(folder, RECORD_SCHEMA) as writer:
        for prompt in prompts:
            messages = [{"role": "user", "content": prompt}]
            for mode, output in (("on", f"<think>\nthink about {prompt}\n</think>\n\n42"), ("off", "42")):
                writer.write(
                    record_to_arrow_row(
                        Record(input=messages, category="math", reasoning=mode, output=output, generator="t")
                    )
                )


def bare_minhash(prompts: list[str], work: Path) -> float:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupSignature
    from datatrove.pipeline.readers import ParquetReader

    from thinktoggle.curation.dedup import MinHashConfig, RegexWordTokenizer, _datatrove_minhash_config

    mh = _datatrove_minhash_config(MinHashConfig())
    (work / "in").mkdir(parents=True)
    pq.write_table(pa.table({"text": prompts, "id": [str(i) for i in range(len(prompts))]}), work / "in" / "p.parquet")
    start = time.perf_counter()
    for i, (pipeline, tasks) in enumerate(
        [
            (
                [
                    ParquetReader(str(work / "in")),
                    MinhashDedupSignature(str(work / "sig"), config=mh, language=RegexWordTokenizer()),
                ],
                1,
            ),
            ([MinhashDedupBuckets(str(work / "sig"), str(work / "buckets"), config=mh)], mh.num_buckets),
            ([MinhashDedupCluster(str(work / "buckets"), str(work / "clusters"), config=mh, save_cluster_id=True)], 1),
        ]
    ):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(work / f"logs{i}")).run()
    return time.perf_counter() - start


def open_r1_loop(prompts: list[str], bench: list[str], n: int) -> tuple[float, int]:
    from thinktoggle.curation.decontaminate import word_ngrams

    start = time.perf_counter()
    index = {gram for text in bench for gram in word_ngrams(text, n)}
    hits = sum(any(g in index for g in word_ngrams(p, n)) for p in prompts for _mode in range(2))
    return time.perf_counter() - start, hits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=5000)
    args = parser.parse_args()
    from datatrove.utils.logging import logger

    logger.remove()  # datatrove's INFO lines would dominate the output
    from thinktoggle.curation.decontaminate import BenchmarkConfig, DecontaminateConfig, run_decontaminate
    from thinktoggle.curation.dedup import DedupConfig, run_dedup

    prompts = make_prompts(args.pairs)
    tmp = Path(tempfile.mkdtemp(prefix="bench-curation-"))
    try:
        write_inputs(prompts, tmp / "records")
        anchor = bare_minhash(prompts, tmp / "bare")
        start = time.perf_counter()
        stats = run_dedup(DedupConfig(), [tmp / "records"], tmp / "dedup")
        ours = time.perf_counter() - start
        print(f"dedup: {2 * args.pairs} records ({args.pairs} prompts), dropped {dict(stats.dropped)}")
        print(f"  datatrove MinHash 1-3 on the prompts: {anchor:.2f} s")
        print(f"  run_dedup on the records:             {ours:.2f} s  -> {ours / anchor:.2f}x the anchor")

        bench = prompts[::50]  # 2% of the prompts are in the benchmark
        (tmp / "bench.jsonl").write_text("".join(f'{{"problem": "{b}"}}\n' for b in bench))
        loop, hits = open_r1_loop(prompts, bench, 13)
        start = time.perf_counter()
        config = DecontaminateConfig(benchmarks=(BenchmarkConfig(name="b", path=str(tmp / "bench.jsonl")),))
        stats = run_decontaminate(config, [tmp / "records"], tmp / "decontaminate")
        ours = time.perf_counter() - start
        assert stats.n_dropped == hits, (stats.n_dropped, hits)
        print(f"decontaminate: {2 * args.pairs} records, {hits} contaminated (both agree)")
        print(f"  open-r1 style in-memory loop:  {loop:.2f} s")
        print(f"  run_decontaminate:             {ours:.2f} s  -> {ours / loop:.2f}x the anchor")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
