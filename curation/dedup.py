"""Dedup: exact (normalised prompt; prompt + response) and near-duplicate prompts (MinHash), pair-consistent.

Dedup decides per *prompt* (`pair_id`): a duplicate prompt is dropped together with every one of its on/off
samples, so no half pair survives because its other half looked different. Within a group of duplicates the
first prompt in input order is kept, so the result does not depend on hash values or worker counts.

Three phases, each streaming over the records:
1. scan: note each pair's first position and exact-prompt key; a prompt whose normalised text was seen
   before is an exact duplicate of that first pair. The surviving prompts go to parquet shards, one per task.
2. near duplicates: datatrove's MinHash stages (signature → buckets → cluster) run on those shards through the
   configured executor; every cluster keeps its first prompt, and a member is dropped only when its n-gram
   Jaccard similarity with that prompt reaches `threshold` (LSH alone also pairs some less similar prompts)
   and, by default, it has the same numbers (a changed number makes a different math problem).
3. apply: records of dropped prompts go to dropped/ naming the prompt they duplicate; of the rest, a record
   whose (prompt, mode, normalised response) was already kept is an exact response duplicate.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.utils.word_tokenizers import WordTokenizer
from rich.progress import track

from thinktoggle.core.executors import ExecutorConfig, make_executor
from thinktoggle.core.outputs import StageOutputs, clear_partial, completed_stats
from thinktoggle.core.stats import StageStats
from thinktoggle.schemas.io import ShardWriter, discover_files, iter_records
from thinktoggle.schemas.record import Record, Verdict

STAGE = "dedup"
EXACT_PROMPT, NEAR_PROMPT, EXACT_RESPONSE = (
    "exact_prompt_duplicate",
    "near_duplicate_prompt",
    "exact_response_duplicate",
)
_PROMPT_SCHEMA = pa.schema([("pair_id", pa.string()), ("prompt", pa.string())])
_WHITESPACE = re.compile(r"\s+")
# Scripts written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar): each character is a
# token there, so n-grams of "日本語の文章" are character n-grams; elsewhere a token is a run of \w.
_UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f"
)
WORD = re.compile(rf"[{_UNSPACED}]|[^\W{_UNSPACED}]+")  # decontamination's words (punctuation ignored)
WORD_OR_MARK = re.compile(rf"[{_UNSPACED}]|[^\W{_UNSPACED}]+|[^\w\s]")  # MinHash shingles keep punctuation
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@dataclass(frozen=True)
class MinHashConfig:
    """Near-duplicate detection on prompts. LSH finds pairs similar above about (1/bands)^(1/rows)."""

    enabled: bool = True
    ngram: int = 5  # word n-grams (shingles)
    bands: int = 14  # datatrove's num_buckets
    rows: int = 8  # hashes per band (datatrove's hashes_per_bucket)
    threshold: float = 0.7  # n-gram Jaccard with the kept prompt needed to drop; 0 trusts every LSH match
    # A long word problem with one number changed is textually a near duplicate but a different problem
    # (procedural sources make exactly these): near duplicates must then share their numbers.
    same_numbers: bool = True
    seed: int = 1


@dataclass(frozen=True)
class DedupConfig:
    exact_prompt: bool = True  # drop prompts whose normalised text (all turns) was seen before
    exact_response: bool = True  # drop records whose (prompt, mode, normalised response) was seen before
    minhash: MinHashConfig = field(default_factory=MinHashConfig)


def normalise_text(text: str) -> str:
    """The form exact matching compares: Unicode NFKC, lower case, runs of whitespace as one space.

    Punctuation and digits stay: "3+5" and "3-5" are different math problems.
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def _key(*parts: str) -> bytes:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()


def prompt_text(record: Record) -> str:
    """The prompt as dedup and decontamination see it: every user turn (usually one)."""
    return "\n".join(m["content"] for m in record.input if m["role"] == "user")


def prompt_key(record: Record) -> bytes:
    return _key(*(f"{m['role']}:{normalise_text(m['content'])}" for m in record.input))


