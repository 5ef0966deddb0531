"""Length limits per mode, in tokens.

The default counter is a fast byte-level estimate: UTF-8 bytes divided by `bytes_per_token` (1.0 counts
bytes exactly, an upper bound for any byte-level BPE; ~4 is typical for English BPE vocabularies). Point
`tokenizer` at a local Hugging Face tokenizer folder for exact counts with the student's own tokenizer.
A generation the engine cut at `max_tokens` (`sampling.finish_reason == "length"`) is dropped too: its
answer is unfinished even when it fits the limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from thinktoggle.schemas.record import Record, Verdict

FILTER_NAME = "length"
BYTES = "bytes"


@dataclass(frozen=True)
class LengthConfig:
    max_tokens_on: int = 32768
    max_tokens_off: int = 8192
    tokenizer: str = BYTES  # "bytes" or a local Hugging Face tokenizer folder
    bytes_per_token: float = 4.0
    drop_truncated: bool = True

    def __post_init__(self) -> None:
        if self.max_tokens_on < 1 or self.max_tokens_off < 1:
            raise ValueError("max_tokens_on and max_tokens_off must be >= 1")
        if self.bytes_per_token <= 0:
            raise ValueError(f"bytes_per_token must be > 0, got {self.bytes_per_token}")


def make_token_counter(config: LengthConfig) -> Callable[[str], int]:
    """A function text -> token count, per the config."""
    if config.tokenizer == BYTES:
        per = config.bytes_per_token
        return lambda text: math.ceil(len(text.encode("utf-8")) / per)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.tokenizer)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def length_verdict(record: Record, count_tokens: Callable[[str], int], config: LengthConfig) -> Verdict:
    if config.drop_truncated and record.sampling.get("finish_reason") == "length":
        return Verdict(FILTER_NAME, "fail", "truncated")
    limit = config.max_tokens_on if record.reasoning == "on" else config.max_tokens_off
    tokens = count_tokens(record.output)
    if tokens > limit:
        return Verdict(FILTER_NAME, "fail", f"too_long: {tokens} > {limit} tokens")
    return Verdict(FILTER_NAME, "pass")
