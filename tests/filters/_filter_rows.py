"""Records in the shapes the filters see (helpers for the filter tests)."""

from __future__ import annotations

from thinktoggle.schemas.record import Record
from thinktoggle.schemas.think import compose_output


def record(
    output: str,
    reasoning: str = "on",
    category: str = "math",
    prompt: str = "What is 1 + 1?",
    gold: str | None = None,
    sample: int = 0,
    **changes,
) -> Record:
    return Record(
        input=[{"role": "user", "content": prompt}],
        category=category,
        reasoning=reasoning,
        output=output,
        expected_answer=gold,
        generator="test-teacher",
        sample=sample,
        **changes,
    )


def on(reasoning: str, answer: str, **kwargs) -> Record:
    return record(compose_output(reasoning, answer), "on", **kwargs)


def off(answer: str, **kwargs) -> Record:
    return record(answer, "off", **kwargs)
