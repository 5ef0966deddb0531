"""YAML recipes: the recipe model, loaded from a file (or text) with `--set` overrides.

A recipe names the run, its output folder, a default `executor:` and one section per stage:

    name: demo
    out_dir: runs/demo
    executor: {type: local, tasks: 2}
    generate: {...}            # thinktoggle.generators.generate.GenerateConfig
    filter: {executor: {tasks: 4}, ...}   # a stage's `executor:` overrides the default, key by key

The YAML is *composed* (core/config_yaml.py: every value keeps its line, `--set` overrides included) and each
section is validated against its stage's frozen `XConfig` dataclass generically (core/config_build.py), so
a stage declares its settings once: errors read `recipe.yaml:12: filter.max_tokens: expected an integer, got 'x'`.
The stage commands (cli/stage_command.py) build their configs the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from thinktoggle.core.config_build import Invalid, build_dataclass, convert, recipe_dir, show_key, suggest
from thinktoggle.core.config_yaml import (
    MAP_TAG,
    NULL_TAG,
    STR_TAG,
    ConfigError,
    apply_override,
    compose_file,
    compose_text,
    describe,
    find,
    mapping_items,
    where,
)
from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.registry import STAGE_ORDER, STAGES, StageSpec, StageUnavailable

TOP_LEVEL_KEYS = ("name", "description", "out_dir", "inputs", "executor")

# A recipe that cannot be run; `problems` holds one `file:line: key.path: reason` line each. The same class
# as every settings error (core/config_yaml.py), so callers catch bad `--set`s and bad sections alike.
RecipeError = ConfigError


@dataclass(frozen=True)
class StageSection:
    """One stage of a recipe: its validated config and the executor it runs under (default + overrides)."""

    name: str
    config: Any
    executor: ExecutorConfig
    list_field: str = ""  # written as a bare list in YAML (e.g. `sources: [...]`)


@dataclass(frozen=True)
class Recipe:
    name: str
    out_dir: str
    stages: tuple[StageSection, ...]
    executor: ExecutorConfig = ExecutorConfig()
    description: str = ""
    inputs: tuple[str, ...] = ()  # records for the first stage, when it is not `generate`
    source: str = ""  # the file it was loaded from
    overrides: tuple[str, ...] = ()

    def stage(self, name: str) -> StageSection:
        for section in self.stages:
            if section.name == name:
                return section
        raise KeyError(name)

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe (every default filled in); loading it back gives the same recipe."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["out_dir"] = self.out_dir
        if self.inputs:
            data["inputs"] = list(self.inputs)
        data["executor"] = _plain(self.executor)
        for section in self.stages:
            body = _plain(section.config)
            if section.executor != self.executor:
                body["executor"] = _diff(_plain(section.executor), data["executor"])
            elif section.list_field and list(body) == [section.list_field]:
                body = body[section.list_field]
            data[section.name] = body
        return data

    def to_yaml(self) -> str:
        header = f"# resolved from {self.source or '(string)'}"
        if self.overrides:
            header += " with " + " ".join(f"--set {o}" for o in self.overrides)
        return header + "\n" + yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=120)

    def fingerprint(self) -> str:
        """A hash of everything that decides what the run writes (the name and description excluded)."""
        data = self.to_dict()
        data.pop("name", None)
        data.pop("description", None)
        data.pop("out_dir", None)  # a run folder may move
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def stage_fingerprint(self, name: str) -> str:
        """A hash of one stage's settings and of every stage before it (its inputs depend on them)."""
        data = self.to_dict()
        chain: list[Any] = [list(self.inputs)]  # the first stage's records, when it reads some
        for section in self.stages:
            chain.append({section.name: data[section.name], "executor": _plain(section.executor)})
            if section.name == name:
                break
        return hashlib.sha256(json.dumps(chain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """Dataclasses, tuples and paths as YAML-friendly dicts, lists and strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _diff(mine: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mine.items() if base.get(k) != v}


# ---------------------------------------------------------------------------------------------------- loading


def _recipe_root(node: yaml.Node) -> yaml.MappingNode:
    if not isinstance(node, yaml.MappingNode):
        raise RecipeError(
            [f"{where(node)}: a recipe is a mapping of sections (name, out_dir, executor, one per stage)"]
        )
    return node


def _merged_executor_node(default: yaml.Node | None, override: yaml.Node | None) -> yaml.MappingNode:
    """The default `executor:` mapping with a stage's keys laid over it (each value keeps its own line)."""
    items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for source in (default, override):
        if isinstance(source, yaml.MappingNode):
            for key, value in mapping_items(source):
                items[str(key.value)] = (key, value)
    merged = yaml.MappingNode(MAP_TAG, list(items.values()))
    merged.start_mark = (override or default).start_mark if (override or default) is not None else None
    return merged


def recipe_from_node(
    root: yaml.MappingNode, source: str = "", overrides: tuple[str, ...] = (), stages: dict[str, StageSpec] = STAGES
) -> Recipe:
    problems: list[str] = []
    known = list(TOP_LEVEL_KEYS) + list(stages)
    sections: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in mapping_items(root):
        name = str(key.value)
        if name not in known:
            problems.append(f"{where(key)}: {show_key(name)}: unknown section{suggest(name, known)}")
            continue
        sections[name] = (key, value)

    def text(name: str, default: str | None) -> str:
        if name not in sections:
            if default is None:
                problems.append(f"{where(root)}: {name}: missing (required)")
            return default or ""
        try:
            return convert(str, sections[name][1], name)
        except Invalid as exc:
            problems.extend(exc.problems)
            return ""

    name = text("name", None)
    out_dir = text("out_dir", None)
    description = text("description", "")
    inputs: tuple[str, ...] = ()
    if "inputs" in sections:
        try:
            inputs = convert(tuple[str, ...], sections["inputs"][1], "inputs")
        except Invalid as exc:
            problems.extend(exc.problems)
    default_exec_node = sections.get("executor", (None, None))[1]
    if default_exec_node is not None and not isinstance(default_exec_node, yaml.MappingNode):
        problems.append(f"{where(default_exec_node)}: executor: expected a mapping, got {describe(default_exec_node)}")
        default_exec_node = None
    executor = ExecutorConfig()
    if default_exec_node is not None:
        try:
            executor = build_dataclass(ExecutorConfig, default_exec_node, "executor")
        except Invalid as exc:
            problems.extend(exc.problems)

    built: list[StageSection] = []
    for stage_name in [s for s in STAGE_ORDER if s in sections] + [
        s for s in sections if s in stages and s not in STAGE_ORDER
    ]:
        key, node = sections[stage_name]
        spec = stages[stage_name]
        if isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG:
            node = yaml.MappingNode(MAP_TAG, [])
            node.start_mark = key.start_mark
        if isinstance(node, yaml.SequenceNode) and spec.list_field:  # `sources: [...]`
            field_key = yaml.ScalarNode(STR_TAG, spec.list_field)
            field_key.start_mark = key.start_mark
            field_key.path_alias = stage_name  # errors read `sources.0.limit`, not `sources.sources.0.limit`
            node = yaml.MappingNode(MAP_TAG, [(field_key, node)])
            node.start_mark = key.start_mark
        if not isinstance(node, yaml.MappingNode):
            problems.append(f"{where(node)}: {stage_name}: expected a mapping of settings, got {describe(node)}")
            continue
        try:
            config_cls = spec.config_class()
        except StageUnavailable as exc:
            problems.append(f"{where(key)}: {stage_name}: {exc}")
            continue
        exec_item = find(node, "executor")
        body = yaml.MappingNode(node.tag, [(k, v) for k, v in mapping_items(node) if k.value != "executor"])
        body.start_mark = key.start_mark  # a missing key is reported at the section's line
        stage_executor = executor
        if exec_item is not None:
            if not isinstance(exec_item[1], yaml.MappingNode):
                problems.append(f"{where(exec_item[1])}: {stage_name}.executor: expected a mapping")
            else:
                try:
                    stage_executor = build_dataclass(
                        ExecutorConfig, _merged_executor_node(default_exec_node, exec_item[1]), f"{stage_name}.executor"
                    )
                except Invalid as exc:  # a bad default is reported once, under `executor.`
                    own = [
                        p for p in exc.problems if p.replace(f" {stage_name}.executor.", " executor.") not in problems
                    ]
                    problems.extend(own)
        try:
            config = build_dataclass(config_cls, body, stage_name)
        except Invalid as exc:
            problems.extend(exc.problems)
            continue
        built.append(StageSection(stage_name, config, stage_executor, spec.list_field))
    if not problems and not built:
        problems.append(f"{where(root)}: no stages (expected some of: {', '.join(stages)})")
    if problems:
        raise RecipeError(_dedupe(problems))
    return Recipe(
        name=name,
        out_dir=out_dir,
        stages=tuple(built),
        executor=executor,
        description=description,
        inputs=inputs,
        source=source,
        overrides=overrides,
    )


def _dedupe(problems: list[str]) -> list[str]:
    return list(dict.fromkeys(problems))


def load_recipe(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), stages: dict[str, StageSpec] = STAGES
) -> Recipe:
    """Load, override and validate a recipe file. Raises RecipeError listing every problem found."""
    root = _recipe_root(compose_file(Path(path)))
    for assignment in overrides:
        apply_override(root, assignment)
    with recipe_dir(Path(path).resolve().parent):
        return recipe_from_node(root, source=str(path), overrides=tuple(overrides), stages=stages)


def loads_recipe(
    text: str,
    name: str = "<recipe>",
    overrides: list[str] | tuple[str, ...] = (),
    stages: dict[str, StageSpec] = STAGES,
) -> Recipe:
    root = _recipe_root(compose_text(text, name))
    for assignment in overrides:
        apply_override(root, assignment)
    return recipe_from_node(root, source=name, overrides=tuple(overrides), stages=stages)
