"""The one per-record decision: a judge returns a `Verdict`, and the verdict decides kept, dropped or failed.

Every filter, dedup, decontamination and mix decides through this interface, so that every stage routes a
record the same way (core/outputs.py `StageOutputs.write`):

    None or a verdict the KeepPolicy keeps  -> kept
    verdict "error"                         -> failed (the judge could not decide: a bug, a timeout, a crash)
    any other verdict                       -> dropped

A verdict's reason reads `identifier[: detail]`; stats count the identifier (`reason_key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from thinktoggle.schemas.record import Record, Verdict

VERDICT_VALUES = ("pass", "fail", "unverifiable")
Outcome = Literal["kept", "dropped", "failed"]


class RecordJudge(Protocol):
    """Judges one record: None when it does not apply (the record goes on), else a Verdict.

    A judge may note what it matched in `record.metadata` (dedup's duplicate, decontamination's n-gram):
    it travels with the record into dropped/.
    """

    def judge(self, record: Record) -> Verdict | None: ...


def reason_key(reason: str) -> str:
    """A verdict reason is `identifier[: detail]`; stats count the identifier."""
    return reason.split(": ", 1)[0].strip()


@dataclass(frozen=True)
class KeepPolicy:
    """Which verdicts keep a record: entries `verdict`, `verdict:reason`, `filter:verdict[:reason]`.

    Default: pass only. `unverifiable:no_gold` keeps rows that had no gold answer; `math:unverifiable` keeps
    every unverifiable math row. `error` verdicts are never kept (the row counts as failed).
    """

    entries: tuple[str, ...] = ("pass",)

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("keep: the policy keeps nothing (give at least 'pass')")
        for entry in self.entries:
            self._parse(entry)

    @staticmethod
    def _parse(entry: str) -> tuple[str | None, str, str | None]:
        parts = entry.split(":")
        filter_name = None
        if parts[0] not in VERDICT_VALUES:
            filter_name, parts = parts[0], parts[1:]
        if not parts or parts[0] not in VERDICT_VALUES or len(parts) > 2:
            raise ValueError(f"keep: {entry!r} is not verdict[:reason] or filter:verdict[:reason] ({VERDICT_VALUES})")
        return filter_name, parts[0], parts[1] if len(parts) == 2 else None

    def keeps(self, verdict: Verdict) -> bool:
        for entry in self.entries:
            filter_name, value, reason = self._parse(entry)
            if filter_name not in (None, verdict.filter) or value != verdict.verdict:
                continue
            if reason is None or reason == reason_key(verdict.reason):
                return True
        return False


KEEP_PASS = KeepPolicy()


def outcome_of(verdict: Verdict | None, keep: KeepPolicy = KEEP_PASS) -> Outcome:
    """Where a record goes given its verdict."""
    if verdict is None:
        return "kept"
    if verdict.verdict == "error":
        return "failed"
    return "kept" if keep.keeps(verdict) else "dropped"
