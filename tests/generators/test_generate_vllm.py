"""The generate stage on the real offline vLLM engine (the shared `vllm_llm` on the untrained tiny Llama).

The untrained model writes random text, so most answers break their mode: that they come back kept, with a
toggle verdict naming why, is the behaviour under test.
"""

from collections import Counter

import pytest
from transformers import AutoTokenizer

from thinktoggle.generators.engines.base import SamplingConfig
from thinktoggle.generators.engines.config import EngineConfig
from thinktoggle.generators.engines.vllm_offline import VLLMEngine
from thinktoggle.generators.generate import GenerateConfig, run_generate
from thinktoggle.generators.procedural import procedural_records
from thinktoggle.generators.sources import write_prompts
from thinktoggle.generators.toggle import toggle_request
from thinktoggle.schemas.io import iter_records
from thinktoggle.schemas.think import compose_output, split_output

PROBLEMS = {
    "no_think",
    "unclosed_think",
    "multiple_think",
    "think_not_at_start",
    "empty_think",
    "empty_answer",
    "think_in_off_mode",
    "length",
    "missing_open_think",
}


def kept(out_dir):
    return [r for _, r in iter_records([out_dir / "kept"])]


def prompt_length(tokenizer, messages):
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    prompts = procedural_records("arithmetic", 5, seed=0) + procedural_records("code", 1, seed=0)
    return prompts, write_prompts(prompts, tmp_path_factory.mktemp("p") / "prompts.parquet")


def test_offline_engine_pairs_provenance_and_normalisation(vllm_llm, tiny_model_dir, prompts_file, tmp_path):
    prompts, src = prompts_file
    config = GenerateConfig(
        engine=EngineConfig(kind="vllm"),
        teacher_on=str(tiny_model_dir),
        sampling_on=SamplingConfig(n=2, temperature=0.6, top_p=0.95, max_tokens=24),
        sampling_off=SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=24),
        shard_size=4,
        progress=False,
    )
    engine = VLLMEngine.from_llm(vllm_llm)
    stats = run_generate(config, [src], tmp_path / "out", engine=engine)
    assert (stats.n_in, stats.kept, stats.n_failed) == (18, 18, 0)
    records = kept(tmp_path / "out")
    counts = Counter((r.pair_id, r.reasoning) for r in records)
    assert counts == {**{(p.pair_id, "on"): 2 for p in prompts}, **{(p.pair_id, "off"): 1 for p in prompts}}
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    by_prompt = {p.pair_id: p for p in prompts}
    flagged = Counter()
    for r in records:
        s = r.sampling
        assert r.system_prompt == f"detailed thinking {r.reasoning}" and r.generator == str(tiny_model_dir)
        assert s["engine"] == "vllm" and s["engine_version"] == engine.version and s["teacher"] == str(tiny_model_dir)
        assert s["finish_reason"] in ("stop", "length") and 0 < s["completion_tokens"] <= 24
        assert (s["temperature"], s["top_p"], s["n"]) == ((0.6, 0.95, 2) if r.reasoning == "on" else (0.0, 1.0, 1))
        assert s["seed"] is None and s["max_tokens"] == 24  # CPU: the engine's seed (see VLLMEngine)
        # the engine was sent the mode's Nemotron system prompt: its prompt length is that rendering's
        sent, _ = toggle_request("nemotron", r.reasoning, by_prompt[r.pair_id].input)
        assert s["prompt_tokens"] == prompt_length(tokenizer, sent)
        toggle = [v for v in r.verdicts if v.filter == "toggle"]
        if toggle:
            assert toggle[0].verdict == "fail" and toggle[0].reason in PROBLEMS
            flagged[toggle[0].reason] += 1
            if s["finish_reason"] == "length":
                assert toggle[0].reason == "length"
        else:  # normalised: an on-output is exactly compose(reasoning, answer); off has no think
            parts = split_output(r.output)
            assert parts.problem(r.reasoning) is None
            if r.reasoning == "on":
                assert r.output == compose_output(parts.reasoning, parts.answer)
    assert sum(flagged.values()) > 0  # random text breaks modes: recorded, not dropped
    assert stats.by_filter["toggle"]["flagged"] == dict(flagged)
    # greedy off answers are reproducible: the same command into another folder gives the same ones
    again = kept_records_by_key(run_and_read(config, src, tmp_path / "again", engine))
    assert {k: v for k, v in again.items() if k[1] == "off"} == {
        (r.pair_id, r.reasoning, r.sample): r.output for r in records if r.reasoning == "off"
    }


def run_and_read(config, src, out, engine):
    run_generate(config, [src], out, engine=engine)
    return kept(out)


def kept_records_by_key(records):
    return {(r.pair_id, r.reasoning, r.sample): r.output for r in records}


def test_qwen3_toggle_reaches_the_chat_template(vllm_llm, tiny_model_dir, prompts_file, tmp_path):
    """The tiny template renders `enable_thinking` as Nemotron's system prompt: greedy answers must match."""
    _, src = prompts_file
    greedy = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=12)
    base = GenerateConfig(
        engine=EngineConfig(kind="vllm"),
        teacher_on=str(tiny_model_dir),
        sampling_on=greedy,
        sampling_off=greedy,
        progress=False,
    )
    engine = VLLMEngine.from_llm(vllm_llm)
    nemotron = kept_records_by_key(run_and_read(base, src, tmp_path / "nemotron", engine))
    qwen3 = run_and_read(
        GenerateConfig(**{**base.__dict__, "toggle_on": "qwen3", "toggle_off": "qwen3"}),
        src,
        tmp_path / "qwen3",
        engine,
    )
    assert kept_records_by_key(qwen3) == nemotron
    assert all(r.system_prompt.startswith("detailed thinking") and r.sampling["toggle"] == "qwen3" for r in qwen3)
    slash = run_and_read(
        GenerateConfig(**{**base.__dict__, "toggle_on": "slash", "toggle_off": "slash"}),
        src,
        tmp_path / "slash",
        engine,
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for r in slash:  # sent "/think" or "/no_think"; stored with Nemotron's prompt
        sent = [{"role": "system", "content": "/think" if r.reasoning == "on" else "/no_think"}, *r.input]
        assert r.sampling["prompt_tokens"] == prompt_length(tokenizer, sent)
        assert r.system_prompt == f"detailed thinking {r.reasoning}"


def test_default_engine_settings_start_on_this_machine(tiny_model_dir, prompts_file, tmp_path):
    """Only the kind is given: the stage builds its own vLLM engine with the resolved defaults (without CUDA:
    float32, eager, a KV cache in bytes, a context fitted to it), answers every prompt, and closes it."""
    _, src = prompts_file
    short = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=8)
    config = GenerateConfig(
        engine=EngineConfig(kind="vllm"), teacher_on=str(tiny_model_dir), sampling_on=short, sampling_off=short
    )
    stats = run_generate(config, [src], tmp_path / "out")
    assert (stats.n_in, stats.kept, stats.n_failed) == (12, 12, 0)
    assert all(r.sampling["engine"] == "vllm" for r in kept(tmp_path / "out"))
