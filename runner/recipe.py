"""YAML recipes: load, override with `--set`, and validate against the stages' own config dataclasses.

A recipe names the run, its output folder, a default `executor:` and one section per stage:

    name: demo
    out_dir: runs/demo
    executor: {type: local, tasks: 2}
    generate: {...}            # thinktoggle.generators.generate.GenerateConfig
    filter: {executor: {tasks: 4}, ...}   # a stage's `executor:` overrides the default, key by key

Validation is generic: every section is checked against the stage's frozen `XConfig` dataclass by looking at
its fields and type hints, so a stage declares its settings once. The YAML is *composed* (not just loaded) so
that every value keeps its line: errors read `recipe.yaml:12: filter.max_tokens: expected an integer, got 'x'`.
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from yaml.constructor import SafeConstructor

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.registry import STAGE_ORDER, STAGES, StageSpec, StageUnavailable

RECIPE_DIR_VAR = "${recipe_dir}"
_recipe_dir: contextvars.ContextVar[str] = contextvars.ContextVar("recipe_dir", default=".")
TOP_LEVEL_KEYS = ("name", "description", "out_dir", "inputs", "executor")
STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"


class RecipeError(Exception):
    """A recipe that cannot be run; `problems` holds one `file:line: key.path: reason` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


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


# ----------------------------------------------------------------------------------------------- YAML nodes


def _where(node: yaml.Node) -> str:
    """`file:line` of a node, or the `--set` that put it there."""
    origin = getattr(node, "origin", None)
    if origin:
        return origin
    mark = node.start_mark
    return f"{mark.name}:{mark.line + 1}"


def _compose_file(path: Path) -> yaml.MappingNode:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RecipeError([f"{path}: no such recipe file"]) from None
    except OSError as exc:
        raise RecipeError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes().count(b"\n", 0, exc.start) + 1
        raise RecipeError([f"{path}:{line}: not UTF-8 text (byte {exc.start})"]) from None
    return _compose_text(text, str(path))


