"""`thinktoggle ingest`: both historical forms of the published dataset into checked v1.1 shards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from thinktoggle.cli.main import app
from thinktoggle.core.stats import StageStats
from thinktoggle.curation.ingest import ingest as run_ingest
from thinktoggle.curation.ingest import iter_hub_rows, normalise_row, parse_llama3_prompt
from thinktoggle.schemas.convert import record_to_row
from thinktoggle.schemas.io import iter_records

runner = CliRunner()
HUB_ID = "nvidia/Llama-Nemotron-Post-Training-Dataset"


def llama3_prompt(system: str | None, *turns: tuple[str, str]) -> str:
    """A prompt as v1 rows carry it: the Llama-3 chat template with the generation prompt at the end."""
    text = "<|begin_of_text|>"
    if system is not None:
        text += f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>"
    for role, content in turns:
        text += f"<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"
    return text + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def v1_row(question: str, reasoning: str = "on", answer: str = "42", **changes) -> dict:
    output = f"<think>\nthinking about {question}\n</think>\n\n{answer}" if reasoning == "on" else answer
    row = {
        "input": llama3_prompt(f"detailed thinking {reasoning}", ("user", question)),
        "output": output + "<|eot_id|>",
        "category": "math",
        "license": "cc-by-4.0",
        "reasoning": reasoning,
        "generator": "DeepSeek-R1" if reasoning == "on" else "Llama-3.3-70B-Instruct",
        "used_in_training": "Ultra, Super, Nano",
        "version": "v1",
    }
    row.update(changes)
    return row


def v11_row(question: str, reasoning: str = "on", answer: str = "42", **changes) -> dict:
    row = v1_row(question, reasoning, answer, version="v1.1")
    row["input"] = [{"role": "user", "content": question}]
    row["output"] = row["output"].removesuffix("<|eot_id|>")
    row["system_prompt"] = f"detailed thinking {reasoning}"
    row.update(changes)
    return row


def expected_v11(row: dict) -> dict:
    """What ingest writes for a row (the Arrow schema adds the optional columns as nulls)."""
    return {"expected_answer": None, "tests": None, **row}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def written_rows(out: Path) -> list[dict]:
    """The kept records of an ingest, as the published rows they export to."""
    reads = list(iter_records([out]))
    assert all(record is not None for _, record in reads), reads
    return [{k: v for k, v in record_to_row(record).items()} for _, record in reads]


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


# --- the v1 chat template ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "system", "turns"),
    [
        (llama3_prompt("detailed thinking on", ("user", "2+2?")), "detailed thinking on", [("user", "2+2?")]),
        (llama3_prompt(None, ("user", "2+2?")), "", [("user", "2+2?")]),
        (
            llama3_prompt("detailed thinking off", ("user", "hi"), ("assistant", "hello"), ("user", "2+2?")),
            "detailed thinking off",
            [("user", "hi"), ("assistant", "hello"), ("user", "2+2?")],
        ),
        # tool results ride in the ipython role
        (
            llama3_prompt("sys", ("user", "weather?"), ("ipython", '{"temp": 20}')),
            "sys",
            [("user", "weather?"), ("tool", '{"temp": 20}')],
        ),
        # contents keep their inner newlines; the template's surrounding whitespace goes
        (llama3_prompt("s", ("user", "line 1\n\nline 2")), "s", [("user", "line 1\n\nline 2")]),
        # without the trailing generation prompt
        ("<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", "", [("user", "hi")]),
    ],
    ids=["single", "no-system", "multi-turn", "ipython", "newlines", "no-generation-prompt"],
)
def test_parse_llama3_prompt(prompt, system, turns):
    assert parse_llama3_prompt(prompt) == (system, [{"role": r, "content": c} for r, c in turns])


def test_a_prompt_without_headers_is_refused():
    with pytest.raises(ValueError, match="header"):
        parse_llama3_prompt("just a question, no template")


def test_normalise_v1_and_v11_rows():
    v1 = v1_row("What is 6 * 7?")
    assert normalise_row(v1) == expected_v11(v11_row("What is 6 * 7?", version="v1"))
    # v1.1 rows pass unchanged, their output byte for byte (whitespace, stray tokens and all)
    v11 = v11_row("q", output="<think>\nr\n</think>\n\n42\n  ", expected_answer="42")
    assert normalise_row(v11) == {**v11, "tests": None}
    # a leading system turn moves to the column when that loses nothing, and stays otherwise
    lifted = normalise_row(
        v11_row("q", input=[{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}], system_prompt="")
    )
    assert (lifted["input"], lifted["system_prompt"]) == ([{"role": "user", "content": "q"}], "sys")
    kept = normalise_row(v11_row("q", input=[{"role": "system", "content": "tools"}, {"role": "user", "content": "q"}]))
    assert (
        kept["input"][0] == {"role": "system", "content": "tools"} and kept["system_prompt"] == "detailed thinking on"
    )


# --- the command -------------------------------------------------------------------------------------------


def test_ingest_both_forms_rejects_bad_rows_and_passes_check(tmp_path):
    v1_rows = [v1_row(f"q{i}", "on" if i % 2 else "off") for i in range(4)]
    v11_rows = [v11_row(f"p{i}", category="code" if i else "math") for i in range(3)]
    bad = [
        v11_row("bad category", category="biology"),
        v1_row("no header", input="plain text prompt"),
        v1_row(
            "disagrees",
            reasoning="off",
            output="42<|eot_id|>",
            input=llama3_prompt("detailed thinking on", ("user", "x")),
        ),
        {**v11_row("unknown column"), "colour": "blue"},
    ]
    sources = tmp_path / "sources"
    sources.mkdir()
    write_jsonl(sources / "v1.jsonl", [v1_rows[0], bad[0], *v1_rows[1:], bad[1]])
    with (sources / "v1.1.jsonl").open("w") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in [*v11_rows, bad[2], bad[3]]))
        handle.write('{"truncated": ')
    out = tmp_path / "out"

    result = invoke("ingest", str(sources / "v1.jsonl"), str(sources / "v1.1.jsonl"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "12 rows, 7 written, 0 skipped, 5 rejected" in result.output
    # Rejected rows are reported as `check` reports them.
    assert f"{sources / 'v1.jsonl'}:2: category:" in result.output
    assert f"{sources / 'v1.jsonl'}:6: input: no <|start_header_id|>role<|end_header_id|> header found" in result.output
    assert f"{sources / 'v1.1.jsonl'}:4: reasoning: 'off' disagrees with system_prompt" in result.output
    assert f"{sources / 'v1.1.jsonl'}:5: colour: unknown column" in result.output
    assert f"{sources / 'v1.1.jsonl'}:6: (row): truncated last line" in result.output

    expected = [expected_v11(v11_row(f"q{i}", "on" if i % 2 else "off", version="v1")) for i in range(4)]
    assert written_rows(out) == expected + [expected_v11(r) for r in v11_rows]

    failed = pq.read_table(out / "failed").to_pylist()
    assert [r["source"].rsplit("/", 1)[1] for r in failed] == [
        "v1.jsonl:2",
        "v1.jsonl:6",
        "v1.1.jsonl:4",
        "v1.1.jsonl:5",
        "v1.1.jsonl:6",
    ]
    assert failed[0]["reason"] == "invalid_row:category" and failed[0]["detail"].startswith("category: ")
    assert all(r["stage"] == "ingest" and r["detail"] for r in failed)

    stats = StageStats.read(out / "stats.json")
    assert (stats.n_in, stats.kept, stats.n_dropped, stats.n_failed) == (12, 7, 0, 5)
    assert sorted(p.name for p in out.iterdir()) == ["failed", "kept", "stats.json"]  # nothing dropped: no folder

    checked = invoke("check", str(out))
    assert checked.exit_code == 0 and checked.output.strip() == "7 rows, 7 valid, 0 invalid"


@pytest.mark.parametrize(
    ("options", "kept"),
    [
        ([], ["a", "b", "c", "d", "e"]),
        (["--category", "code"], ["b", "d"]),
        (["--reasoning", "off"], ["c", "d"]),
        (["--used-in-training", "Nano"], ["a", "b", "c"]),
        (["--used-in-training", "nano", "--reasoning", "on", "--category", "math"], ["a"]),
        (["--category", "safety"], []),
    ],
)
def test_selection_options(tmp_path, options, kept):
    rows = [
        v11_row("a", used_in_training="Ultra, Super, Nano"),
        v11_row("b", category="code", used_in_training="Nano"),
        v1_row("c", "off", used_in_training="Super,Nano"),
        v11_row("d", "off", category="code", used_in_training="Ultra"),
        v1_row("e", used_in_training="Nanotron"),  # a different name, not Nano
    ]
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    result = invoke("ingest", str(source), "--out", str(tmp_path / "out"), *options)
    assert result.exit_code == 0, result.output
    assert f"5 rows, {len(kept)} written, {5 - len(kept)} skipped, 0 rejected" in result.output
    written = written_rows(tmp_path / "out") if kept else []
    assert [r["input"][-1]["content"] for r in written] == kept


def test_bad_invocations_write_nothing(tmp_path):
    source = write_jsonl(tmp_path / "rows.jsonl", [v11_row("a")])
    bad_mode = invoke("ingest", str(source), "--out", str(tmp_path / "o1"), "--reasoning", "maybe")
    assert bad_mode.exit_code == 2 and "on' or 'off" in bad_mode.output
    bad_category = invoke("ingest", str(source), "--out", str(tmp_path / "o1"), "--category", "maths")
    assert bad_category.exit_code == 2 and "must be one of math, code" in bad_category.output
    assert not (tmp_path / "o1").exists()
    missing = invoke("ingest", str(source), str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o2"))
    assert missing.exit_code == 2 and "missing.jsonl" in missing.output
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").glob("*.parquet"))
    assert invoke("ingest", str(source), "--out", str(tmp_path / "o3")).exit_code == 0
    again = invoke("ingest", str(source), "--out", str(tmp_path / "o3"))
    assert again.exit_code == 2 and "already holds an ingest" in again.output


def test_shards_and_counts_add_up(tmp_path):
    rows = [v11_row(f"q{i}", "on" if i % 3 else "off") for i in range(25)]
    rows[7] = v11_row("bad", license="")
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    summary = run_ingest([str(source)], tmp_path / "out", rows_per_shard=10)
    assert (summary.rows, summary.written, summary.skipped, summary.rejected) == (25, 24, 0, 1)
    assert summary.rows == summary.written + summary.skipped + summary.rejected
    assert [Path(s).name for s in summary.shards] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert len(written_rows(tmp_path / "out")) == 24


# --- the Hub path ------------------------------------------------------------------------------------------


@pytest.fixture
def hub_like_folder(tmp_path) -> Path:
    """A dataset folder laid out like the Hub repo (README configs mapping splits to files), which
    `datasets.load_dataset` loads just as it loads the Hub repo: v1.1 rows in config SFT, v1 rows in config v1,
    and a config that mixes both forms in its splits (which `datasets` cannot cast to one schema)."""
    folder = tmp_path / "hub"
    files = {
        "SFT/math/math_v1.1.jsonl": [v11_row("m1"), v11_row("m2", "off")],
        "SFT/code/code_v1.1.jsonl": [v11_row("c1", category="code")],
        "v1/math/math_v1.jsonl": [v1_row("old1"), v1_row("old2", "off", license="")],
    }
    for name, rows in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(folder / name, rows)
    (folder / "README.md").write_text(
        textwrap.dedent(
            """\
            ---
            configs:
            - config_name: SFT
              data_files:
              - {split: math, path: SFT/math/*.jsonl}
              - {split: code, path: SFT/code/*.jsonl}
            - config_name: v1
              data_files:
              - {split: math, path: v1/math/*.jsonl}
            - config_name: mixed
              data_files:
              - {split: math, path: SFT/math/*.jsonl}
              - {split: old, path: v1/math/*.jsonl}
            ---
            """
        )
    )
    return folder


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_iter_hub_rows_streams_a_real_datasets_load(hub_like_folder, offline):
    every = list(iter_hub_rows(str(hub_like_folder), config="SFT"))
    assert [(r.file.rsplit("/", 1)[1], r.line, r.row["input"][0]["content"]) for r in every] == [
        ("math", 1, "m1"),
        ("math", 2, "m2"),
        ("code", 1, "c1"),
    ]
    assert every[0].where == f"hub:{hub_like_folder}/math:1"
    math = list(iter_hub_rows(str(hub_like_folder), split="math", config="SFT"))
    assert [r.row["input"][0]["content"] for r in math] == ["m1", "m2"]
    v1 = list(iter_hub_rows(str(hub_like_folder), config="v1"))
    assert [normalise_row(r.row)["input"] for r in v1] == [[{"role": "user", "content": f"old{i}"}] for i in (1, 2)]


def test_a_hub_split_that_cannot_be_read_is_reported_not_raised(hub_like_folder, offline):
    reads = list(iter_hub_rows(str(hub_like_folder), config="mixed"))
    assert [r.error is None for r in reads] == [True, True, False]
    assert reads[2].where == f"hub:{hub_like_folder}/old:1" and "stream failed" in reads[2].error


def test_ingest_from_a_hub_id(hub_like_folder, tmp_path, monkeypatch, offline):
    """The live Hub is out of reach here: faked at the network boundary only. The access check gets the Hub's
    answer for a public dataset, and `datasets.load_dataset` is redirected from the Hub id to the same call on
    a local folder; everything else is the real code path."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import DatasetInfo

    monkeypatch.setattr(HfApi, "dataset_info", lambda self, repo_id, **_: DatasetInfo(id=repo_id, gated=False))
    real_load_dataset = datasets.load_dataset
    calls = []

    def load_dataset_offline(path, *args, **kwargs):
        calls.append((path, kwargs))
        assert path == HUB_ID
        return real_load_dataset(str(hub_like_folder), *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset_offline)
    result = invoke("ingest", HUB_ID, "--config", "v1", "--split", "math", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "2 rows, 1 written, 0 skipped, 1 rejected" in result.output
    assert f"hub:{HUB_ID}/math:2: license: '' should be non-empty" in result.output
    assert calls == [(HUB_ID, {"name": "v1", "split": "math", "streaming": True})]
    assert written_rows(tmp_path / "out") == [expected_v11(v11_row("old1", version="v1"))]
    not_an_id = invoke("ingest", "no-such-thing", "--out", str(tmp_path / "o2"))
    assert not_an_id.exit_code == 2 and "not a Hub dataset id" in not_an_id.output


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("env", "cause"),
    [
        ({"HF_HUB_OFFLINE": "1"}, "offline (HF_HUB_OFFLINE=1) and not in the local cache"),
        # The discard port of this machine: nothing listens, the connection is refused at once.
        ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot reach the Hub at http://127.0.0.1:9 (ConnectError: "),
        ({}, "cannot reach the Hub at https://huggingface.co (ConnectError: "),
    ],
    ids=["HF_HUB_OFFLINE=1", "hub-refuses-connections", "no-network"],
)
def test_ingest_from_a_hub_out_of_reach_is_one_error_line(tmp_path, env, cause):
    """The installed console script in its own process, nothing faked: one `error:` line naming the dataset
    and the cause, exit code 2, nothing written. Fast: huggingface_hub's own retries (about 25 s) never start,
    and HF_HUB_ETAG_TIMEOUT bounds the one request on a network that drops packets instead of refusing."""
    if not env and _resolves("huggingface.co"):
        pytest.skip("huggingface.co resolves here: the no-network case runs on a machine without network")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    environ |= {"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_ETAG_TIMEOUT": "5", **env}  # an empty cache
    script = str(Path(sys.executable).parent / "thinktoggle")
    done = subprocess.run(
        [script, "ingest", HUB_ID, "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"error: Hub dataset {HUB_ID}: {cause}"), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


# --- streaming ---------------------------------------------------------------------------------------------

MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys, tempfile
    from pathlib import Path
    from thinktoggle.curation.ingest import ingest

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    source, out = sys.argv[1], Path(sys.argv[2])
    warm = out / "warm.jsonl"
    warm.write_text(Path(source).open().readline())
    ingest([str(warm)], out / "warm")  # imports and first-use allocations, before the baseline
    base = peak_mib()
    summary = ingest([source], out / "big")
    print(json.dumps({"base": base, "peak": peak_mib(), "rows": summary.rows, "written": summary.written}))
    """
)


def test_ingest_streams_with_bounded_memory(tmp_path):
    """200k rows (~140 MB of jsonl): peak RSS grows by far less than the file, let alone the parsed rows."""
    n, pad = 200_000, "x" * 400
    source = tmp_path / "big.jsonl"
    line = json.dumps(v11_row("What is QUESTION? " + pad, answer="ANSWER")) + "\n"
    with source.open("w") as handle:
        for i in range(n):
            handle.write(line.replace("QUESTION", f"{i} + {i}").replace("ANSWER", str(2 * i)))
    size_mib = source.stat().st_size / 2**20
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(source), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert probe.returncode == 0, probe.stderr
    measured = json.loads(probe.stdout)
    assert measured["rows"] == measured["written"] == n
    growth = measured["peak"] - measured["base"]
    assert size_mib > 120 and growth < 64, (growth, size_mib)
