"""The generate stage against a real OpenAI-compatible server: vLLM's api_server on the tiny Llama, on loopback.

One server for the module, and a standby started beside it (starting takes most of the test time, so the two
start together): the last test kills the first with SIGKILL mid-run and reruns against the standby.
"""

import threading
import time
from collections import Counter
from dataclasses import replace

import pytest
from vllm_server import SERVED_NAME, Server

from thinktoggle.core.layout import kept_dir
from thinktoggle.generators.engines.base import SamplingConfig
from thinktoggle.generators.engines.config import EngineConfig
from thinktoggle.generators.generate import GenerateConfig, run_generate
from thinktoggle.generators.procedural import procedural_records
from thinktoggle.generators.sources import write_prompts
from thinktoggle.schemas.io import iter_records


@pytest.fixture(scope="module")
def servers(tiny_model_dir, tmp_path_factory):
    both = [Server(tiny_model_dir, tmp_path_factory.mktemp("server")) for _ in range(2)]
    try:
        for srv in both:
            srv.launch()
        for srv in both:
            srv.wait_ready()
        yield both
    finally:
        for srv in both:
            srv.kill()


@pytest.fixture(scope="module")
def server(servers):
    return servers[0]


def config_for(server, **changes) -> GenerateConfig:
    values = dict(
        engine=EngineConfig(kind="openai", base_url=server.base_url, concurrency=8, timeout=30, retries=1, backoff=0.1),
        teacher_on=SERVED_NAME,
        sampling_on=SamplingConfig(n=2, temperature=0.6, top_p=0.95, max_tokens=16),
        sampling_off=SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=16),
        progress=False,
    )
    return GenerateConfig(**{**values, **changes})


def kept(out_dir):
    return [r for _, r in iter_records([kept_dir(out_dir)])]


def test_openai_server_pairs_and_provenance(server, tmp_path):
    prompts = procedural_records("arithmetic", 4, seed=2)
    src = write_prompts(prompts, tmp_path / "p.parquet")
    stats = run_generate(config_for(server), [src], tmp_path / "out")
    assert (stats.n_in, stats.kept, stats.n_failed) == (12, 12, 0)
    records = kept(tmp_path / "out")
    counts = Counter((r.pair_id, r.reasoning) for r in records)
    assert counts == {**{(p.pair_id, "on"): 2 for p in prompts}, **{(p.pair_id, "off"): 1 for p in prompts}}
    for r in records:
        s = r.sampling
        assert r.system_prompt == f"detailed thinking {r.reasoning}" and r.generator == SERVED_NAME
        assert s["engine"] == "openai" and s["engine_version"].startswith("openai-python")
        assert s["finish_reason"] in ("stop", "length") and 0 < s["completion_tokens"] <= 16 and s["prompt_tokens"] > 0
        assert all(v.filter == "toggle" and v.verdict == "fail" and v.reason for v in r.verdicts)
    # greedy off answers repeat exactly; qwen3's enable_thinking rides in extra_body to the same template
    qwen3 = kept_by_key(
        run_generate(config_for(server, toggle_on="qwen3", toggle_off="qwen3"), [src], tmp_path / "q")
        and kept(tmp_path / "q")
    )
    nemotron = kept_by_key(records)
    assert {k: v for k, v in qwen3.items() if k[1] == "off"} == {k: v for k, v in nemotron.items() if k[1] == "off"}


def kept_by_key(records):
    return {(r.pair_id, r.reasoning, r.sample): r.output for r in records}


def test_server_killed_mid_run_failures_recorded_then_rerun_completes(servers, tmp_path):
    server, standby = servers
    prompts = procedural_records("arithmetic", 40, seed=3)
    src = write_prompts(prompts, tmp_path / "p.parquet")
    config = config_for(server, shard_size=2, sampling_on=SamplingConfig(n=1, temperature=0.6, max_tokens=16))
    out = tmp_path / "out"
    result = {}
    worker = threading.Thread(target=lambda: result.update(stats=run_generate(config, [src], out)))
    worker.start()
    deadline = time.monotonic() + 120
    while (
        time.monotonic() < deadline and len(list(kept_dir(out).glob("*.parquet")) if kept_dir(out).exists() else []) < 4
    ):
        time.sleep(0.02)
    server.kill()
    worker.join(timeout=180)
    stats = result["stats"]
    assert stats.n_in == 80 and 0 < stats.kept < 80
    assert stats.failed["request_failed"] == 80 - stats.kept
    failed = [r for _, r in iter_records([out / "failed"])]
    assert len(failed) == 80 - stats.kept
    assert all(r.output == "" and r.verdicts[0].filter == "generate" for r in failed)
    assert all(
        "APIConnectionError" in r.verdicts[0].reason or "APITimeoutError" in r.verdicts[0].reason for r in failed
    )
    before = {r.id for r in kept(out)}

    # the server is back (the standby, at its own address: base_url is not part of the plan)
    config = replace(config, engine=replace(config.engine, base_url=standby.base_url))
    stats = run_generate(config, [src], out)
    assert (stats.n_in, stats.kept, stats.n_failed) == (80, 80, 0)
    records = kept(out)
    keys = [(r.pair_id, r.reasoning, r.sample) for r in records]
    assert len(keys) == len(set(keys)) == 80 and before <= {r.id for r in records}
    assert not list((out / "failed").glob("*.parquet"))
