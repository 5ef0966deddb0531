"""Thinking budgets on the real engines: vLLM offline (the logits processor) and vLLM's OpenAI server (two requests).

The untrained tiny Llama almost never writes `<think>` itself, so the model here is a copy whose chat template
opens the block in the generation prompt (as DeepSeek-R1's and Qwen3's do): every sample starts inside it and
writes near-uniform random tokens, so without a budget it almost never closes it. Sampling is at temperature 1
with fixed seeds; the bounds hold for every sample, read from the raw token ids (the shares asserted on top
leave wide margins: vLLM's CPU sampling is not bit-identical from one run to the next).
"""

import pytest
from transformers import AutoTokenizer
from vllm_server import SERVED_NAME, Server

from thinktoggle.generators.engines.base import ChatRequest, SamplingConfig
from thinktoggle.generators.engines.openai_server import OpenAIEngine, end_of_line
from thinktoggle.generators.engines.thinking_budget import ThinkTags
from thinktoggle.generators.engines.vllm_offline import VLLMEngine, has_budget_processor

BUDGETS = (0, 3, 8, 20)
PROMPTS = 64
MAX_TOKENS = 40  # > 22 + 2: room for the largest budget, its grace, the end tag and one answer token


@pytest.fixture(scope="module")
def engine(thinking_vllm_engine):
    return thinking_vllm_engine  # conftest's: the tiny model, its generation prompt ending in `<think>\n`


def requests(budget, count=PROMPTS, max_tokens=MAX_TOKENS, model=""):
    sampling = SamplingConfig(n=1, temperature=1.0, top_p=1.0, max_tokens=max_tokens, thinking_budget=budget)
    messages = [[{"role": "user", "content": f"What is {i} + {i % 7} * 3?"}] for i in range(count)]
    return [ChatRequest(messages=m, sampling=sampling, model=model, seed=i) for i, m in enumerate(messages)]


def raw(engine, batch):
    """vLLM's own outputs (token ids) for the engine's sampling params."""
    outputs = engine.llm.chat([r.messages for r in batch], [engine.sampling_params(r) for r in batch], use_tqdm=False)
    return [(o.prompt_token_ids, o.outputs[0]) for o in outputs]


@pytest.fixture(scope="module")
def sampled(engine):
    """{budget: [(request, prompt ids, output)]}, all budgets and the unbudgeted control in one batch."""
    batches = {b: requests(b) for b in (*BUDGETS, None)}
    flat = [r for batch in batches.values() for r in batch]
    outs = iter(raw(engine, flat))
    return {b: [(r, *next(outs)) for r in batch] for b, batch in batches.items()}


def test_engine_registers_the_processor(engine):
    assert engine.budgets and has_budget_processor(engine.llm)


@pytest.mark.parametrize("budget", BUDGETS)
def test_budget_holds_on_every_sample(engine, sampled, budget):
    tags = engine.tags
    (end,) = tags.end
    limit = budget + budget // 10
    closed = 0
    for _, prompt_ids, out in sampled[budget]:
        ids = list(out.token_ids)
        assert prompt_ids[-2:] == [tags.start[0], *tokenize(engine, "\n")]  # the template opened the block
        if end not in ids:  # only a sample that stopped (end of turn) inside the block, before its budget
            assert out.finish_reason == "stop" and len(ids) <= limit
            continue
        closed += 1
        k = ids.index(end)  # thinking tokens: everything before the end tag
        assert k <= limit
        if budget == 0:
            assert k == 0
        if k > budget:  # past the budget the model was finishing its line: no newline before the end tag
            assert not set(ids[budget - 1 : k - 1]) & tags.newlines
        assert len(ids) >= k + 2  # the answer went on after the end tag (at least its first token)
    # ~5% of samples end their turn inside the block first; generous: vLLM's CPU sampling varies with the run
    assert closed >= 0.75 * PROMPTS


def test_budgets_cut_what_the_unbudgeted_model_would_not_close(engine, sampled):
    (end,) = engine.tags.end
    unclosed = [out for _, _, out in sampled[None] if end not in out.token_ids[:23]]
    assert len(unclosed) >= 0.75 * PROMPTS  # so the closes above are the processor's doing


@pytest.mark.parametrize("budget", BUDGETS)
def test_engine_counts_agree_with_the_token_ids(engine, sampled, budget):
    (end,) = engine.tags.end
    for request, prompt_ids, out in sampled[budget]:
        thinking, cut = engine._thinking(request, prompt_ids, out.token_ids)
        ids = list(out.token_ids)
        assert thinking == (ids.index(end) if end in ids else len(ids))
        if budget == 0:
            assert cut


def test_generate_fills_thinking_tokens_and_cut(engine):
    batch = requests(8, count=8) + requests(None, count=4, max_tokens=12)
    results = engine.generate(batch)
    budgeted, free = results[:8], results[8:]
    for (c,) in budgeted:
        assert c.error is None and c.thinking_tokens is not None and c.thinking_tokens <= 8
        if c.think_cut:
            assert "</think>" in c.text
    assert sum(c.think_cut for (c,) in budgeted) >= 5
    for (c,) in free:  # unbudgeted samples are counted too, never cut
        assert not c.think_cut and c.thinking_tokens is not None and c.thinking_tokens <= 12


