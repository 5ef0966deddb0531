"""YAML nodes that remember where they came from, and `--set key.path=value` overrides on them.

Settings (a recipe file, a stage command's options and `--set`s) are *composed* into PyYAML nodes instead of
being loaded into plain values, so that every value keeps its origin: `recipe.yaml:12` for a value read from a
file, or the option that put it there (`--set mix.seed=abc`, `--max-steps x`). `core/config_build.py` turns a
mapping node into a stage's frozen config dataclass and reports problems at those origins.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor

STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"
BOOL_TAG = "tag:yaml.org,2002:bool"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"


class ConfigError(Exception):
    """Settings that cannot be used; `problems` holds one `origin: key.path: reason` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def where(node: yaml.Node) -> str:
    """`file:line` of a node, or the option (`--set ...`) that put it there."""
    origin = getattr(node, "origin", None)
    if origin:
        return origin
    mark = node.start_mark
    return f"{mark.name}:{mark.line + 1}"


def describe(node: yaml.Node) -> str:
    """A node's value as an error message shows it."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == NULL_TAG:
        return "null"
    return repr(node.value) if node.tag == STR_TAG else node.value


def with_origin(node: yaml.Node, origin: str) -> yaml.Node:
    """`node` and everything below it reported at `origin` (e.g. the option that gave it)."""
    for each in walk(node):
        each.origin = origin
    return node


def str_node(text: str, origin: str) -> yaml.ScalarNode:
    """A string value, taken as it is (never read as YAML)."""
    return with_origin(yaml.ScalarNode(STR_TAG, text), origin)


def mapping_node(items: list[tuple[yaml.Node, yaml.Node]], origin: str) -> yaml.MappingNode:
    node = yaml.MappingNode(MAP_TAG, items)
    node.origin = origin
    return node


def sequence_node(items: list[yaml.Node], origin: str) -> yaml.SequenceNode:
    node = yaml.SequenceNode(SEQ_TAG, items)
    node.origin = origin
    return node


def compose_file(path: Path, what: str = "recipe") -> yaml.Node:
    """The YAML document in `path` as nodes marked `path:line`. Raises ConfigError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such {what} file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes().count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{path}:{line}: not UTF-8 text (byte {exc.start})"]) from None
    return compose_text(text, str(path), what)


def compose_text(text: str, name: str, what: str = "recipe") -> yaml.Node:
    """A YAML document as nodes marked `name:line`. Raises ConfigError (invalid YAML, empty document)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{name}:{mark.line + 1}" if mark else name
        raise ConfigError([f"{line}: invalid YAML: {exc.problem or exc.context}"]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML refuses (a control character): no mark, a position
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError([f"{name}:{line}: invalid YAML: {exc.reason} (character {exc.character!r})"]) from None
    if node is None:
        raise ConfigError([f"{name}:1: empty {what}"])
    for mark_holder in walk(node):
        mark_holder.start_mark.name = name
    return node


def walk(node: yaml.Node) -> Iterator[yaml.Node]:
    """`node` and every node below it, each once (anchors and aliases share nodes)."""
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


def mapping_items(node: yaml.MappingNode) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
    """The (key, value) pairs of a mapping, `<<: *anchor` merge keys resolved in place."""
    SafeConstructor().flatten_mapping(node)
    return node.value


def find(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key, value) pair of `key` in a mapping, or None."""
    for key_node, value in mapping_items(node):
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value
    return None


def pop(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """Remove `key` from a mapping; its (key, value) pair, or None."""
    found = find(node, key)
    if found is not None:
        node.value = [(k, v) for k, v in node.value if k is not found[0]]
    return found


def parse_value(raw: str, origin: str) -> yaml.Node:
    """`raw` read as a YAML scalar or flow value (`3`, `true`, `[a, b]`, `{x: 1}`; empty: null), at `origin`."""
    try:
        value = yaml.compose(raw, Loader=yaml.SafeLoader) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{origin}: value is not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if value is None:
        value = yaml.ScalarNode(NULL_TAG, "null")
    return with_origin(value, origin)


def set_path(root: yaml.MappingNode, key_path: str, value: yaml.Node, origin: str) -> None:
    """Set `a.b.c` in `root` to `value`, creating mappings on the way (list items by index)."""
    parts = key_path.strip().split(".")
    node: yaml.Node = root
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(parts[: depth + 1])
        if isinstance(node, yaml.SequenceNode):
            if not part.isdigit() or int(part) >= len(node.value):
                raise ConfigError([f"{origin}: {here}: no item {part!r} in a list of {len(node.value)}"])
            if last:
                node.value[int(part)] = value
            else:
                node = node.value[int(part)]
            continue
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError([f"{origin}: {'.'.join(parts[:depth])} is not a mapping"])
        found = find(node, part)
        if last:
            if found:
                node.value = [(k, value if k is found[0] else v) for k, v in node.value]
            else:
                node.value.append((str_node(part, origin), value))
            return
        if found is None:
            child = mapping_node([], origin)
            node.value.append((str_node(part, origin), child))
            node = child
        else:
            node = found[1]


def apply_override(root: yaml.MappingNode, assignment: str) -> None:
    """`--set a.b.c=value`: set a key (creating mappings on the way; list items by index) to a YAML value."""
    origin = f"--set {assignment}"
    key_path, sep, raw = assignment.partition("=")
    if not sep or not key_path.strip():
        raise ConfigError([f"{origin}: expected KEY.PATH=VALUE"])
    set_path(root, key_path, parse_value(raw, origin), origin)
