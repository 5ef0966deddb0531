"""The dataset card (README.md) of an exported folder: YAML header, provenance, tables, plots.

Statistics come from a lazy polars scan of the exported parquet, so the card describes what was written,
not what a stage believed it wrote.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import yaml

from thinktoggle.curation.export import ARROW_SCHEMAS, CARD, DATA, FILE_PREFIX, ExportConfig, file_prefix
from thinktoggle.curation.plots import funnel_chart, length_histogram
from thinktoggle.schemas.io import atomic_write_text

PIECES = r"\w+|[^\w\s]"  # the fallback length unit: words and punctuation marks
SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]


def size_category(rows: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "n>1B")


def scan_export(out_dir: Path, config: ExportConfig) -> pl.LazyFrame:
    """The exported rows as (split, category, reasoning, generator, output): a conversation's output is the
    content of its last turn (the answer); its split is in its file name (`data/<split>-part-*`)."""
    empty = pl.LazyFrame(
        schema={
            "split": pl.String,
            "category": pl.String,
            "reasoning": pl.String,
            "generator": pl.String,
            "output": pl.String,
        }
    )
    if config.layout == "llama-nemotron":
        if not any((out_dir / config.config_name).glob("*/*.parquet")):
            return empty  # nothing exported: the card says so rather than failing
        frame = pl.scan_parquet(str(out_dir / config.config_name / "*" / "*.parquet"))
        return frame.with_columns(split=pl.col("category"))
    prefixes = {file_prefix(s): s for s in _splits_written(out_dir)}
    frames = [
        pl.scan_parquet(str(out_dir / DATA / f"{prefix}-part-*.parquet")).with_columns(split=pl.lit(split))
        for prefix, split in sorted(prefixes.items())
    ]
    if not frames:
        return empty
    answer = pl.col("messages").list.last().struct.field("content").fill_null("")
    return pl.concat(frames).select("split", "category", "reasoning", "generator", output=answer)


def _splits_written(out_dir: Path) -> list[str]:
    """The splits of a conversational export, from its file names."""
    by_prefix = {v: k for k, v in FILE_PREFIX.items()}
    found = {p.name.split("-part-r", 1)[0] for p in (out_dir / DATA).glob("*-part-r*.parquet")}
    return sorted(by_prefix.get(prefix, prefix) for prefix in found)


def with_lengths(frame: pl.LazyFrame, tokenizer: str = "") -> tuple[pl.LazyFrame, str]:
    """Add an output `length` column: tokens of `tokenizer` if given, else regex word pieces."""
    if not tokenizer:
        return frame.with_columns(
            length=pl.col("output").str.count_matches(PIECES)
        ), "word pieces (regex \\w+|[^\\w\\s])"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)

    def count(batch: pl.Series) -> pl.Series:
        ids = tok(batch.to_list(), add_special_tokens=False)["input_ids"]
        return pl.Series([len(x) for x in ids], dtype=pl.Int64)

    length = pl.col("output").map_batches(count, return_dtype=pl.Int64)
    return frame.with_columns(length=length), f"tokens ({Path(tokenizer).name or tokenizer})"


def markdown_table(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return "_(none)_"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def front_matter(config: ExportConfig, split_rows: dict[str, int], out_dir: Path | None = None) -> dict[str, Any]:
    """The card's YAML: `configs` lists one split per category so that load_dataset(folder) finds them; for the
    conversational layouts also `dataset_info` (features and splits), as NVIDIA's cards state them."""
    if config.layout != "llama-nemotron":
        return _conversational_front_matter(config, split_rows, Path(out_dir or "."))
    categories, rows = sorted(split_rows), sum(split_rows.values())
    return {
        "license": config.license,
        "configs": [
            {
                "config_name": config.config_name,
                "default": True,
                "data_files": [
                    {"split": category, "path": f"{config.config_name}/{category}/*.parquet"} for category in categories
                ],
            }
        ],
        "task_categories": ["text-generation"],
        "language": ["en"],
        "size_categories": [size_category(rows)],
        "tags": ["reasoning", "synthetic", "sft", "reasoning-toggle", "llama-nemotron", "thinktoggle"],
        "pretty_name": config.name,
    }


