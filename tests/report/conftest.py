"""The report tests' run (tests/report/_report_run.py), built once per session by the real recipe runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _report_run import RECIPE, rows


@pytest.fixture(scope="session")
def report_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from thinktoggle.runner.recipe import load_recipe
    from thinktoggle.runner.run import run_recipe

    root = tmp_path_factory.mktemp("report-run")
    source = root / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE.format(out=root / "run", rows=source))
    run_recipe(load_recipe(recipe, []), report=lambda line: None)
    return root / "run"
