"""Stage accounting: every record that enters a stage is kept, dropped (with a reason) or failed (with a reason).

The identity `in == kept + dropped + failed` is checked whenever stats are written.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinktoggle.schemas.io import atomic_write_text


class AccountingError(AssertionError):
    """Records were lost or double-counted: in != kept + dropped + failed."""


@dataclass
class StageStats:
    stage: str
    n_in: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    failed: Counter = field(default_factory=Counter)  # reason -> count
    by_filter: dict[str, dict[str, Any]] = field(default_factory=dict)  # filter -> {"kept": k, "dropped": {..}}

    def keep(self) -> None:
        self.kept += 1

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def fail(self, reason: str) -> None:
        self.failed[reason] += 1

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def n_failed(self) -> int:
        return sum(self.failed.values())

    def check(self) -> None:
        if self.n_in != self.kept + self.n_dropped + self.n_failed:
            raise AccountingError(
                f"{self.stage}: in={self.n_in} != kept={self.kept} + dropped={self.n_dropped} + failed={self.n_failed}"
            )

    def merge(self, other: StageStats) -> StageStats:
        """Add another shard's counts (same stage) into this one."""
        self.n_in += other.n_in
        self.kept += other.kept
        self.dropped.update(other.dropped)
        self.failed.update(other.failed)
        for name, counts in other.by_filter.items():
            mine = self.by_filter.setdefault(name, {"kept": 0, "dropped": {}})
            mine["kept"] += counts.get("kept", 0)
            for outcome in ("dropped", "failed"):  # "failed" is optional: a filter that could not run on rows
                if outcome not in counts:
                    continue
                into = mine.setdefault(outcome, {})
                for reason, n in counts[outcome].items():
                    into[reason] = into.get(reason, 0) + n
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "in": self.n_in,
            "kept": self.kept,
            "dropped": self.n_dropped,
            "failed": self.n_failed,
            "dropped_reasons": dict(sorted(self.dropped.items())),
            "failed_reasons": dict(sorted(self.failed.items())),
            "by_filter": self.by_filter,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageStats:
        return cls(
            stage=data["stage"],
            n_in=data["in"],
            kept=data["kept"],
            dropped=Counter(data.get("dropped_reasons", {})),
            failed=Counter(data.get("failed_reasons", {})),
            by_filter=data.get("by_filter", {}),
        )

    def write(self, path: str | Path) -> Path:
        self.check()
        return atomic_write_text(json.dumps(self.to_dict(), indent=2) + "\n", path)

    @classmethod
    def read(cls, path: str | Path) -> StageStats:
        return cls.from_dict(json.loads(Path(path).read_text()))