def _compose_text(text: str, name: str) -> yaml.MappingNode:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{name}:{mark.line + 1}" if mark else name
        raise RecipeError([f"{line}: invalid YAML: {exc.problem or exc.context}"]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML refuses (a control character): no mark, a position
        line = text.count("\n", 0, exc.position) + 1
        raise RecipeError([f"{name}:{line}: invalid YAML: {exc.reason} (character {exc.character!r})"]) from None
    if node is None:
        raise RecipeError([f"{name}:1: empty recipe"])
    for mark_holder in _walk(node):
        mark_holder.start_mark.name = name
    if not isinstance(node, yaml.MappingNode):
        raise RecipeError(
            [f"{_where(node)}: a recipe is a mapping of sections (name, out_dir, executor, one per stage)"]
        )
    return node


def _walk(node: yaml.Node):
    seen: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend((key, value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _mapping_items(node: yaml.MappingNode) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
    SafeConstructor().flatten_mapping(node)  # resolve `<<: *anchor` merge keys in place
    return node.value


def _find(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for key_node, value in _mapping_items(node):
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value
    return None


def apply_override(root: yaml.MappingNode, assignment: str) -> None:
    """`a.b.c=value`: set a key (creating mappings on the way; list items by index) to a YAML scalar/flow value."""
    origin = f"--set {assignment}"
    key_path, sep, raw = assignment.partition("=")
    if not sep or not key_path.strip():
        raise RecipeError([f"{origin}: expected KEY.PATH=VALUE"])
    try:
        value = yaml.compose(raw, Loader=yaml.SafeLoader) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise RecipeError([f"{origin}: value is not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if value is None:
        value = yaml.ScalarNode(NULL_TAG, "null")
    for node in _walk(value):
        node.origin = origin
    parts = key_path.strip().split(".")
    node: yaml.Node = root
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(parts[: depth + 1])
        if isinstance(node, yaml.SequenceNode):
            if not part.isdigit() or int(part) >= len(node.value):
                raise RecipeError([f"{origin}: {here}: no item {part!r} in a list of {len(node.value)}"])
            if last:
                node.value[int(part)] = value
            else:
                node = node.value[int(part)]
            continue
        if not isinstance(node, yaml.MappingNode):
            raise RecipeError([f"{origin}: {'.'.join(parts[:depth])} is not a mapping"])
        found = _find(node, part)
        if last:
            if found:
                node.value = [(k, value if k is found[0] else v) for k, v in node.value]
            else:
                key = yaml.ScalarNode(STR_TAG, part)
                key.origin = origin
                node.value.append((key, value))
            return
        if found is None:
            key = yaml.ScalarNode(STR_TAG, part)
            child = yaml.MappingNode("tag:yaml.org,2002:map", [])
            key.origin = child.origin = origin
            node.value.append((key, child))
            node = child
        else:
            node = found[1]


# ----------------------------------------------------------------------------------------- generic validation


class _Invalid(Exception):
    """Raised inside conversion; carries the problems found below this point."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == NULL_TAG:
        return "null"
    return repr(node.value) if node.tag == STR_TAG else node.value


def _type_name(tp: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", Path: "a path"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _scalar(node: yaml.Node) -> Any:
    return SafeConstructor().construct_object(node, deep=True)


def convert(tp: Any, node: yaml.Node, path: str) -> Any:
    """The YAML `node` as a value of type `tp`, or `_Invalid` naming `path` and the node's line."""

    def bad(expected: str) -> _Invalid:
        return _Invalid([f"{_where(node)}: {path}: expected {expected}, got {_describe(node)}"])

    if tp is Any or tp is object:
        return SafeConstructor().construct_document(node)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    is_null = isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG
    if origin is Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        if is_null:
            if len(options) < len(args):
                return None
            raise bad(" or ".join(_type_name(a) for a in options))
        problems: list[str] = []
        for option in options:
            try:
                return convert(option, node, path)
            except _Invalid as exc:
                problems = problems or exc.problems
        if len(options) == 1:
            raise _Invalid(problems)
        raise bad(" or ".join(_type_name(a) for a in options))
    if origin is Literal:
        if not isinstance(node, yaml.ScalarNode):
            raise bad(_type_name(tp))
        value = node.value if all(isinstance(a, str) for a in args) and not is_null else _scalar(node)
        if value not in args:
            hint = _suggest(str(value), [str(a) for a in args])
            raise _Invalid([f"{_where(node)}: {path}: expected {_type_name(tp)}, got {_describe(node)}{hint}"])
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(node, yaml.MappingNode):
            raise bad(f"a mapping ({tp.__name__})")
        return build_dataclass(tp, node, path)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(node, yaml.SequenceNode):
            raise bad("a list")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(node.value):
                raise bad(f"a list of {len(args)} items")
            item_types = list(args)
        else:
            item_types = [args[0] if args else Any] * len(node.value)
        items, problems = [], []
        for i, (item_tp, item) in enumerate(zip(item_types, node.value, strict=True)):
            try:
                items.append(convert(item_tp, item, f"{path}.{i}"))
            except _Invalid as exc:
                problems.extend(exc.problems)
        if problems:
            raise _Invalid(problems)
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin in (dict, typing.Mapping) or tp is dict:
        if not isinstance(node, yaml.MappingNode):
            raise bad("a mapping")
        key_tp, value_tp = args if args else (str, Any)
        out, problems = {}, []
        for key, value in _mapping_items(node):
            try:
                out[convert(key_tp, key, path)] = convert(value_tp, value, f"{path}.{key.value}")
            except _Invalid as exc:
                problems.extend(exc.problems)
        if problems:
            raise _Invalid(problems)
        return out
    if not isinstance(node, yaml.ScalarNode) or is_null:
        raise bad(_type_name(tp))
    if tp is str or tp is Path:
        # The raw text: `time: 24:00:00` stays a string instead of YAML 1.1's sexagesimal 86400.
        # `${recipe_dir}` is the recipe file's folder, so a recipe can name data shipped beside it.
        return tp(node.value.replace(RECIPE_DIR_VAR, _recipe_dir.get()))
    if tp is bool:
        if node.tag != "tag:yaml.org,2002:bool":
            raise bad("true or false")
        return _scalar(node)
    if tp is int:
        if node.tag != "tag:yaml.org,2002:int":
            raise bad("an integer")
        return _scalar(node)
    if tp is float:
        if node.tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
            raise bad("a number")
        return float(_scalar(node))
    raise _Invalid([f"{_where(node)}: {path}: cannot check values of type {tp!r} (stage config uses it)"])


def build_dataclass(cls: type, node: yaml.MappingNode, path: str, parent: yaml.Node | None = None) -> Any:
    """An instance of the frozen dataclass `cls` from a mapping node, every problem collected."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:  # a stage config whose annotations do not resolve is a bug in that stage
        raise _Invalid([f"{_where(node)}: {path}: cannot read {cls.__name__}'s fields: {exc}"]) from None
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    problems: list[str] = []
    given: set[str] = set()
    key_nodes: dict[str, yaml.Node] = {}
    prefix = f"{path}." if path else ""
    for key, value in _mapping_items(node):
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name not in fields:
            hint = _suggest(str(name), list(fields))
            problems.append(f"{_where(key)}: {prefix}{name}: unknown key{hint}")
            continue
        given.add(name)
        key_nodes[name] = key
        try:
            values[name] = convert(hints[name], value, getattr(key, "path_alias", prefix + name))
        except _Invalid as exc:
            problems.extend(exc.problems)
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in given:
            problems.append(f"{_where(node)}: {prefix}{name}: missing (required)")
    if problems:
        raise _Invalid(problems)
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:  # the config's own checks (__post_init__)
        # A message that starts with a field name ("max_tokens: must be > 0") is reported at that key's line.
        message = str(exc)
        name, sep, rest = message.partition(":")
        name = name.strip().removeprefix(prefix)  # "generate.teacher_on: ..." from inside GenerateConfig
        if sep and name in key_nodes:
            raise _Invalid([f"{_where(key_nodes[name])}: {prefix}{name}:{rest}"]) from None
        if sep and name in fields:  # about a field left at its default: reported at the section
            raise _Invalid([f"{_where(node)}: {prefix}{name}:{rest}"]) from None
        raise _Invalid([f"{_where(node)}: {path or cls.__name__}: {message}"]) from None


# ---------------------------------------------------------------------------------------------------- loading


def _merged_executor_node(default: yaml.Node | None, override: yaml.Node | None) -> yaml.MappingNode:
    """The default `executor:` mapping with a stage's keys laid over it (each value keeps its own line)."""
    items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for source in (default, override):
        if isinstance(source, yaml.MappingNode):
            for key, value in _mapping_items(source):
                items[str(key.value)] = (key, value)
    merged = yaml.MappingNode("tag:yaml.org,2002:map", list(items.values()))
    merged.start_mark = (override or default).start_mark if (override or default) is not None else None
    return merged


def recipe_from_node(
    root: yaml.MappingNode, source: str = "", overrides: tuple[str, ...] = (), stages: dict[str, StageSpec] = STAGES
) -> Recipe:
    problems: list[str] = []
    known = list(TOP_LEVEL_KEYS) + list(stages)
    sections: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in _mapping_items(root):
        name = str(key.value)
        if name not in known:
            problems.append(f"{_where(key)}: {name}: unknown section{_suggest(name, known)}")
            continue
        sections[name] = (key, value)

    def text(name: str, default: str | None) -> str:
        if name not in sections:
            if default is None:
                problems.append(f"{_where(root)}: {name}: missing (required)")
            return default or ""
        try:
            return convert(str, sections[name][1], name)
        except _Invalid as exc:
            problems.extend(exc.problems)
            return ""

    name = text("name", None)
    out_dir = text("out_dir", None)
    description = text("description", "")
    inputs: tuple[str, ...] = ()
    if "inputs" in sections:
        try:
            inputs = convert(tuple[str, ...], sections["inputs"][1], "inputs")
        except _Invalid as exc:
            problems.extend(exc.problems)
    default_exec_node = sections.get("executor", (None, None))[1]
    if default_exec_node is not None and not isinstance(default_exec_node, yaml.MappingNode):
        problems.append(
            f"{_where(default_exec_node)}: executor: expected a mapping, got {_describe(default_exec_node)}"
        )
        default_exec_node = None
    executor = ExecutorConfig()
    if default_exec_node is not None:
        try:
            executor = build_dataclass(ExecutorConfig, default_exec_node, "executor")
        except _Invalid as exc:
            problems.extend(exc.problems)

    built: list[StageSection] = []
    for stage_name in [s for s in STAGE_ORDER if s in sections] + [
        s for s in sections if s in stages and s not in STAGE_ORDER
    ]:
        key, node = sections[stage_name]
        spec = stages[stage_name]
        if isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG:
            node = yaml.MappingNode("tag:yaml.org,2002:map", [])
            node.start_mark = key.start_mark
        if isinstance(node, yaml.SequenceNode) and spec.list_field:  # `sources: [...]`
            field_key = yaml.ScalarNode(STR_TAG, spec.list_field)
            field_key.start_mark = key.start_mark
            field_key.path_alias = stage_name  # errors read `sources.0.limit`, not `sources.sources.0.limit`
            node = yaml.MappingNode("tag:yaml.org,2002:map", [(field_key, node)])
            node.start_mark = key.start_mark
        if not isinstance(node, yaml.MappingNode):
            problems.append(f"{_where(node)}: {stage_name}: expected a mapping of settings, got {_describe(node)}")
            continue
        try:
            config_cls = spec.config_class()
        except StageUnavailable as exc:
            problems.append(f"{_where(key)}: {stage_name}: {exc}")
            continue
        exec_item = _find(node, "executor")
        body = yaml.MappingNode(node.tag, [(k, v) for k, v in _mapping_items(node) if k.value != "executor"])
        body.start_mark = key.start_mark  # a missing key is reported at the section's line
        stage_executor = executor
        if exec_item is not None:
            if not isinstance(exec_item[1], yaml.MappingNode):
                problems.append(f"{_where(exec_item[1])}: {stage_name}.executor: expected a mapping")
            else:
                try:
                    stage_executor = build_dataclass(
                        ExecutorConfig, _merged_executor_node(default_exec_node, exec_item[1]), f"{stage_name}.executor"
                    )
                except _Invalid as exc:  # a bad default is reported once, under `executor.`
                    own = [
                        p for p in exc.problems if p.replace(f" {stage_name}.executor.", " executor.") not in problems
                    ]
                    problems.extend(own)
        try:
            config = build_dataclass(config_cls, body, stage_name)
        except _Invalid as exc:
            problems.extend(exc.problems)
            continue
        built.append(StageSection(stage_name, config, stage_executor, spec.list_field))
    if not problems and not built:
        problems.append(f"{_where(root)}: no stages (expected some of: {', '.join(stages)})")
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
    root = _compose_file(Path(path))
    for assignment in overrides:
        apply_override(root, assignment)
    token = _recipe_dir.set(str(Path(path).resolve().parent))
    try:
        return recipe_from_node(root, source=str(path), overrides=tuple(overrides), stages=stages)
    finally:
        _recipe_dir.reset(token)


def loads_recipe(
    text: str,
    name: str = "<recipe>",
    overrides: list[str] | tuple[str, ...] = (),
    stages: dict[str, StageSpec] = STAGES,
) -> Recipe:
    root = _compose_text(text, name)
    for assignment in overrides:
        apply_override(root, assignment)
    return recipe_from_node(root, source=name, overrides=tuple(overrides), stages=stages)
