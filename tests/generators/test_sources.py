"""Prompt sources: files with a column mapping, HF datasets (local, through `datasets`), published rows."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thinktoggle.generators.sources import SourceConfig, iter_source, load_prompts, row_to_prompt

ROWS = [
    {"problem": "What is 2 + 3?", "answer": 5, "kind": "math", "unit": None},
    {
        "problem": "Write f(x) returning x.",
        "answer": None,
        "kind": "code",
        "unit": json.dumps({"entry_point": "f", "test": "def check(c):\n    assert c(1) == 1\n"}),
    },
]
COLUMNS = {"question": "problem", "expected_answer": "answer", "tests": "unit", "category": "kind"}


def check_rows(records):
    assert [r.prompt for r in records] == [row["problem"] for row in ROWS]
    assert records[0].expected_answer == "5" and records[0].category == "math" and records[0].tests is None
    assert records[1].tests == {"entry_point": "f", "test": "def check(c):\n    assert c(1) == 1\n"}
    assert records[1].category == "code"
    assert all(r.output == "" and r.input[0]["role"] == "user" and len(r.input) == 1 for r in records)


def test_jsonl_and_parquet_with_a_column_mapping(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), parquet)
    for path in (jsonl, parquet):
        prompts, errors = load_prompts([SourceConfig(type="file", path=str(path), columns=COLUMNS, license="mit")])
        assert not errors
        check_rows(prompts)
        assert {r.license for r in prompts} == {"mit"}


def test_bad_rows_name_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"problem": "ok?"})
        + "\n"
        + json.dumps({"q": "x"})
        + "\n"
        + "{oops\n"
        + json.dumps({"problem": "t", "unit": json.dumps({"entry_point": "f"})})
        + "\n"
        + json.dumps({"problem": "c", "kind": "poetry"})
        + "\n"
    )
    prompts, errors = load_prompts([SourceConfig(path=str(path), columns=COLUMNS)])
    assert [r.prompt for r in prompts] == ["ok?"]
    got = [(e.line, e.field) for e in errors]
    assert got == [(2, "problem"), (3, "(row)"), (4, "unit"), (5, "category")]
    assert all(e.file == str(path) and e.error for e in errors)


def test_hf_dataset_through_load_dataset_offline(tmp_path, monkeypatch):
    """The Hub code path (`datasets.load_dataset(id, split=...)`) on a local dataset folder: no network."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps({"problem": "train q", "answer": 1}) + "\n")
    (folder / "test.jsonl").write_text(
        "".join(json.dumps({k: r[k] for k in ("problem", "answer")}) + "\n" for r in ROWS)
    )
    config = SourceConfig(type="hf", path=str(folder), split="test", columns=COLUMNS, category="math")
    prompts = [r for _, r in iter_source(config)]
    assert [r.prompt for r in prompts] == [row["problem"] for row in ROWS]
    assert prompts[0].expected_answer == "5"
    limited = list(iter_source(SourceConfig(type="hf", path=str(folder), split="test", columns=COLUMNS, limit=1)))
    assert len(limited) == 1


def test_hf_source_errors_name_the_dataset_and_the_cause(tmp_path, monkeypatch):
    """A misspelled Hub id: the Hub's answer is faked at the network boundary only (HfApi.dataset_info raises
    huggingface_hub's own RepositoryNotFoundError, as the Hub's 401 RepoNotFound makes it). A missing split of a
    local dataset folder is real."""
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError
    from huggingface_hub.utils import httpx

    from thinktoggle.schemas.hub import HubError

    def not_found(self, repo_id, **kwargs):
        request = httpx.Request("GET", f"https://huggingface.co/api/datasets/{repo_id}")
        raise RepositoryNotFoundError("401 Client Error.", response=httpx.Response(401, request=request))

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # whatever the caller's env says
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", not_found)
    typo = SourceConfig(type="hf", path="AI-MO/NuminaMath-CoTT", columns=COLUMNS)
    with pytest.raises(HubError, match=r"^Hub dataset AI-MO/NuminaMath-CoTT: no such dataset on the Hub \(misspelled"):
        load_prompts([typo])
    folder = tmp_path / "local"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps({"problem": "q"}) + "\n")
    with pytest.raises(HubError, match=r"local: no split 'test'; it has train$"):
        load_prompts([SourceConfig(type="hf", path=str(folder), split="test", columns=COLUMNS)])


def test_saved_dataset_dict(tmp_path):
    import datasets

    rows = [{k: r[k] for k in ("problem", "answer")} for r in ROWS]
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "saved"))
    config = SourceConfig(type="hf", path=str(tmp_path / "saved"), split="validation", columns=COLUMNS)
    assert [r.prompt for _, r in iter_source(config)] == [row["problem"] for row in ROWS]
    with pytest.raises(ValueError, match="no split 'train'"):
        list(iter_source(SourceConfig(type="hf", path=str(tmp_path / "saved"), split="train")))


def test_published_rows_reuse_their_input(tmp_path):
    row = {
        "input": [
            {"role": "user", "content": "Say hi."},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "Again."},
        ],
        "output": "<think>\nx\n</think>\n\nhi",
        "category": "chat",
        "license": "cc-by-4.0",
        "reasoning": "on",
        "generator": "DeepSeek-R1",
        "used_in_training": "yes",
        "version": "v1.1",
        "system_prompt": "detailed thinking on",
    }
    path = tmp_path / "pub.jsonl"
    path.write_text(
        json.dumps(row)
        + "\n"
        + json.dumps({**row, "reasoning": "off", "output": "hi", "system_prompt": "detailed thinking off"})
        + "\n"
    )
    prompts, errors = load_prompts([SourceConfig(type="published", path=str(path), category="chat")])
    assert not errors and len(prompts) == 1  # both modes of one prompt: one prompt
    assert prompts[0].input == row["input"] and prompts[0].output == "" and prompts[0].category == "chat"


def test_procedural_source():
    prompts, errors = load_prompts(
        [SourceConfig(type="procedural", path="arithmetic", limit=7, seed=2, params={"modulus": 13})]
    )
    assert len(prompts) == 7 and not errors
    assert all("modulo 13" in r.prompt and r.metadata["procedural"]["task"] == "arithmetic" for r in prompts)


@pytest.mark.parametrize(
    ("tests", "expected"),
    [
        ([{"input": "1\n", "output": "2\n"}], {"stdio": [{"input": "1\n", "output": "2\n"}]}),
        ('[{"input": "", "output": "ok"}]', {"stdio": [{"input": "", "output": "ok"}]}),
    ],
)
def test_a_bare_list_of_cases_is_read_as_stdio_tests(tests, expected):
    record = row_to_prompt(
        {"question": "Echo.", "tests": tests}, SourceConfig(type="file", path="x.jsonl", category="code")
    )
    assert record.tests == expected


@pytest.mark.parametrize("tests", [[1, 2], [{"stdin": "x"}], 42, "[1]"])
def test_malformed_tests_are_a_value_error_naming_the_column(tests):
    with pytest.raises(ValueError, match="^tests: "):
        row_to_prompt({"question": "Echo.", "tests": tests}, SourceConfig(type="file", path="x.jsonl", category="code"))
