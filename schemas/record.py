"""The internal record: one prompt answered in one mode by one teacher sample, plus everything known about it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from thinktoggle.schemas.think import system_prompt_for

Reasoning = Literal["on", "off"]
VerdictValue = Literal["pass", "fail", "unverifiable", "error"]

CATEGORIES = ("math", "code", "science", "chat", "safety", "tool_calling")  # the Llama-Nemotron layout's
ROLES = ("system", "user", "assistant", "tool")
# The conversational layouts (schemas/conversation.py) add NVIDIA's `stem` and per-language categories.
RECORD_CATEGORIES = (*CATEGORIES, "stem")
MULTILINGUAL = re.compile(r"multilingual_[a-z]{2,3}")


def is_record_category(name: object) -> bool:
    """A category a record may carry: one of RECORD_CATEGORIES or `multilingual_<lang>`."""
    return isinstance(name, str) and (name in RECORD_CATEGORIES or MULTILINGUAL.fullmatch(name) is not None)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form that content hashes are taken over."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_hash(*parts: Any) -> str:
    """A 16-hex-digit (64-bit) hash of the parts' canonical JSON."""
    return hashlib.blake2b(canonical_json(list(parts)).encode(), digest_size=8).hexdigest()


def _hashed_turn(message: dict[str, Any]) -> dict[str, Any]:
    turn = {"role": message["role"], "content": message["content"]}
    if message.get("tool_calls"):  # only then: the ids of turns without tool calls stay as they were
        turn["tool_calls"] = message["tool_calls"]
    return turn


def make_pair_id(category: str, messages: list[dict[str, Any]]) -> str:
    """The id shared by every sample of one prompt in both modes: category + prompt messages."""
    return content_hash("pair", category, [_hashed_turn(m) for m in messages])


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one filter (or the generator) decided about a record, and why."""

    filter: str
    verdict: VerdictValue
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"filter": self.filter, "verdict": self.verdict, "reason": self.reason}


@dataclass(slots=True)
class Record:
    """One sample. `input` holds the prompt turns (no system turn); the mode's system prompt is separate.

    `output` is the published output (`<think>\\n…\\n</think>\\n\\n answer` when on): one source of truth,
    split on demand with `thinktoggle.schemas.think.split_output`. A prompt not yet answered has output "".
    An assistant turn in `input` may carry `tool_calls` (OpenAI form: {id, type, function: {name, arguments}});
    the answer's own tool calls are `tool_calls`. Both are absent (no key, empty list) when there are none.
    """

    input: list[dict[str, Any]]
    category: str
    reasoning: Reasoning
    output: str = ""
    system_prompt: str | None = None  # None: the mode's Nemotron prompt; "" (a published row without one) stays ""
    expected_answer: str | None = None
    tests: dict[str, Any] | None = None
    generator: str = ""
    license: str = "cc-by-4.0"
    used_in_training: str = ""
    version: str = "v1.1"
    sample: int = 0  # index among the n samples of this prompt and mode
    sampling: dict[str, Any] = field(default_factory=dict)  # provenance: engine, teacher, params, usage
    verdicts: list[Verdict] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # the answer's tool calls (OpenAI form)
    pair_id: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if self.system_prompt is None:
            self.system_prompt = system_prompt_for(self.reasoning)
        if not self.pair_id:
            self.pair_id = make_pair_id(self.category, self.input)
        if not self.id:
            self.id = self.compute_id()

    def compute_id(self) -> str:
        if self.tool_calls:  # only then: ids of records without tool calls stay as they were
            return content_hash("record", self.pair_id, self.reasoning, self.sample, self.output, self.tool_calls)
        return content_hash("record", self.pair_id, self.reasoning, self.sample, self.output)

    def with_output(self, output: str, **changes: Any) -> Record:
        """A copy answered with `output` (and other changes), its id recomputed."""
        return replace(self, output=output, id="", **changes)

    def with_verdict(self, verdict: Verdict) -> Record:
        return replace(self, verdicts=[*self.verdicts, verdict])

    @property
    def prompt(self) -> str:
        """The last user turn: what dedup and decontamination compare."""
        return next((m["content"] for m in reversed(self.input) if m["role"] == "user"), "")

    def chat_messages(self) -> list[dict[str, str]]:
        """System prompt + prompt turns: what a teacher is sent."""
        if not self.system_prompt:
            return list(self.input)
        return [{"role": "system", "content": self.system_prompt}, *self.input]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdicts"] = [v.to_dict() for v in self.verdicts]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown record fields: {sorted(unknown)}")
        values = dict(data)
        values["verdicts"] = [v if isinstance(v, Verdict) else Verdict(**v) for v in values.get("verdicts") or []]
        return cls(**values)
