"""The recipe runner's overhead: `run_recipe` against calling the same stages' run_x functions by hand.

Anchor: a hand-written script that calls each stage of recipes/demo-curation.yaml in order (run_x(config,
inputs, out_dir, executor), each reading the previous stage's kept folder). Measured: `run_recipe` on the same
recipe (recipe validation, resolved-recipe and fingerprint files, completion markers, the run funnel), a
rerun of a complete run (every stage skipped), and loading + validating the recipe alone. Rounds alternate
the runners so the shared machine's load hits each alike; both must produce the same record ids.

    .venv/bin/python bench/runner.py --rounds 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from thinktoggle.runner.recipe import load_recipe
from thinktoggle.runner.run import plan_steps, run_recipe
from thinktoggle.schemas.io import iter_records

DEMO = Path(__file__).resolve().parents[1] / "recipes" / "demo-curation.yaml"


def by_hand(out: Path) -> list[str]:
    recipe = load_recipe(DEMO, [f"out_dir={out}"])
    for step in plan_steps(recipe):
        step.out_dir.mkdir(parents=True, exist_ok=True)
        step.spec.run_function()(step.section.config, list(step.inputs), step.out_dir, step.section.executor)
    return sorted(r.id for _, r in iter_records([out / "export" / "SFT"]))


def with_runner(out: Path) -> list[str]:
    run_recipe(load_recipe(DEMO, [f"out_dir={out}"]), report=lambda _: None)
    return sorted(r.id for _, r in iter_records([out / "export" / "SFT"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"by hand": [], "run_recipe": [], "rerun (all skipped)": [], "load + validate": []}
    scratch = Path(tempfile.mkdtemp(prefix="bench-runner-"))
    try:
        for round_ in range(args.rounds):
            order = [("by hand", by_hand), ("run_recipe", with_runner)]
            results = {}
            for name, fn in order if round_ % 2 == 0 else reversed(order):
                out = scratch / f"{name.replace(' ', '-')}-{round_}"
                started = time.perf_counter()
                results[name] = fn(out)
                times[name].append(time.perf_counter() - started)
            assert results["by hand"] == results["run_recipe"], "the runner changed the data"
            started = time.perf_counter()
            with_runner(scratch / f"run_recipe-{round_}")
            times["rerun (all skipped)"].append(time.perf_counter() - started)
            started = time.perf_counter()
            load_recipe(DEMO)
            times["load + validate"].append(time.perf_counter() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    anchor = statistics.median(times["by hand"])
    print(f"| what | median s ({args.rounds} rounds) | vs by hand |\n|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {median / anchor:.2f}x |")


if __name__ == "__main__":
    main()