COLUMNS = {
    "llama-nemotron": "`input` (prompt turns: list of {role, content}), `output` (`<think>…</think>` then the answer "
    "when reasoning is on), `category`, `license`, `reasoning` (on/off), `generator` (teacher models), "
    "`used_in_training`, `version`, `system_prompt` (`detailed thinking on|off`), and for verifiable rows "
    "`expected_answer` and `tests`.",
    "nemotron-v1": "`uuid`, `license`, `generator`, `version`, `category`, `reasoning` (on/off), `messages` (the "
    "conversation: the system turn, then user / assistant / tool turns; the last assistant turn is the answer, "
    "`<think>…</think>` first when reasoning is on; `tool_calls`: [{id, type, function: {name, arguments: a JSON "
    "object string}}]) and `metadata` (a JSON string: tool declarations, gold answers).",
    "nemotron-v2": "`uuid`, `license`, `generator`, `version`, `category`, `reasoning` (on/off) and `messages` (the "
    "conversation: {role, content} turns; the last assistant turn is the answer, `<think>…</think>` first when "
    "reasoning is on).",
}


def published_glob(config: ExportConfig) -> str:
    return f"{config.config_name}/*/*.parquet" if config.layout == "llama-nemotron" else f"{DATA}/*.parquet"


def _split_bytes(out_dir: Path, split: str) -> int:
    """A split's uncompressed size from its parquet footers (what `datasets` states as num_bytes, near enough)."""
    total = 0
    for path in (out_dir / DATA).glob(f"{file_prefix(split)}-part-*.parquet"):
        meta = pq.ParquetFile(path).metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def _conversational_front_matter(config: ExportConfig, split_rows: dict[str, int], out_dir: Path) -> dict[str, Any]:
    from datasets import Features

    features = Features.from_arrow_schema(ARROW_SCHEMAS[config.layout])
    splits = sorted(split_rows)
    sizes = {s: _split_bytes(out_dir, s) for s in splits}
    languages = sorted({s.removeprefix("multilingual_") for s in splits if s.startswith("multilingual_")})
    return {
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [{"name": s, "num_bytes": sizes[s], "num_examples": split_rows[s]} for s in splits],
            "dataset_size": sum(sizes.values()),
        },
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"{DATA}/{file_prefix(s)}-*"} for s in splits],
            }
        ],
        "license": config.license,
        "task_categories": ["text-generation"],
        "language": ["en", *languages],
        "size_categories": [size_category(sum(split_rows.values()))],
        "tags": ["reasoning", "synthetic", "sft", "reasoning-toggle", "nemotron", "thinktoggle"],
        "pretty_name": config.name,
    }


def _funnel_table(funnel: dict[str, Any]) -> str:
    lines = ["| stage | in | kept | dropped | failed | reasons |", "|---|---|---|---|---|---|"]
    for s in funnel["stages"]:
        reasons = [f"{r} ({n:,})" for r, n in s["dropped_reasons"].items()]
        reasons += [f"failed: {r} ({n:,})" for r, n in s["failed_reasons"].items()]
        lines.append(
            f"| {s['stage']} | {s['in']:,} | {s['kept']:,} | {s['dropped']:,} | {s['failed']:,} | "
            f"{'; '.join(reasons) or '-'} |"
        )
    if not funnel["consistent"]:
        lines.append("\n**Accounting breaks:** " + "; ".join(funnel["breaks"]))
    return "\n".join(lines)


def _provenance(provenance: dict[str, Any]) -> str:
    teachers = pl.DataFrame(provenance["teachers"]) if provenance["teachers"] else pl.DataFrame()
    parts = ["### Teachers\n", markdown_table(teachers), "\n### Filters (verdicts on the exported rows)\n"]
    filters = provenance["filters"]
    if filters:
        verdicts = sorted({v for counts in filters.values() for v in counts})
        frame = pl.DataFrame(
            [{"filter": name, **{v: counts.get(v, 0) for v in verdicts}} for name, counts in filters.items()]
        )
        parts.append(markdown_table(frame))
    else:
        parts.append("_(no filter verdicts recorded)_")
    return "\n".join(parts)


def _slug(category: str) -> str:
    return re.sub(r"[^\w-]", "_", category)


RESOLVED_FROM = "# resolved from "  # how a run's recipe.resolved.yaml starts (runner/recipe.py: Recipe.to_yaml)


def portable_recipe(text: str) -> str:
    """The recipe as the card shows it, without the paths of the machine that ran it.

    A resolved recipe names its file on its first line, and every `${recipe_dir}` in it was expanded to that
    file's folder, an absolute path. Here that folder becomes `${recipe_dir}` again and the file is named by its
    name, so the card's recipe reads as the recipe file did. Where the file cannot be found from here (another
    working directory, a moved run), the text is shown as it is.
    """
    first, newline, rest = text.partition("\n")
    if not first.startswith(RESOLVED_FROM):
        return text
    source = Path(first.removeprefix(RESOLVED_FROM).split(" with --set ", 1)[0])
    if not source.is_file():
        return text
    folder = str(source.resolve().parent)  # as the runner expanded `${recipe_dir}`
    # Only the whole folder: /a/recipes must not match the start of /a/recipes-old.
    expanded = re.compile(re.escape(folder) + r"(?=/|[\s\"',\]}]|$)", re.MULTILINE)
    first = first.replace(str(source), source.name, 1)
    return first + newline + expanded.sub(lambda _: "${recipe_dir}", rest)


