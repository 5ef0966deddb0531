"""The stage commands are built from the stage configs: every field is an option with the config's name,
type and default, and what is typed goes through the recipe's validation. Then real commands, end to end."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

import click
import pytest
from click.testing import CliRunner

from thinktoggle.cli.config_options import FieldOption
from thinktoggle.cli.conveniences import CONVENIENCES
from thinktoggle.cli.main import app
from thinktoggle.cli.stage_command import build_stage_command
from thinktoggle.core.config_build import convert
from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.registry import STAGES

COMMON = {"--out", "--set"}


def leaves(cls: type, prefix: tuple[str, ...] = (), default: Any = None) -> list[tuple[tuple[str, ...], Any, Any]]:
    """(key path, type, default) of every leaf field, nested dataclasses walked (written apart from the CLI)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if default is not None:
            value = getattr(default, f.name)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = dataclasses.MISSING
        tp = hints[f.name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):  # `Settings | None`: options set it
            inner = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = inner[0] if len(inner) == 1 and dataclasses.is_dataclass(inner[0]) else tp
        if dataclasses.is_dataclass(tp):
            out += leaves(tp, (*prefix, f.name), value if dataclasses.is_dataclass(value) else None)
        else:
            out.append(((*prefix, f.name), tp, value))
    return out


def expressible(tp: Any) -> bool:
    """A type an option can carry: a scalar, a Literal, a bool, a list of scalars, or one of them or None."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return len(args) == 1 and expressible(args[0])
    if tp in (str, int, float, bool, Path) or typing.get_origin(tp) is Literal:
        return True
    if typing.get_origin(tp) in (tuple, list):
        items = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return len(items) == 1 and items[0] in (str, int, float, Path)
    return False


def flag_of(path: tuple[str, ...]) -> str:
    return "--" + "-".join(path).replace("_", "-")


def options_by_flag(command: click.Command) -> dict[str, click.Option]:
    found = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                found[opt] = param
    return found


def typed(param: click.Option, path: tuple[str, ...], tp: Any) -> Any:
    """What the command makes of its option's default typed on the command line."""
    if param.is_flag:
        return bool(param.default)
    optional = typing.get_origin(tp) in (typing.Union, types.UnionType)
    base = next(a for a in typing.get_args(tp) if a is not type(None)) if optional else tp
    is_list = typing.get_origin(base) in (tuple, list)
    item = next(a for a in typing.get_args(base) if a is not Ellipsis) if is_list else base
    option = FieldOption(path, param.opts[0], "list" if is_list else "value", item, None, "", "")
    return convert(tp, option.node(param.default), ".".join(path))


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_config_field_is_an_option_with_the_configs_name_type_and_default(name):
    spec = STAGES[name]
    cls = spec.config_class()
    command = build_stage_command(spec)
    options = options_by_flag(command)
    conveniences = {opt for c in CONVENIENCES.get(name, ()) for p in c.params() for opt in p.opts}
    expected = set()
    for path, tp, default in leaves(cls):
        flag = flag_of(path)
        if not expressible(tp):  # dicts, lists of settings: --set only
            assert flag not in options, f"{name}: {flag} cannot carry a {tp}"
            continue
        if flag in conveniences:  # e.g. validate --prompts: read as a recipe's `sources:`
            continue
        expected.add(flag)
        assert flag in options, f"{name}: no option for {'.'.join(path)}"
        param = options[flag]
        if typing.get_origin(tp) is Literal:
            assert param.metavar == "[" + "|".join(typing.get_args(tp)) + "]"
        if tp is bool or tp == bool | None:
            assert param.is_flag and param.secondary_opts == ["--no-" + flag[2:]], flag
        if default is None or default is dataclasses.MISSING:
            assert param.default is None, flag
        else:
            assert typed(param, path, tp) == default, f"{name}: {flag} shows a default other than the config's"
    executor = set()
    for path, tp, default in leaves(ExecutorConfig, ("executor",)):
        if not expressible(tp):
            continue
        flag = next(f for f in (flag_of(path[1:]), flag_of(path)) if f in options)
        executor.add(flag)
        assert typed(options[flag], path, tp) == default
    assert set(options) - {o for o in options if o.startswith("--no-")} == expected | executor | conveniences | COMMON
    assert {"--tasks", "--workers"} <= executor


def test_defaults_are_the_recipes_defaults():
    """The drift the CLI once had (train 2000 steps / batch 6, generate's engine procedural) is gone."""
    from thinktoggle.generators.generate import GenerateConfig
    from thinktoggle.training.trainer import TrainConfig

    train = options_by_flag(build_stage_command(STAGES["train"]))
    assert (train["--max-steps"].default, train["--batch-size"].default) == (
        str(TrainConfig().max_steps),
        str(TrainConfig().batch_size),
    )
    generate = options_by_flag(build_stage_command(STAGES["generate"]))
    assert generate["--engine-kind"].default == GenerateConfig.__dataclass_fields__["engine"].default.kind


def test_root_help_builds_no_stage_and_lists_them_all():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from thinktoggle.cli.main import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
        "heavy = [m for m in sys.modules if m.startswith(('vllm', 'torch', 'datasets', 'datatrove', "
        "'thinktoggle.generators', 'thinktoggle.filters', 'thinktoggle.curation', 'thinktoggle.training'))]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in [*STAGES, "check", "ingest", "run", "publish", "demo"]:
        assert f"  {name} " in done.stdout


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_stage_help(name):
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "--out" in result.output and "--set KEY=VALUE" in result.output and "--tasks" in result.output


# ------------------------------------------------------------------------------------------ end to end


