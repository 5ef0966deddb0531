"""The trained checkpoint's chat template switches the mode two ways: Nemotron's system prompt, and
`enable_thinking` (the keyword vLLM's server and the evaluation harnesses pass). The same conversation renders to
the same tokens either way; and a real vLLM OpenAI server (on loopback) on a tiny model trained here to follow
the toggle answers `chat_template_kwargs={"enable_thinking": false}` without a think block, and `true` with one."""

from __future__ import annotations

import pytest
from vllm_server import SERVED_NAME, Server

from thinktoggle.schemas.think import split_output

QUESTION = [{"role": "user", "content": "What is 3 + 4 * 3? Put the final answer in \\boxed{}."}]


@pytest.mark.parametrize("mode", ["on", "off"])
def test_system_prompt_and_enable_thinking_render_the_same_tokens(tiny_model_dir, mode):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    by_system = tokenizer.apply_chat_template(
        [{"role": "system", "content": f"detailed thinking {mode}"}, *QUESTION], add_generation_prompt=True
    )
    by_kwarg = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, enable_thinking=mode == "on")
    other = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, enable_thinking=mode != "on")
    assert by_system == by_kwarg and by_kwarg != other
    # no switch at all: Llama-Nemotron's default, thinking off
    assert tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True) == (by_kwarg if mode == "off" else other)


@pytest.fixture(scope="module")
def toggle_model(tmp_path_factory):
    """A tiny Llama trained (seconds) on mod-chain pairs: `<think>` first when on, the boxed answer when off."""
    from thinktoggle.generators.procedural import procedural_answer, procedural_records
    from thinktoggle.generators.sources import write_prompts
    from thinktoggle.schemas.think import compose_output
    from thinktoggle.training.trainer import TinyModelConfig, TrainConfig, run_train

    root = tmp_path_factory.mktemp("toggle")
    records = []
    for prompt in procedural_records("mod_chain", 48, seed=5):
        for mode in ("on", "off"):
            reasoning, answer = procedural_answer(prompt, mode)
            records.append(prompt.with_output(compose_output(reasoning, answer), reasoning=mode, system_prompt=None))
    data = write_prompts(records, root / "data" / "pairs.parquet")
    config = TrainConfig(
        tiny=TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, vocab_size=300),
        seq_len=128,
        batch_size=8,
        max_steps=120,
        lr=0.005,
        warmup_steps=10,
        save_every=0,
        threads=1,
        progress=False,
    )
    run_train(config, [data], root / "train")
    return root / "train" / "model"


@pytest.fixture(scope="module")
def server(toggle_model, tmp_path_factory):
    """vLLM's OpenAI api_server on the trained tiny model (conftest's `Server`), killed at the end."""
    srv = Server(toggle_model, tmp_path_factory.mktemp("server"))
    srv.launch()
    try:
        srv.wait_ready()
        yield srv.base_url
    finally:
        srv.kill()


def test_vllm_server_switches_thinking_by_enable_thinking(server):
    from openai import OpenAI

    from thinktoggle.generators.procedural import procedural_records

    client = OpenAI(base_url=server, api_key="none")
    prompts = procedural_records("mod_chain", 4, seed=0, split="heldout")
    for prompt in prompts:
        answers = {}
        for thinking in (True, False):
            response = client.chat.completions.create(
                model=SERVED_NAME,
                messages=prompt.input,
                temperature=0.0,
                max_tokens=48,
                extra_body={"chat_template_kwargs": {"enable_thinking": thinking}},
            )
            answers[thinking] = response.choices[0].message.content
        assert "<think>" not in answers[False] and "</think>" not in answers[False], answers[False]
        assert split_output(answers[True]).problem("on") is None, answers[True]  # one closed think, then an answer
        # the same as asking by system prompt: the template renders the same tokens, greedy decodes the same
        by_system = client.chat.completions.create(
            model=SERVED_NAME,
            messages=[{"role": "system", "content": "detailed thinking off"}, *prompt.input],
            temperature=0.0,
            max_tokens=48,
        )
        assert by_system.choices[0].message.content == answers[False]
