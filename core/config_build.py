"""A mapping of settings (YAML nodes, core/config_yaml.py) validated into a stage's frozen config dataclass.

Validation is generic: it reads the dataclass's fields and type hints, so a stage declares its settings once
and the recipe loader and the stage commands check them the same way. Every problem is collected and named
at its origin, `file:line: key.path: reason` or `--set key=value: key.path: reason`, with a "did you mean"
for unknown keys and choices.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from yaml.constructor import SafeConstructor

from thinktoggle.core.config_yaml import NULL_TAG, ConfigError, describe, mapping_items, where

RECIPE_DIR_VAR = "${recipe_dir}"  # in a string setting: the folder of the recipe file it was read from
_recipe_dir: contextvars.ContextVar[str] = contextvars.ContextVar("recipe_dir", default=".")


@contextlib.contextmanager
def recipe_dir(folder: str | Path):
    """While inside, `${recipe_dir}` in string settings stands for `folder`."""
    token = _recipe_dir.set(str(folder))
    try:
        yield
    finally:
        _recipe_dir.reset(token)


class Invalid(Exception):
    """Raised inside conversion; carries the problems found below this point."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems


def suggest(word: str, choices: list[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or ""."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def show_key(name: Any) -> str:
    """A key as error messages print it: quoted when blank or padded, so the line still reads `where: key: …`."""
    text = str(name)
    return text if text and text == text.strip() and text.isprintable() else repr(text)


def type_name(tp: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", Path: "a path"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _scalar(node: yaml.Node) -> Any:
    return SafeConstructor().construct_object(node, deep=True)


def convert(tp: Any, node: yaml.Node, path: str) -> Any:
    """The YAML `node` as a value of type `tp`, or `Invalid` naming `path` and the node's origin."""

    def bad(expected: str) -> Invalid:
        return Invalid([f"{where(node)}: {path}: expected {expected}, got {describe(node)}"])

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
            raise bad(" or ".join(type_name(a) for a in options))
        problems: list[str] = []
        for option in options:
            try:
                return convert(option, node, path)
            except Invalid as exc:
                problems = problems or exc.problems
        if len(options) == 1:
            raise Invalid(problems)
        raise bad(" or ".join(type_name(a) for a in options))
    if origin is Literal:
        if not isinstance(node, yaml.ScalarNode):
            raise bad(type_name(tp))
        value = node.value if all(isinstance(a, str) for a in args) and not is_null else _scalar(node)
        if value not in args:
            hint = suggest(str(value), [str(a) for a in args])
            raise Invalid([f"{where(node)}: {path}: expected {type_name(tp)}, got {describe(node)}{hint}"])
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
            except Invalid as exc:
                problems.extend(exc.problems)
        if problems:
            raise Invalid(problems)
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin in (dict, typing.Mapping) or tp is dict:
        if not isinstance(node, yaml.MappingNode):
            raise bad("a mapping")
        key_tp, value_tp = args if args else (str, Any)
        out, problems = {}, []
        for key, value in mapping_items(node):
            try:
                out[convert(key_tp, key, path)] = convert(value_tp, value, f"{path}.{key.value}")
            except Invalid as exc:
                problems.extend(exc.problems)
        if problems:
            raise Invalid(problems)
        return out
    if not isinstance(node, yaml.ScalarNode) or is_null:
        raise bad(type_name(tp))
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
    raise Invalid([f"{where(node)}: {path}: cannot check values of type {tp!r} (stage config uses it)"])


def build_dataclass(cls: type, node: yaml.MappingNode, path: str) -> Any:
    """An instance of the frozen dataclass `cls` from a mapping node, every problem collected (`Invalid`)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:  # a stage config whose annotations do not resolve is a bug in that stage
        raise Invalid([f"{where(node)}: {path}: cannot read {cls.__name__}'s fields: {exc}"]) from None
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    problems: list[str] = []
    given: set[str] = set()
    key_nodes: dict[str, yaml.Node] = {}
    prefix = f"{path}." if path else ""
    for key, value in mapping_items(node):
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name not in fields:
            hint = suggest(str(name), list(fields))
            problems.append(f"{where(key)}: {prefix}{show_key(name)}: unknown key{hint}")
            continue
        given.add(name)
        key_nodes[name] = key
        try:
            values[name] = convert(hints[name], value, getattr(key, "path_alias", prefix + name))
        except Invalid as exc:
            problems.extend(exc.problems)
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in given:
            problems.append(f"{where(node)}: {prefix}{name}: missing (required)")
    if problems:
        raise Invalid(problems)
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:  # the config's own checks (__post_init__)
        # A message that starts with a field name ("max_tokens: must be > 0") is reported at that key's line.
        message = str(exc)
        name, sep, rest = message.partition(":")
        name = name.strip().removeprefix(prefix)  # "generate.teacher_on: ..." from inside GenerateConfig
        if sep and name in key_nodes:
            raise Invalid([f"{where(key_nodes[name])}: {prefix}{name}:{rest}"]) from None
        if sep and name in fields:  # about a field left at its default: reported at the section
            raise Invalid([f"{where(node)}: {prefix}{name}:{rest}"]) from None
        raise Invalid([f"{where(node)}: {path or cls.__name__}: {message}"]) from None


def build_config(cls: type, node: yaml.MappingNode, path: str) -> Any:
    """`build_dataclass`, its problems raised as one ConfigError (each problem once)."""
    try:
        return build_dataclass(cls, node, path)
    except Invalid as exc:
        raise ConfigError(list(dict.fromkeys(exc.problems))) from None
