"""Command-line options from a config dataclass: one option per field, named, typed, defaulted and helped by it.

    field                                   option                           value on the command line
    max_steps: int = 1000  # optimizer steps   --max-steps INT  [default: 1000]   read as YAML (like --set)
    math: MathConfig → row_timeout_s        --math-row-timeout-s FLOAT         nested dataclasses flattened
    packing: bool = True                    --packing / --no-packing
    kind: Literal["vllm", "openai"]         --engine-kind [vllm|openai]
    only: tuple[str, ...]                   --only TEXT,...                    comma-separated
    caps: dict[str, int]                    (none: --set caps.math=16)         dicts, lists of dataclasses, unions

The help of an option is the trailing `# comment` of its field in the dataclass source; the default shown is
the config's own. An option only says what the user typed: it becomes a YAML node at a key path (origin: the
option as typed) and the whole mapping goes through core/config_build.py, the validation recipes use.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import shlex
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from thinktoggle.core.config_yaml import BOOL_TAG, parse_value, sequence_node, str_node, with_origin

FLOAT_TAG = "tag:yaml.org,2002:float"
SCALARS = (str, int, float, Path)


@dataclass(frozen=True)
class FieldOption:
    """One config field as a command-line option."""

    path: tuple[str, ...]  # key path in the settings mapping, e.g. ("math", "row_timeout_s")
    flag: str  # "--math-row-timeout-s"
    kind: Literal["flag", "value", "list"]
    value_type: Any  # the type of the value (of each item for "list")
    default: Any  # the config's default (dataclasses.MISSING: required)
    help: str
    section: str  # the help section it is listed in

    @property
    def dest(self) -> str:
        return "__".join(self.path)

    @property
    def metavar(self) -> str:
        if typing.get_origin(self.value_type) is Literal:
            name = "[" + "|".join(str(a) for a in typing.get_args(self.value_type)) + "]"
        else:
            name = {int: "INT", float: "FLOAT", Path: "PATH"}.get(self.value_type, "TEXT")
        return f"{name},..." if self.kind == "list" else name

    def shown_default(self) -> Any:
        """The default as the user would type it (None: nothing to show)."""
        if self.default is dataclasses.MISSING or self.default is None:
            return None
        if self.kind == "flag":
            return bool(self.default)
        if self.kind == "list":
            return ",".join(str(v) for v in self.default)
        return str(self.default)

    def node(self, value: Any, flag: str = "") -> yaml.Node:
        """The YAML node for what was typed as `flag` (`value`: the raw text, or a bool for a flag)."""
        flag = flag or self.flag
        if self.kind == "flag":
            origin = flag if value else "--no-" + flag.removeprefix("--")
            return with_origin(yaml.ScalarNode(BOOL_TAG, "true" if value else "false"), origin)
        origin = f"{flag} {shlex.quote(value)}"
        if self.kind == "list":
            items = [part.strip() for part in value.split(",") if part.strip()]
            return sequence_node([scalar_node(self.value_type, item, origin) for item in items], origin)
        return scalar_node(self.value_type, value, origin)


def scalar_node(tp: Any, raw: str, origin: str) -> yaml.Node:
    """Typed text as a node: strings as they are, numbers as written (`1e-3` too), anything else as YAML."""
    literal_strings = typing.get_origin(tp) is Literal and all(isinstance(a, str) for a in typing.get_args(tp))
    if tp in (str, Path) or literal_strings:
        return str_node(raw, origin)
    if tp is float:
        try:
            float(raw)
        except ValueError:
            pass
        else:  # YAML 1.1 reads `1e-3` as a string; Python's float() is what a user means
            return with_origin(yaml.ScalarNode(FLOAT_TAG, raw), origin)
    return parse_value(raw, origin)


def _unwrap_optional(tp: Any) -> Any:
    """`X | None` → X; a union of several types → None (not an option)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return options[0] if len(options) == 1 else None
    return tp


def _is_scalar(tp: Any) -> bool:
    return tp in SCALARS or typing.get_origin(tp) is Literal


def _classify(tp: Any) -> tuple[str, Any] | None:
    """("flag" | "value" | "list" | "nested", type) for a field type; None: reachable through --set only."""
    tp = _unwrap_optional(tp)
    if tp is None:
        return None
    if tp is bool:
        return "flag", bool
    if _is_scalar(tp):
        return "value", tp
    if dataclasses.is_dataclass(tp):
        return "nested", tp
    if typing.get_origin(tp) in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if len(set(args)) == 1 and _is_scalar(args[0]) and (typing.get_origin(tp) is list or len(args) == 1):
            return "list", args[0]
    return None


def _default_of(f: dataclasses.Field, parent_default: Any) -> Any:
    if parent_default is not None and parent_default is not dataclasses.MISSING:
        return getattr(parent_default, f.name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def field_options(cls: type, section: str, prefix: tuple[str, ...] = (), defaults: Any = None) -> list[FieldOption]:
    """The options of every field of `cls` (nested dataclasses flattened; each top-level nested one is a section)."""
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    options: list[FieldOption] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        classified = _classify(hints[f.name])
        if classified is None:
            continue
        kind, tp = classified
        path = (*prefix, f.name)
        default = _default_of(f, defaults)
        if kind == "nested":
            title = section if prefix else f"{f.name}: {comments.get(f.name) or tp.__name__}"
            nested_default = None if default in (None, dataclasses.MISSING) else default
            options += field_options(tp, title, path, nested_default)
            continue
        text = comments.get(f.name, "")
        if default is dataclasses.MISSING:
            text = f"(required) {text}".strip()
        flag = "--" + "-".join(path).replace("_", "-")
        options.append(FieldOption(path, flag, kind, tp, default, text, section))
    return options


_NOT_HELP = ("noqa", "type:", "pragma", "ty:")


@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """{field: its trailing `# comment`} from the source of `cls` and its dataclass bases."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # no source (a compiled or interactive class): no help
            continue
        by_line: dict[int, str] = {}
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                text = token.string.lstrip("#").strip()
                if text and not text.startswith(_NOT_HELP):
                    by_line[token.start[0]] = text
        tree = ast.parse(source)
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for statement in body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                text = by_line.get(statement.end_lineno or statement.lineno) or by_line.get(statement.lineno)
                if text:
                    comments[statement.target.id] = text
    return comments
