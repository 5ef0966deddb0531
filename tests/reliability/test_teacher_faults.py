"""Teacher faults: the generate stage against a REAL vLLM OpenAI server (the tiny Llama) behind a seeded
fault-injecting proxy on loopback (tests/reliability/fault_proxy.py): 500s, 429s with Retry-After, stalls past
the client timeout, connections dropped mid-body and malformed JSON.

Checked: every sample ends generated or failed-with-reason (in == kept + failed, on disk too); reruns complete
the failed ones without duplicates; from the proxy's own log: Retry-After is honoured, other retries back off,
and no more than `concurrency` requests are ever in flight.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from reliability_helpers import load_test_module

from thinktoggle.core.layout import failed_dir, kept_dir
from thinktoggle.generators.engines.base import SamplingConfig
from thinktoggle.generators.engines.config import EngineConfig
from thinktoggle.generators.generate import GenerateConfig, run_generate
from thinktoggle.generators.procedural import procedural_records
from thinktoggle.generators.sources import write_prompts
from thinktoggle.schemas.io import iter_records

from fault_proxy import FAULTS, FaultProxy  # isort: skip

CONCURRENCY, TIMEOUT_S, BACKOFF_S, RETRY_AFTER_S, RETRIES = 3, 2.0, 0.2, 1, 2
EPS = 0.05  # clock granularity between the client's sleep and the proxy's timestamps


@pytest.fixture(scope="module")
def teacher(tiny_model_dir, tmp_path_factory):
    """vLLM's OpenAI api_server on the tiny model, started by the generators suite's own launcher."""
    server_module = load_test_module("tests/generators/test_generate_openai.py", "generators_openai_server")
    server = server_module.Server(tiny_model_dir, tmp_path_factory.mktemp("teacher"))
    server.launch()
    try:
        server.wait_ready()
        yield server, server_module.SERVED_NAME
    finally:
        server.kill()


def fault_config(base_url: str, served: str) -> GenerateConfig:
    return GenerateConfig(
        engine=EngineConfig(
            kind="openai",
            base_url=base_url,
            concurrency=CONCURRENCY,
            timeout=TIMEOUT_S,
            retries=RETRIES,
            backoff=BACKOFF_S,
        ),
        teacher_on=served,
        sampling_on=SamplingConfig(n=2, temperature=0.6, top_p=0.95, max_tokens=8),
        sampling_off=SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=8),
        shard_size=8,  # one shard: the whole batch in flight together, so the bound is what limits it
        progress=False,
    )


def max_overlap(hits) -> int:
    """Most requests in flight at once, from the proxy's log. A stalled request counts until the client's
    timeout (when it gives up and frees its slot), however late the proxy notices the closed socket."""
    events = []
    for h in hits:
        end = min(h.ended, h.arrived + TIMEOUT_S) if h.fault == "stall" else h.ended
        events += [(h.arrived, 1), (end, -1)]
    now = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        now += step
        peak = max(peak, now)
    return peak


def check_retry_timing(hits) -> dict[str, int]:
    """Each retry of a sample came no earlier than the client may send it. Returns the retries checked per fault."""
    by_key = defaultdict(list)
    for h in sorted(hits, key=lambda h: h.arrived):
        by_key[h.key].append(h)
    checked: dict[str, int] = defaultdict(int)
    for attempts in by_key.values():
        for attempt, (this, following) in enumerate(zip(attempts, attempts[1:], strict=False)):
            gap = following.arrived - this.ended
            if this.fault == "429":
                assert gap >= RETRY_AFTER_S - EPS, (
                    f"Retry-After {RETRY_AFTER_S}s not honoured: retried after {gap:.3f}s"
                )
            elif this.fault == "stall":
                assert following.arrived - this.arrived >= TIMEOUT_S - EPS, "a stalled request retried before timeout"
            elif this.fault != "ok":  # exponential backoff with jitter in [0.5, 1.5)
                floor = BACKOFF_S * 2**attempt * 0.5
                assert gap >= floor - EPS, f"{this.fault}: retry {attempt + 1} after {gap:.3f}s < backoff {floor:.3f}s"
            checked[this.fault] += 1
    return dict(checked)


def sample_keys(folder):
    return [(r.pair_id, r.reasoning, r.sample) for _, r in iter_records([folder])]


def test_faults_end_generated_or_failed_with_reason_and_reruns_complete(teacher, tmp_path):
    server, served = teacher
    prompts = procedural_records("arithmetic", 8, seed=11)
    src = write_prompts(prompts, tmp_path / "prompts.parquet")
    expected = 8 * (2 + 1)  # n=2 on, n=1 off
    proxy = FaultProxy(upstream=f"http://127.0.0.1:{server.port}", seed=3, rate=0.6, retry_after=RETRY_AFTER_S)
    proxy.start()
    try:
        out = tmp_path / "out"
        config = fault_config(proxy.base_url, served)
        stats = run_generate(config, [src], out)
        first_hits = list(proxy.hits)

        # every sample: generated or failed with its reason, in the stats and on disk
        assert stats.n_in == expected == stats.kept + stats.n_failed
        assert stats.n_failed > 0, "no sample failed: raise the fault rate so the rerun path is exercised"
        failed = [r for _, r in iter_records([failed_dir(out)])]
        assert len(failed) == stats.n_failed
        for record in failed:
            (verdict,) = [v for v in record.verdicts if v.filter == "generate"]
            assert verdict.verdict == "error" and verdict.reason.startswith("request_failed")
            assert f"after {RETRIES + 1} attempts" in verdict.reason
        kept_keys = sample_keys(kept_dir(out))
        assert len(kept_keys) == len(set(kept_keys)) == stats.kept
        assert not set(kept_keys) & {(r.pair_id, r.reasoning, r.sample) for r in failed}

        # the proxy's view: every fault kind met, bounded concurrency, backoff and Retry-After respected
        faults = {h.fault for h in first_hits}
        assert set(FAULTS) <= faults, f"seeded draw missed a fault kind: {faults}"
        assert max_overlap(first_hits) <= CONCURRENCY
        assert max_overlap(first_hits) >= 2  # the bound is what limits it, not a serial client
        checked = check_retry_timing(first_hits)
        assert checked.get("429") and checked.get("stall"), checked
        assert len(first_hits) <= expected * (RETRIES + 1)  # bounded: no sample retried beyond its budget

        # reruns (the faults go on, at the same seeded rate) complete the failed samples only
        for _ in range(5):
            if stats.n_failed == 0:
                break
            proxy.reset_log()
            before = stats.n_failed
            stats = run_generate(config, [src], out)
            assert len(proxy.hits) <= before * (RETRIES + 1)  # only the missing samples are asked for again
            assert max_overlap(proxy.hits) <= CONCURRENCY
            check_retry_timing(proxy.hits)
        assert (stats.n_in, stats.kept, stats.n_failed) == (expected, expected, 0)
        final_keys = sample_keys(kept_dir(out))
        assert len(final_keys) == len(set(final_keys)) == expected and set(kept_keys) <= set(final_keys)
        assert not list(failed_dir(out).glob("*.parquet"))
    finally:
        proxy.stop()

    # the same set of samples as an uninterrupted, fault-free run against the server itself
    clean = run_generate(fault_config(server.base_url, served), [src], tmp_path / "clean")
    assert clean.kept == expected and set(sample_keys(tmp_path / "clean" / "kept")) == set(final_keys)
