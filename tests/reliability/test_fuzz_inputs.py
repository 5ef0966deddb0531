"""Fuzzing the two places where structured input enters: rows (published rows and internal records, read
through `iter_records`, the door every stage uses) and recipes (`loads_recipe`).

The schema suite (tests/schemas/test_published.py) already fuzzes `row_problems` on valid rows with one wrong
column at a time; here the mutations go anywhere (nested paths, any JSON value, deleted or extra keys), and
the property is about the reading path as a whole: a row comes back either as a well-typed Record or as an
error naming the file, the line and a field that is the path of a key in the row: never an exception, never a
Record that breaks the types the stages rely on.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import ROOT, load_test_module

from thinktoggle.runner.recipe import RecipeError, loads_recipe
from thinktoggle.schemas.convert import record_to_arrow_row
from thinktoggle.schemas.io import iter_records
from thinktoggle.schemas.record import CATEGORIES, ROLES, Record, Verdict

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def published_row() -> dict[str, Any]:
    rows = load_test_module("tests/schemas/published_rows.py", "schemas_published_rows")
    return copy.deepcopy(rows.VALID_ROW)


def internal_row() -> dict[str, Any]:
    record = Record(
        input=[{"role": "user", "content": "What is 2 + 2?"}],
        category="math",
        reasoning="on",
        output="<think>\n2 + 2 = 4\n</think>\n\n\\boxed{4}",
        expected_answer="4",
        generator="teacher",
        sampling={"engine": "procedural", "seed": 1},
        verdicts=[Verdict("math", "pass", "")],
        metadata={"source": "fuzz"},
    )
    return record_to_arrow_row(record)


def key_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            paths += key_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths += key_paths(child, (*prefix, index))
    return paths


@st.composite
def mutated(draw, base: dict[str, Any]) -> dict[str, Any]:
    """`base` with 1-3 mutations: a value replaced by any JSON value, a key deleted, or a key added."""
    row = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = key_paths(row)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = row
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(JSON_VALUES)
        else:
            parent.append(draw(JSON_VALUES))
    return row


def assert_well_typed(record: Record) -> None:
    """What the stages rely on when they read a Record's fields."""
    assert isinstance(record.input, list) and record.input
    assert all(
        isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in record.input
    )
    assert record.category in CATEGORIES and record.reasoning in ("on", "off")
    for name in ("output", "generator", "license", "used_in_training", "version", "pair_id", "id"):
        assert isinstance(getattr(record, name), str), name
    for name in ("system_prompt", "expected_answer"):
        assert getattr(record, name) is None or isinstance(getattr(record, name), str), name
    assert isinstance(record.sample, int) and not isinstance(record.sample, bool)
    assert isinstance(record.sampling, dict) and isinstance(record.metadata, dict)
    assert record.tests is None or isinstance(record.tests, dict)
    assert all(
        isinstance(v, Verdict) and isinstance(v.filter, str) and isinstance(v.reason, str) for v in record.verdicts
    )


def read_one(row: dict[str, Any]):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.jsonl"
        path.write_text(json.dumps(row) + "\n")
        results = list(iter_records([path]))
    assert len(results) == 1  # one row in, one result out: nothing dropped
    return str(path), results[0]


def check_read(row: dict[str, Any]) -> None:
    path, (read, record) = read_one(row)
    assert read.file == path and read.line == 1
    if record is not None:
        assert read.error is None
        assert_well_typed(record)
        return
    assert read.error, "an error without a reason"
    keys = {*row, *published_row(), *internal_row()}  # a key of the row, or a missing one
    assert read.field == "(row)" or any(read.field == k or read.field.startswith(f"{k}.") for k in keys), read.field


@FUZZ
@given(mutated(published_row()))
def test_any_mutation_of_a_published_row_reads_as_a_typed_record_or_a_named_error(row):
    check_read(row)


@FUZZ
@given(mutated(internal_row()))
def test_any_mutation_of_an_internal_record_reads_as_a_typed_record_or_a_named_error(row):
    check_read(row)


# -------------------------------------------------------------------------------------------------- recipes
DEMO_TEXT = (ROOT / "recipes" / "demo-curation.yaml").read_text()
DEMO = yaml.safe_load(DEMO_TEXT)
PROBLEM_LINE = re.compile(r"^<fuzz>(:\d+)?: \S")  # `<fuzz>:LINE: key.path: reason`


def assert_clean_recipe_error(error: RecipeError) -> None:
    assert error.problems
    for problem in error.problems:
        assert PROBLEM_LINE.match(problem), problem


def load_or_clean_error(text: str) -> None:
    try:
        loads_recipe(text, name="<fuzz>")
    except RecipeError as exc:
        assert_clean_recipe_error(exc)


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=5,
)


@FUZZ
@given(mutated(DEMO))
def test_any_mutation_of_the_demo_recipe_loads_or_fails_with_key_paths_and_lines(recipe):
    load_or_clean_error(yaml.safe_dump(recipe, sort_keys=False))


@FUZZ
@given(
    st.sampled_from(sorted(k for k in DEMO if isinstance(DEMO[k], dict))), st.text(min_size=1, max_size=12), YAML_VALUES
)
def test_a_typo_or_unknown_key_in_any_section_is_named(section, key, value):
    recipe = copy.deepcopy(DEMO)
    recipe[section][key] = value
    try:
        loads_recipe(yaml.safe_dump(recipe, sort_keys=False), name="<fuzz>")
    except RecipeError as exc:
        assert_clean_recipe_error(exc)
    else:
        raise AssertionError("an accepted key that no config has") if key not in _known_keys(section) else None


def _known_keys(section: str) -> set[str]:
    recipe = loads_recipe(DEMO_TEXT, name="<demo>")
    body = recipe.to_dict()[section]
    return set(body) | {"executor"} if isinstance(body, dict) else {"executor"}


@FUZZ
@given(st.integers(0, len(DEMO_TEXT)), st.text(max_size=6))
def test_text_damage_anywhere_in_a_recipe_gives_a_clean_error(at, inserted):
    load_or_clean_error(DEMO_TEXT[:at] + inserted + DEMO_TEXT[at:])


def test_a_blank_or_padded_key_gives_a_clean_error():
    # Found by hypothesis (`<fuzz>:76:  : unknown section`): the key is quoted, so the line matches the pattern.
    for key in (" ", "", " filter", "\t"):
        try:
            loads_recipe(DEMO_TEXT + yaml.safe_dump({key: 1}), name="<fuzz>")
        except RecipeError as exc:
            assert_clean_recipe_error(exc)
            assert any(f": {key!r}: unknown section" in p for p in exc.problems), exc.problems
        else:
            raise AssertionError(f"{key!r} accepted")
