"""Mixing: completeness, on:off ratios, caps, seeded determinism, tags; every row accounted for."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from _curation_fixtures import pair, read_records, write_records

from thinktoggle.curation.mix import CAP, INCOMPLETE, RATIO, REPORT, MixConfig, cap_quotas, ratio_quotas, run_mix


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mix")
    records = []
    for i in range(20):
        records += pair(f"math problem {i}", category="math")
    for i in range(10):
        records += pair(f"code problem {i}", category="code")
    lonely_on = pair("math problem without its off answer", category="math")[0]
    lonely_off = pair("chat prompt whose on answer was filtered", category="chat")[1]
    records += [lonely_on, lonely_off]
    write_records(records[:31], tmp / "a")
    write_records(records[31:], tmp / "b")
    return tmp, records


def counts(records):
    return Counter((r.category, r.reasoning) for r in records)


def test_complete_pairs_caps_ratio_and_tags(inputs, tmp_path):
    folder, records = inputs
    config = MixConfig(seed=3, caps={"code": 8}, on_off_ratio={"math": 3.0}, used_in_training="Nano", version="v2")
    stats = run_mix(config, [folder], tmp_path / "out")
    kept, dropped = read_records(tmp_path / "out"), read_records(tmp_path / "out" / "dropped")

    assert stats.n_in == len(records) == len(kept) + len(dropped)
    # math: 20 on + 20 off complete; 3 on per off -> 20 on, 6 off. code: 10 + 10 capped at 8 -> 4 + 4.
    assert counts(kept) == {("math", "on"): 20, ("math", "off"): 6, ("code", "on"): 4, ("code", "off"): 4}
    assert dict(stats.dropped) == {INCOMPLETE: 2, RATIO: 14, CAP: 12}
    assert all(r.used_in_training == "Nano" and r.version == "v2" for r in kept)
    # The walk keeps whole pairs first: the off rows kept all belong to prompts whose on row is kept too.
    kept_on = {r.pair_id for r in kept if r.reasoning == "on"}
    assert {r.pair_id for r in kept if r.reasoning == "off"} <= kept_on
    code_pairs = Counter(r.pair_id for r in kept if r.category == "code")
    assert set(code_pairs.values()) == {2}
    report = json.loads((tmp_path / "out" / REPORT).read_text())
    assert report["categories"]["math"]["kept_off"] == 6


def test_seeded_determinism_independent_of_sharding(inputs, tmp_path):
    folder, records = inputs
    config = MixConfig(seed=7, caps={"*": 10})
    one = {r.id for r in read_records(_run(config, [folder], tmp_path / "one"))}
    # The same records in one shard, in reverse order: same draw.
    write_records(list(reversed(records)), tmp_path / "reversed")
    again = {r.id for r in read_records(_run(config, [tmp_path / "reversed"], tmp_path / "again"))}
    other = {r.id for r in read_records(_run(MixConfig(seed=8, caps={"*": 10}), [folder], tmp_path / "other"))}
    assert one == again and one != other and len(one) == 20


def _run(config, inputs, out):
    run_mix(config, inputs, out)
    return out


def test_incomplete_pairs_kept_when_allowed(inputs, tmp_path):
    folder, records = inputs
    stats = run_mix(MixConfig(complete_pairs=False), [folder], tmp_path / "out")
    assert stats.kept == len(records) and not stats.dropped


@pytest.mark.parametrize(
    ("n_on", "n_off", "ratio", "expected"),
    [
        (10, 10, None, (10, 10)),
        (10, 10, 1.0, (10, 10)),
        (10, 10, 2.0, (10, 5)),
        (10, 4, 2.0, (8, 4)),
        (10, 10, 0.0, (0, 10)),
        (0, 10, 1.0, (0, 0)),
    ],
)
def test_ratio_quotas(n_on, n_off, ratio, expected):
    assert ratio_quotas(n_on, n_off, ratio) == expected


def test_cap_quotas_keep_the_ratio():
    assert cap_quotas(30, 10, 8, 3.0) == (6, 2)
    assert sum(cap_quotas(10, 10, 5, None)) == 5
    assert cap_quotas(4, 4, 100, 1.0) == (4, 4)