class RegexWordTokenizer(WordTokenizer):
    """Words and single punctuation marks (one token per character in unspaced scripts: `WORD_OR_MARK`);
    datatrove's English tokenizer needs spaCy, and prompts need no more."""

    def word_tokenize(self, text: str) -> list[str]:
        return WORD_OR_MARK.findall(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


def _datatrove_minhash_config(config: MinHashConfig):
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.text import TextNormConfig

    # Numbers and operators are what tell two math prompts apart: keep them.
    norm = TextNormConfig(norm_numbers=False, remove_punctuation=False)
    return MinhashConfig(
        n_grams=config.ngram,
        num_buckets=config.bands,
        hashes_per_bucket=config.rows,
        seed=config.seed,
        norm_config=norm,
    )


@dataclass
class _Scan:
    n_records: int = 0
    dropped_pairs: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # pair -> (reason, of, sim)
    prompt_counts: list[int] = field(default_factory=list)  # rows in each task's prompt shard


def _scan(config: DedupConfig, inputs: list[Path], work: Path, tasks: int) -> _Scan:
    """Phase 1: exact prompt duplicates, and the surviving prompts written for MinHash."""
    scan = _Scan()
    first_pair_of: dict[bytes, str] = {}
    seen_pairs: set[str] = set()
    all_prompts = work / "prompts_all"
    with ShardWriter(all_prompts, _PROMPT_SCHEMA, prefix="prompts") as writer:
        for _read, record in track(iter_records(inputs), description="dedup: scanning", transient=True):
            if record is None:
                continue
            scan.n_records += 1
            if record.pair_id in seen_pairs:
                continue
            seen_pairs.add(record.pair_id)
            key = prompt_key(record)
            first = first_pair_of.setdefault(key, record.pair_id)
            if config.exact_prompt and first != record.pair_id:
                scan.dropped_pairs[record.pair_id] = (EXACT_PROMPT, first, 1.0)
            elif prompt_text(record).strip():
                writer.write({"pair_id": record.pair_id, "prompt": prompt_text(record)})
    scan.prompt_counts = _split_prompts(all_prompts, work / "prompts", writer.rows_written, tasks)
    shutil.rmtree(all_prompts)
    return scan


def _split_prompts(source: Path, dest: Path, n: int, tasks: int) -> list[int]:
    """Stream the prompts into contiguous slices, one file per MinHash task, so that (task, doc index) maps
    back to input order. Returns the rows per file."""
    tasks = max(1, min(tasks, n))
    bounds = [n * t // tasks for t in range(tasks + 1)]
    dest.mkdir(parents=True, exist_ok=True)
    task, written, writer = 0, 0, None
    for path in sorted(source.glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
            offset = 0
            while offset < batch.num_rows:
                if writer is None:
                    writer = pq.ParquetWriter(dest / f"prompts-{task:05d}.parquet", _PROMPT_SCHEMA)
                take = min(bounds[task + 1] - written, batch.num_rows - offset)
                writer.write_batch(batch.slice(offset, take))
                offset, written = offset + take, written + take
                if written == bounds[task + 1]:
                    writer.close()
                    writer, task = None, task + 1
    return [bounds[t + 1] - bounds[t] for t in range(tasks)] if n else []


def _run_minhash(config: MinHashConfig, work: Path, counts: list[int], executor: ExecutorConfig, logs: Path) -> Path:
    """Phase 2a: datatrove's MinHash stages 1-3 over the prompt shards. Returns the clusters folder."""
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupSignature
    from datatrove.pipeline.readers import ParquetReader

    mh = _datatrove_minhash_config(config)
    signatures, buckets, clusters = work / "signatures", work / "buckets", work / "clusters"
    stages = [
        (
            [
                ParquetReader(
                    str(work / "prompts"), text_key="prompt", id_key="pair_id", glob_pattern="prompts-*.parquet"
                ),
                MinhashDedupSignature(str(signatures), config=mh, language=RegexWordTokenizer()),
            ],
            len(counts),
        ),
        ([MinhashDedupBuckets(str(signatures), str(buckets), config=mh)], config.bands),
        ([MinhashDedupCluster(str(buckets), str(clusters), config=mh, save_cluster_id=True)], 1),
    ]
    for i, (pipeline, tasks) in enumerate(stages, start=1):
        # The default executor (one task) runs every MinHash stage in this process, one task after another.
        workers = min(tasks, executor.workers if executor.workers > 0 else executor.tasks)
        stage_executor = replace(executor, tasks=tasks, workers=workers)
        runner = make_executor(stage_executor, pipeline, logs / f"minhash_{i}", job_name=f"dedup_minhash_{i}")
        runner.run()
        if incomplete := runner.get_incomplete_ranks(range(tasks)):
            raise RuntimeError(f"dedup: MinHash stage {i} ranks {incomplete} did not complete (logs in {logs})")
    return clusters


def _read_clusters(clusters: Path) -> dict[int, list[tuple[int, int]]]:
    """cluster id -> [(task, doc index)] from MinhashDedupCluster's `{task:06d}.clusters` files."""
    from datatrove.utils.binaryio import read_tuples_from_file

    members: dict[int, list[tuple[int, int]]] = {}
    for path in sorted(clusters.glob("*.clusters")):
        task = int(path.name.split(".")[0])
        with path.open("rb") as handle:
            for doc, cluster in read_tuples_from_file(handle, "I", "I"):
                members.setdefault(cluster, []).append((task, doc))
    return members


def _near_duplicates(config: MinHashConfig, work: Path, clusters: Path) -> dict[str, tuple[str, str, float]]:
    """Phase 2b: in each cluster the first prompt in input order stays; the others similar enough are dropped."""
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    members = _read_clusters(clusters)
    if not members:
        return {}
    shingler = MinhashDedupSignature(
        str(work / "shingles-unused"), config=_datatrove_minhash_config(config), language=RegexWordTokenizer()
    )
    tables = {int(p.name[8:13]): pq.read_table(p) for p in sorted((work / "prompts").glob("prompts-*.parquet"))}

    def lookup(task: int, doc: int) -> tuple[str, str]:
        row = tables[task].slice(doc, 1).to_pylist()[0]
        return row["pair_id"], row["prompt"]

    dropped: dict[str, tuple[str, str, float]] = {}
    for cluster in sorted(members):
        ordered = sorted(members[cluster])  # (task, doc) order is input order: the slices are contiguous
        keep_pair, keep_text = lookup(*ordered[0])
        keep_shingles = set(shingler.get_shingles(keep_text).ravel().tolist())
        for task, doc in ordered[1:]:
            pair, text = lookup(task, doc)
            shingles = set(shingler.get_shingles(text).ravel().tolist())
            union = keep_shingles | shingles
            similarity = len(keep_shingles & shingles) / len(union) if union else 1.0
            if config.same_numbers and _NUMBER.findall(text) != _NUMBER.findall(keep_text):
                continue
            if similarity >= config.threshold:
                dropped[pair] = (NEAR_PROMPT, keep_pair, round(similarity, 4))
    return dropped


def _duplicate(record: Record, reason: str, detail: str, of: str, similarity: float) -> Verdict:
    """The verdict that drops a duplicate; what it duplicates travels in the record's metadata."""
    record.metadata = {**record.metadata, STAGE: {"reason": reason, "duplicate_of": of, "similarity": similarity}}
    return Verdict(STAGE, "fail", f"{reason}: {detail}")


def _apply(config: DedupConfig, inputs: list[Path], out_dir: Path, dropped_pairs: dict) -> StageStats:
    """Phase 3: write every record to kept/ or dropped/ (naming the duplicate), unreadable rows to failed/."""
    first_response: dict[bytes, str] = {}
    with StageOutputs(out_dir, STAGE) as outputs:
        for read, record in track(iter_records(inputs), description="dedup: writing", transient=True):
            if record is None:
                outputs.fail_read(read)
                continue
            verdict = None
            if record.pair_id in dropped_pairs:
                reason, of, similarity = dropped_pairs[record.pair_id]
                near = f" (n-gram Jaccard {similarity})" if reason == NEAR_PROMPT else ""
                verdict = _duplicate(record, reason, f"prompt duplicates pair {of}{near}", of, similarity)
            elif config.exact_response:
                key = _key(prompt_key(record).hex(), record.reasoning, normalise_text(record.output))
                first = first_response.get(key)
                if first is not None:  # position decides, not id: the very same record twice is a duplicate too
                    detail = f"same prompt, mode and response as record {first}"
                    verdict = _duplicate(record, EXACT_RESPONSE, detail, first, 1.0)
                else:
                    first_response[key] = record.id
            outputs.write(record, verdict, read.where)
    return outputs.stats


def run_dedup(
    config: DedupConfig, inputs: list[Path], out_dir: Path, executor: ExecutorConfig = ExecutorConfig()
) -> StageStats:
    """Deduplicate the records under `inputs` into `out_dir` (kept/, dropped/, failed/, stats.json).

    The scan and apply phases run in this process; MinHash's stages run through `executor` (local or Ray;
    their outputs are read back here, so a Slurm executor is refused: run the stage inside an allocation).
    """
    out_dir = Path(out_dir)
    if done := completed_stats(out_dir):
        return done
    inputs = discover_files(inputs)
    work, logs = out_dir / ".work", out_dir / "logs"  # both skipped by readers of out_dir
    for stale in (work, *logs.glob("minhash_*")):  # an unfinished run starts over: its partial outputs
        shutil.rmtree(stale, ignore_errors=True)  # (and completion markers) cannot be trusted
    clear_partial(out_dir, "part")
    scan = _scan(config, inputs, work, executor.tasks)
    dropped_pairs = dict(scan.dropped_pairs)
    if config.minhash.enabled and scan.prompt_counts:
        clusters = _run_minhash(config.minhash, work, scan.prompt_counts, executor, logs)
        dropped_pairs.update(_near_duplicates(config.minhash, work, clusters))
    stats = _apply(config, inputs, out_dir, dropped_pairs)
    stats.write(out_dir / "stats.json")
    return stats