def invoke(*args: Any):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.mark.parametrize(
    "row",
    [
        {"question": "What is 2 + 3?", "answer": "5"},
        {"input": [{"role": "user", "content": "What is 2 + 3?"}], "expected_answer": "5"},
    ],
    ids=["question-answer", "chat-input"],
)
def test_generate_reads_plain_prompt_files_as_a_recipes_sources(tmp_path, row):
    prompts = tmp_path / "q.jsonl"
    prompts.write_text(json.dumps(row) + "\n" + json.dumps({**row, "note": "the same prompt again"}) + "\n")
    out = tmp_path / "gen"
    result = invoke("generate", "--prompts", prompts, "--out", out, "--engine-kind", "procedural", "--no-progress")
    lines = result.output.splitlines()
    assert "sources: in 2, kept 1, dropped 1, failed 0 (duplicate_prompt: 1)" in lines
    # the procedural teacher answers only its own prompts: each answer is written to failed/ with its reason
    assert "generate: in 2, kept 0, dropped 0, failed 2 (not_procedural: 2)" in lines
    assert f"  {out / 'failed'}/" in lines and f"  {out / 'stats.json'}" in lines
    assert f"  {out / 'kept'}/" not in lines  # only the folders it wrote
    assert result.exit_code == 1  # every input row failed
    stats = json.loads((out / "stats.json").read_text())
    assert stats["in"] == 2 and stats["failed_reasons"] == {"not_procedural": 2}


def test_generate_procedural_prompts_end_to_end_with_defaults_from_the_config(tmp_path):
    out = tmp_path / "gen"
    result = invoke(
        "generate", "--procedural", "arithmetic", "--count", 4, "--out", out, "--engine-kind", "procedural",
        "--sampling-on-n", 2, "--set", "seed=7", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "generate: in 12, kept 12, dropped 0, failed 0" in result.output.splitlines()  # 4 x (2 on + 1 off)
    assert json.loads((out / "stats.json").read_text())["kept"] == 12


def test_filter_with_set_and_flattened_options(tmp_path):
    gen = tmp_path / "gen"
    invoke("generate", "--procedural", "arithmetic", "--count", 3, "--out", gen, "--engine-kind", "procedural")
    out = tmp_path / "filter"
    result = invoke(
        "filter", gen, "--out", out, "--only", "format,math", "--no-math-majority", "--set", "math.row_timeout_s=5"
    )
    assert result.exit_code == 0, result.output
    assert "filter: in 6, kept 6, dropped 0, failed 0" in result.output
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats["by_filter"]) == {"format", "math"}


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--set", "onlyy=math"], "error: --set onlyy=math: filter.onlyy: unknown key (did you mean 'only'?)"),
        (["--set", "math.majorty=false"], "filter.math.majorty: unknown key (did you mean 'majority'?)"),
        (["--math-row-timeout-s", "soon"], "error: --math-row-timeout-s soon: filter.math.row_timeout_s: expected"),
        (["--tasks", "0"], "error: --tasks 0: filter.executor.tasks: must be >= 1, got 0"),
        (["--set", "executor.tpye=slurm"], "filter.executor.tpye: unknown key (did you mean 'type'?)"),
        (["--set", "novalue"], "error: --set novalue: expected KEY.PATH=VALUE"),
    ],
)
def test_bad_settings_exit_2_with_one_error_line_each(tmp_path, args, line):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("")
    result = invoke("filter", rows, "--out", tmp_path / "out", *args)
    assert result.exit_code == 2, result.output
    assert any(s.startswith("error: ") and line in s for s in result.output.splitlines()), result.output
    assert not (tmp_path / "out").exists()


def test_prompt_options_are_checked_like_settings(tmp_path):
    prompts = tmp_path / "q.jsonl"
    prompts.write_text(json.dumps({"q": "What is 1 + 1?"}) + "\n")
    result = invoke("generate", "--prompts", prompts, "--column", "questoin=q", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "unknown column key (did you mean 'question'?)" in result.output
    result = invoke("generate", "--prompts", tmp_path / "nope.jsonl", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "nope.jsonl: no such file or folder" in result.output
    result = invoke("generate", "--out", tmp_path / "o", "--engine-kind", "procedural")
    assert (
        result.exit_code == 2
        and "generate: give INPUTS (the previous stage's folder), or --prompts SRC" in result.output
    )
    result = invoke(
        "generate", "--prompts", prompts, "--count", "many", "--out", tmp_path / "o", "--engine-kind", "procedural"
    )
    assert result.exit_code == 2 and "error: --count many: sources.0.limit: expected an integer" in result.output
    # a mapped column, then a setting of the sources amended with --set
    out = tmp_path / "g"
    result = invoke(
        "generate", "--prompts", prompts, "--column", "question=q", "--set", "sources.0.category=chat",
        "--out", out, "--engine-kind", "procedural", "--no-progress",
    )  # fmt: skip
    assert "sources: in 1, kept 1, dropped 0, failed 0" in result.output, result.output
    from thinktoggle.schemas.io import iter_records

    [(_, prompt)] = list(iter_records([out / ".sources" / "kept"]))
    assert prompt.category == "chat" and prompt.input[0]["content"] == "What is 1 + 1?"


def test_generate_without_a_teacher_names_the_setting(tmp_path):
    result = invoke("generate", "--procedural", "arithmetic", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "error: command line: generate.teacher_on: required for the vllm engine" in result.output


def test_a_subprocess_run_of_the_console_entry_point(tmp_path):
    prompts = tmp_path / "q.jsonl"
    prompts.write_text(json.dumps({"problem": "What is 1 + 1?"}) + "\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "thinktoggle.cli.main",
            "sources",
            "--prompts",
            str(prompts),
            "--out",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "sources: in 1, kept 1, dropped 0, failed 0"