def write_card(
    out_dir: Path,
    config: ExportConfig,
    funnel: dict[str, Any],
    provenance: dict[str, Any],
    recipe_text: str = "",
) -> Path:
    """Write out_dir/README.md (and out_dir/plots/*.png) for the exported folder."""
    scan = scan_export(out_dir, config)
    split_rows = dict(scan.group_by("split").agg(rows=pl.len()).collect().iter_rows())
    by_group = (
        scan.group_by("category", "reasoning", "generator")
        .agg(rows=pl.len())
        .sort("category", "reasoning", "generator")
    ).collect()
    categories = sorted(by_group["category"].unique().to_list()) if by_group.height else []
    splits_list = sorted(split_rows)
    total = int(by_group["rows"].sum()) if by_group.height else 0
    lengths_frame, unit = with_lengths(scan.select("category", "reasoning", "output"), config.tokenizer)
    lengths = lengths_frame.select("category", "reasoning", "length").collect()
    length_table = (
        lengths.group_by("category", "reasoning")
        .agg(
            rows=pl.len(),
            mean=pl.col("length").mean(),
            median=pl.col("length").median(),
            p90=pl.col("length").quantile(0.9),
            max=pl.col("length").max(),
        )
        .sort("category", "reasoning")
    )
    plot_links = []
    if config.plots:
        for category in categories:
            of_category = lengths.filter(pl.col("category") == category)
            per_mode = {
                mode: of_category.filter(pl.col("reasoning") == mode)["length"].to_list() for mode in ("on", "off")
            }
            path = length_histogram(per_mode, category, unit, out_dir / "plots" / f"lengths_{_slug(category)}.png")
            plot_links.append(f"![{category}: lengths on vs off]({path.relative_to(out_dir).as_posix()})")
        funnel_chart(funnel, out_dir / "plots" / "funnel.png")

    header = yaml.safe_dump(front_matter(config, split_rows, out_dir), sort_keys=False, allow_unicode=True)
    splits = ", ".join(f"`{c}`" for c in splits_list) or "(none)"
    card_config = config.config_name if config.layout == "llama-nemotron" else "default"
    sections = [
        f"---\n{header}---",
        f"# {config.name}",
        config.description
        or (
            "Reasoning-toggle post-training data in the Llama-Nemotron-Post-Training-Dataset layout: every prompt is "
            "answered with the system prompt `detailed thinking on` (reasoning in `<think>…</think>`, then the "
            "answer) and `detailed thinking off` (the answer directly). Built with thinktoggle."
        ),
        f"**{total:,} rows** in config `{card_config}` (layout {config.layout}), one split per category: {splits}.",
        "## Loading\n\n```python\nfrom datasets import load_dataset\n\n"
        f'ds = load_dataset("<this repo or folder>", "{card_config}")\n'
        f'split = ds["{splits_list[0] if splits_list else "math"}"]\n```\n\n'
        "```python\nimport polars as pl\n\n"
        f'rows = pl.scan_parquet("{published_glob(config)}")\n```',
        "## Columns\n\n" + COLUMNS[config.layout],
        "## How it was produced",
        _provenance(provenance),
    ]
    if recipe_text:
        sections.append("### Recipe\n\n```yaml\n" + portable_recipe(recipe_text).rstrip() + "\n```")
    sections += [
        "## Rows by category, reasoning and generator",
        markdown_table(by_group),
        "## Funnel: from source to export\n\nEvery row that entered a stage was kept, dropped (with the reason) or "
        "failed (with the reason).",
        _funnel_table(funnel),
    ]
    if config.plots:
        sections.append("![filter funnel](plots/funnel.png)")
    sections += [f"## Output lengths, reasoning on vs off\n\nUnit: {unit}.", markdown_table(length_table), *plot_links]
    return atomic_write_text("\n\n".join(sections) + "\n", out_dir / CARD)


def read_front_matter(card: Path) -> dict[str, Any]:
    """The YAML header of a card (between the first two `---` lines)."""
    text = card.read_text()
    if not text.startswith("---\n"):
        raise ValueError(f"{card}: no YAML front matter")
    return yaml.safe_load(text[4 : text.index("\n---", 4)])