def test_a_wrapped_llm_without_the_processor_refuses_a_budget(vllm_llm):
    engine = VLLMEngine.from_llm(vllm_llm)
    assert not engine.budgets
    with pytest.raises(ValueError, match="no thinking-budget logits processor"):
        engine.generate(requests(8, count=1))
    assert engine.generate(requests(None, count=1, max_tokens=4))[0][0].error is None


def tokenize(engine, text):
    return engine.llm.get_tokenizer().encode(text, add_special_tokens=False)


def test_tags_of_the_engine(engine):
    tokenizer = engine.llm.get_tokenizer()
    assert engine.tags == ThinkTags.from_tokenizer(tokenizer)
    assert tokenizer.decode(list(engine.tags.start)) == "<think>"


def test_generate_stage_records_the_budget(engine, thinking_model_dir, tmp_path):
    from thinktoggle.generators.engines.config import EngineConfig
    from thinktoggle.generators.generate import GenerateConfig, run_generate
    from thinktoggle.generators.procedural import procedural_records
    from thinktoggle.generators.sources import write_prompts
    from thinktoggle.schemas.io import iter_records

    src = write_prompts(procedural_records("arithmetic", 4, seed=0), tmp_path / "prompts.parquet")
    config = GenerateConfig(
        engine=EngineConfig(kind="vllm"),
        teacher_on=str(thinking_model_dir),
        sampling_on=SamplingConfig(n=2, temperature=1.0, top_p=1.0, max_tokens=24, thinking_budget=5),
        sampling_off=SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=8),
        progress=False,
    )
    run_generate(config, [src], tmp_path / "out", engine=engine)
    records = [r for _, r in iter_records([tmp_path / "out" / "kept"])]
    on = [r.sampling for r in records if r.reasoning == "on"]
    assert len(on) == 8
    for s in on:
        assert (s["thinking_budget"], s["thinking_grace"]) == (5, 0.1)
        assert s["thinking_tokens"] is not None and s["thinking_tokens"] <= 5 and isinstance(s["think_cut"], bool)
    assert any(s["think_cut"] for s in on)
    off = [r.sampling for r in records if r.reasoning == "off"]
    assert off and not any("thinking_budget" in s for s in off)  # unbudgeted provenance is unchanged


# ------------------------------------------------------------------ the OpenAI-compatible engine (two requests)


@pytest.fixture(scope="module")
def server(thinking_model_dir, tmp_path_factory):
    """vLLM's OpenAI server on the same thinking model (the server of test_generate_openai)."""
    srv = Server(thinking_model_dir, tmp_path_factory.mktemp("server"))
    srv.launch()
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.kill()


@pytest.mark.parametrize("budget", [0, 3, 8])
def test_openai_engine_budget(server, thinking_model_dir, budget):
    tokenizer = AutoTokenizer.from_pretrained(thinking_model_dir)
    engine = OpenAIEngine(server.base_url, concurrency=8, timeout=60, retries=1, backoff=0.1)
    limit = budget + budget // 10
    results = engine.generate(requests(budget, count=16, model=SERVED_NAME))
    cuts = 0
    for (c,) in results:
        assert c.error is None, c.error
        if c.finish_reason == "stop" and "</think>" not in c.text:  # ended inside the block, before the budget
            assert c.thinking_tokens <= limit and not c.think_cut
            continue
        thinking, closed, _answer = c.text.partition("</think>")
        assert closed and c.thinking_tokens <= limit
        assert c.completion_tokens > c.thinking_tokens  # the second request answered (at least one token)
        assert len(tokenizer.encode(thinking, add_special_tokens=False)) <= 2 * limit  # text, not just a count
        if budget == 0:
            assert thinking == "" and c.thinking_tokens == 0 and c.think_cut
        cuts += c.think_cut
    assert cuts >= 10


def test_openai_engine_unbudgeted_is_one_request(server):
    engine = OpenAIEngine(server.base_url, concurrency=4, timeout=60, retries=1, backoff=0.1)
    results = engine.generate(requests(None, count=4, max_tokens=8, model=SERVED_NAME))
    assert all(c.error is None and c.thinking_tokens is None and not c.think_cut for (c,) in results)


@pytest.mark.parametrize(
    ("tokens", "budget", "kept"),
    [(["a", "b", "c", "d"], 2, 4), (["a", "\n", "c", "d"], 3, 4), (["a", "b\n", "c", "d"], 2, 2),
     (["a", "b", "c.\n", "d"], 2, 3), (["\n", "b"], 0, 1), ([], 3, 0)],
)  # fmt: skip
def test_end_of_line(tokens, budget, kept):
    assert end_of_line(tokens, budget) == tokens[:kept]


# ------------------------------------------------------------------ the transformers engine (an HF logits processor)


@pytest.mark.parametrize("budget", [0, 3])
def test_transformers_engine_budget(thinking_model_dir, budget):
    from thinktoggle.generators.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(thinking_model_dir, batch_size=8)
    results = engine.generate(requests(budget, count=8, max_tokens=12) + requests(None, count=2, max_tokens=12))
    budgeted, free = results[:8], results[8:]
    for (c,) in budgeted:
        thinking, closed, _ = c.text.partition("</think>")
        assert c.thinking_tokens <= budget + budget // 10
        if budget == 0:
            assert c.think_cut and thinking == "" and closed
    assert sum(c.think_cut and "</think>" in c.text for (c,) in budgeted) >= 5
    for (c,) in free:
        assert not c.think_cut and c.thinking_tokens is not None
