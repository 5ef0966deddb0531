def test_vllm_engine_generates_on_the_tiny_model(vllm_llm):
    from vllm import SamplingParams

    outs = vllm_llm.chat(
        [
            [
                {"role": "system", "content": "detailed thinking on"},
                {"role": "user", "content": "What is 1 + 2?"},
            ]
        ],
        SamplingParams(n=3, temperature=0.6, top_p=0.95, max_tokens=8, seed=0),
    )
    assert len(outs[0].outputs) == 3
    assert all(len(c.token_ids) > 0 for c in outs[0].outputs)
