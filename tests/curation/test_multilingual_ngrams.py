"""n-grams on scripts without spaces: a Japanese sentence is one `\\w+` run, so word n-grams never matched it.
Decontamination and MinHash dedup now take one token per character there (curation/dedup.py: WORD)."""

from __future__ import annotations

import json

from _curation_fixtures import read_records, write_records

from thinktoggle.curation.decontaminate import BenchmarkConfig, DecontaminateConfig, run_decontaminate, words
from thinktoggle.curation.dedup import DedupConfig, MinHashConfig, RegexWordTokenizer, run_dedup
from thinktoggle.schemas.record import Record

BENCH = "東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。"


def record(prompt: str) -> Record:
    return Record(input=[{"role": "user", "content": prompt}], category="chat", reasoning="off", output="はい。")


def test_japanese_is_one_token_per_character_and_latin_words_stay_words():
    assert words("日本語の文章です。Hello wörld 42、テスト") == [*"日本語の文章です", "hello", "wörld", "42", *"テスト"]
    assert RegexWordTokenizer().word_tokenize("x+1=2 ですか") == ["x", "+", "1", "=", "2", "で", "す", "か"]


def test_a_japanese_benchmark_sentence_inside_a_prompt_is_caught(tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"problem": BENCH}, ensure_ascii=False) + "\n")
    contaminated = record("次の文を英語に訳してください：" + BENCH)
    clean = record("大阪の名物料理を三つ教えてください。")
    write_records([contaminated, clean], tmp_path / "in")
    config = DecontaminateConfig(ngram=8, benchmarks=(BenchmarkConfig(name="ja-bench", path=str(bench)),))
    stats = run_decontaminate(config, [tmp_path / "in"], tmp_path / "out")
    assert (stats.n_in, stats.kept, sum(stats.dropped.values())) == (2, 1, 1)
    assert [r.prompt for r in read_records(tmp_path / "out" / "kept")] == [clean.prompt]


def test_minhash_finds_near_duplicate_japanese_prompts(tmp_path):
    first = record("東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。説明してください。")
    near = record("東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。説明して下さい。")
    other = record("富士山の高さは何メートルですか。理由も含めて詳しく説明してください。")
    write_records([first, near, other], tmp_path / "in")
    config = DedupConfig(minhash=MinHashConfig(ngram=3, threshold=0.7))
    stats = run_dedup(config, [tmp_path / "in"], tmp_path / "out")
    assert stats.kept == 2 and stats.dropped == {"near_duplicate_prompt": 1}, stats.to_dict()
