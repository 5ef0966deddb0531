"""One click command per stage of core/registry.py, built from the stage's config dataclass.

    thinktoggle STAGE [INPUTS...] --out DIR [one option per config field] [executor options] [--set key=value]

- Options: cli/config_options.py (one per field, nested dataclasses flattened, help from the field's comment,
  defaults from the config); the executor's from `ExecutorConfig` alike (`--tasks`, `--workers`, ...), named
  `--executor-x` only where a stage field already has the name; the stage conveniences of cli/conveniences.py.
- Settings: what was typed becomes a YAML mapping (each value's origin is the option as typed), `--set` is
  applied on top exactly as `thinktoggle run --set` does (keys relative to the stage; `executor.x`), and the
  mapping goes through the recipe's validation (core/config_build.py): errors read
  `--max-steps x: train.max_steps: expected an integer, got 'x'` and exit 2.
- Closing lines: `STAGE: in N, kept K, dropped D, failed F (top reasons)`, then the folders the stage wrote.
  Exit 1 when every input row failed.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml
from click.core import ParameterSource

from thinktoggle.cli.config_options import FieldOption, field_options
from thinktoggle.cli.conveniences import CONVENIENCES, INPUTS_UNLESS, PROMPTS_GO_TO, RUN_WRAPPERS, sources_folder
from thinktoggle.core.config_build import Invalid, build_dataclass
from thinktoggle.core.config_yaml import (
    ConfigError,
    apply_override,
    find,
    mapping_node,
    pop,
    set_path,
    str_node,
)
from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.layout import kept_dir, logs_dir, stats_path, written_folders
from thinktoggle.core.registry import STAGES, StageSpec, StageUnavailable

EXECUTOR_SECTION = "executor: where the ranks run (a recipe's `executor:`)"
OUTPUT_SECTION = "Options"
TOP_REASONS = 5


class SectionedCommand(click.Command):
    """A command whose --help lists its options in sections (`param.section`)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Argument):  # click lists them under "Positional arguments"
                continue
            record = param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(getattr(param, "section", OUTPUT_SECTION), []).append(record)
        for title, rows in sections.items():
            with formatter.section(title):
                formatter.write_dl(rows)


def _option(option: FieldOption, flag: str) -> click.Option:
    """The click option of a field: raw text (the settings' validation reads it), the config's default shown."""
    shown = option.shown_default()
    text = option.help
    if shown is not None:
        value = str(shown).lower() if option.kind == "flag" else str(shown) or '""'
        value = value.replace("\n", "\\n")
        text = f"{text}  [default: {value[:60] + '…' if len(value) > 60 else value}]".strip()
    if option.kind == "flag":
        decls = [f"{flag}/--no-{flag.removeprefix('--')}", option.dest]
        param = click.Option(decls, default=shown, help=text)
    else:
        param = click.Option([flag, option.dest], default=shown, metavar=option.metavar, help=text)
    param.section = option.section
    return param


def stage_options(spec: StageSpec, config_cls: type) -> tuple[list[FieldOption], dict[str, str]]:
    """The stage's field options and the executor's, and {dest: flag} (executor flags renamed on a clash)."""
    fields = field_options(config_cls, f"{spec.name} settings ({config_cls.__name__})")
    executor = field_options(ExecutorConfig, EXECUTOR_SECTION, prefix=("executor",))
    taken = {o.flag for o in fields} | {"--out", "--set", "--help"}
    for convenience in CONVENIENCES.get(spec.name, ()):
        taken |= {opt for p in convenience.params() for opt in p.opts}
    flags: dict[str, str] = {}
    for option in fields:
        flags[option.dest] = option.flag
    for option in executor:
        plain = "--" + option.path[-1].replace("_", "-")
        flags[option.dest] = plain if plain not in taken else option.flag
    seen: dict[str, str] = {}
    for dest, flag in flags.items():
        if flag in seen:
            raise RuntimeError(f"{spec.name}: {seen[flag]} and {dest} would both be {flag}")
        seen[flag] = dest
    return fields + executor, flags


