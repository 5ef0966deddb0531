"""Rows for the schema tests: one valid published row, and a way to change one field of it.

(A plain module, imported by the test files beside it; pytest puts this folder on sys.path.)
"""

from __future__ import annotations

import copy
from typing import Any

VALID_ROW: dict[str, Any] = {
    "input": [{"role": "user", "content": "What is 2 + 3 * 4?"}],
    "output": "<think>\n3 * 4 = 12, 2 + 12 = 14\n</think>\n\n\\boxed{14}",
    "category": "math",
    "license": "cc-by-4.0",
    "reasoning": "on",
    "generator": "DeepSeek-R1, Qwen-2.5-Math-7B-Instruct",
    "used_in_training": "Ultra, Super, Nano",
    "version": "v1.1",
    "system_prompt": "detailed thinking on",
}

DROP = object()  # as a value in `changed(...)`: remove the column


def changed(**changes: Any) -> dict[str, Any]:
    """VALID_ROW with some columns replaced (or removed with DROP)."""
    row = copy.deepcopy(VALID_ROW)
    for key, value in changes.items():
        if value is DROP:
            row.pop(key, None)
        else:
            row[key] = value
    return row