def build_stage_command(spec: StageSpec) -> click.Command:
    """`thinktoggle STAGE`: its options from the stage's config, run through the Stage API."""
    try:
        config_cls = spec.config_class()
    except StageUnavailable as exc:
        return _unavailable(spec, str(exc))
    conveniences = CONVENIENCES.get(spec.name, ())
    extra = [p for c in conveniences for p in c.params()]
    extra_flags = {opt for p in extra for opt in p.opts}
    options, flags = stage_options(spec, config_cls)
    options = [o for o in options if flags[o.dest] not in extra_flags]  # a convenience stands in for the field
    params: list[click.Parameter] = []
    if spec.takes_inputs:
        optional = spec.name in INPUTS_UNLESS
        about = "records to read: the previous stage's folder, or record files"
        if optional:
            about += f" (or {INPUTS_UNLESS[spec.name][1]})"
        inputs = click.Argument(
            ["inputs"], nargs=-1, required=not optional, type=click.Path(path_type=Path), help=about
        )
        params.append(inputs)
    params.append(
        click.Option(["--out", "out_dir"], required=True, type=click.Path(path_type=Path), help="the stage's folder")
    )
    params += extra
    params.append(
        click.Option(
            ["--set", "overrides"],
            multiple=True,
            metavar="KEY=VALUE",
            help="any setting, e.g. --set caps.math=16 (the value is read as YAML, as in `thinktoggle run --set`)",
        )
    )
    params += [_option(o, flags[o.dest]) for o in options]

    def callback(**values: Any) -> None:
        ctx = click.get_current_context()
        given = {
            o.dest: values[o.dest] for o in options if ctx.get_parameter_source(o.dest) is ParameterSource.COMMANDLINE
        }
        run_stage(spec, config_cls, options, flags, given, values)

    module_doc = sys.modules[config_cls.__module__].__doc__ or ""
    about = module_doc.strip().split("\n\n")[0] or spec.summary
    return SectionedCommand(
        spec.name,
        params=params,
        callback=callback,
        help=f"{about}\n\nThe settings are a recipe's `{spec.name}:` section ({config_cls.__name__}): one option per "
        f"field, the rest through --set.",
        short_help=spec.summary,
        no_args_is_help=True,
    )


def _unavailable(spec: StageSpec, message: str) -> click.Command:
    def callback(**_: Any) -> None:
        fail([message])

    return click.Command(
        spec.name,
        callback=callback,
        help=message,
        short_help=spec.summary,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


def fail(problems: list[str], code: int = 2) -> NoReturn:
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    sys.exit(code)


def settings_from(
    spec: StageSpec, options: list[FieldOption], flags: dict[str, str], given: dict[str, Any], values: dict[str, Any]
) -> yaml.MappingNode:
    """The command's settings as one YAML mapping: typed options, then conveniences, then --set."""
    settings = mapping_node([], "command line")
    by_dest = {o.dest: o for o in options}
    for dest, value in given.items():
        node = by_dest[dest].node(value, flags[dest])
        set_path(settings, ".".join(by_dest[dest].path), node, node.origin)
    for convenience in CONVENIENCES.get(spec.name, ()):
        convenience.apply(values, settings)
    for assignment in values["overrides"]:
        apply_override(settings, assignment)
    return settings


def build_configs(spec: StageSpec, config_cls: type, settings: yaml.MappingNode, out_dir: Path):
    """(config, executor, sources config or None) from the settings; ConfigError lists every problem."""
    from thinktoggle.generators.sources_stage import SourcesConfig

    executor_item = pop(settings, "executor")
    target = PROMPTS_GO_TO.get(spec.name)  # the `sources` setting of generate and validate is not their config's
    sources_item = pop(settings, "sources") if target is not None else None
    if sources_item is not None and target != "inputs" and find(settings, target) is None:
        origin = getattr(sources_item[1], "origin", None) or "--set sources"
        set_path(settings, target, str_node(str(kept_dir(sources_folder(out_dir))), origin), origin)
    problems: list[str] = []
    built: list[Any] = []
    parts = [(config_cls, settings, spec.name)]
    parts.append((ExecutorConfig, executor_item[1] if executor_item else None, f"{spec.name}.executor"))
    if sources_item is not None:
        key = str_node("sources", getattr(sources_item[0], "origin", "command line"))
        key.path_alias = "sources"  # errors read `sources.0.limit`, as in a recipe
        parts.append((SourcesConfig, mapping_node([(key, sources_item[1])], key.origin), ""))
    for cls, node, path in parts:
        try:
            built.append(build_dataclass(cls, node, path) if node is not None else cls())
        except Invalid as exc:
            problems.extend(exc.problems)
            built.append(None)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    config, executor, *sources = built
    return config, executor, (sources[0] if sources else None)


def run_stage(
    spec: StageSpec,
    config_cls: type,
    options: list[FieldOption],
    flags: dict[str, str],
    given: dict[str, Any],
    values: dict[str, Any],
) -> None:
    from thinktoggle.schemas.io import InputError

    out_dir: Path = values["out_dir"]
    inputs: list[Path] = list(values.get("inputs") or ())
    try:
        settings = settings_from(spec, options, flags, given, values)
        if spec.name in INPUTS_UNLESS and not inputs:
            key, instead = INPUTS_UNLESS[spec.name]
            if find(settings, key) is None:
                raise ConfigError([f"{spec.name}: give INPUTS (the previous stage's folder), or {instead}"])
        config, executor, sources = build_configs(spec, config_cls, settings, out_dir)
        if sources is not None:
            shutil.rmtree(sources_folder(out_dir), ignore_errors=True)  # this command's prompts only
            sources_stats = _run(STAGES["sources"], sources, [], sources_folder(out_dir), ExecutorConfig())
            if _all_failed(sources_stats):
                sys.exit(1)
            if PROMPTS_GO_TO.get(spec.name) == "inputs":
                inputs.append(kept_dir(sources_folder(out_dir)))
        stats = _run(spec, config, inputs, out_dir, executor)
    except ConfigError as exc:
        fail(exc.problems)
    except (InputError, ValueError, OSError, RuntimeError, StageUnavailable) as exc:
        if os.environ.get("THINKTOGGLE_DEBUG"):
            raise
        fail([str(exc)])
    sys.exit(1 if _all_failed(stats) else 0)


def _run(spec: StageSpec, config: Any, inputs: list[Path], out_dir: Path, executor: ExecutorConfig):
    """Run one stage (datatrove's INFO lines to out_dir/logs/STAGE.log), then print its closing lines."""
    from thinktoggle.cli.run import _datatrove_info_to
    from thinktoggle.core.slurm import call_stage

    # vLLM's INFO start-up chatter would drown the stage's own lines (VLLM_LOGGING_LEVEL=INFO shows it).
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    run = spec.run_function()
    wrapper = RUN_WRAPPERS.get(spec.name)

    def stage() -> Any:  # here, or as one Slurm job waited for (core/slurm.py), as the executor says
        return call_stage(run, config, inputs, out_dir, executor)

    with _datatrove_info_to(logs_dir(out_dir) / f"{spec.name}.log"):
        stats = wrapper(stage, inputs, out_dir) if wrapper is not None else stage()
    print_closing_lines(stats, out_dir)
    return stats


def _all_failed(stats) -> bool:
    return stats.n_in > 0 and stats.n_failed == stats.n_in


def closing_lines(stats, out_dir: Path) -> list[str]:
    """`STAGE: in N, kept K, dropped D, failed F (top reasons)` and the folders the stage wrote."""
    reasons = (Counter(stats.dropped) + Counter(stats.failed)).most_common(TOP_REASONS)
    line = f"{stats.stage}: in {stats.n_in}, kept {stats.kept}, dropped {stats.n_dropped}, failed {stats.n_failed}"
    if reasons:
        line += " (" + ", ".join(f"{reason}: {n}" for reason, n in reasons) + ")"
    wrote = [f"{folder}/" for folder in written_folders(out_dir)]
    if stats_path(out_dir).is_file():
        wrote.append(str(stats_path(out_dir)))
    return [line] + [f"  {path}" for path in wrote]


def print_closing_lines(stats, out_dir: Path) -> None:
    for line in closing_lines(stats, out_dir):
        click.echo(line)
