"""The one folder layout every stage writes, so that any stage's folder is the next stage's input as it is.

    out_dir/kept/       the kept records (RECORD_SCHEMA parquet): what the next stage reads
    out_dir/dropped/    dropped records (REJECTED_SCHEMA: the record + stage, reason, detail, source)
    out_dir/failed/     records or input rows that could not be processed (REJECTED_SCHEMA too)
    out_dir/stats.json  StageStats: in == kept + dropped + failed (checked on write); its presence marks the
                        stage complete
    out_dir/ranks/      per-rank files: stats, progress
    out_dir/logs/       datatrove logs and completion markers

A stage may write more beside these (export: the published layout and the card; train: the model), never in
place of them. Readers given a stage folder read `kept/` only (schemas/io.py:discover_files).
"""

from __future__ import annotations

from pathlib import Path

# schemas/io.py (below core) reads a stage folder through its KEPT_FOLDER, the same name (tests/test_layers.py);
# importing it from there would pull pyarrow into `thinktoggle --help`.
KEPT = "kept"
DROPPED, FAILED, RANKS, LOGS = "dropped", "failed", "ranks", "logs"
STATS = "stats.json"


def kept_dir(out_dir: str | Path) -> Path:
    """Where a stage's kept records are."""
    return Path(out_dir) / KEPT


def failed_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / FAILED


def ranks_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / RANKS


def logs_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / LOGS


def stats_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / STATS


def is_stage_folder(path: str | Path) -> bool:
    """A folder a stage wrote (it has kept/ or stats.json): reading it means reading its kept records."""
    path = Path(path)
    return path.is_dir() and ((path / KEPT).is_dir() or (path / STATS).is_file())


def written_folders(out_dir: str | Path) -> list[Path]:
    """The layout folders that exist in `out_dir`, for a command's closing lines."""
    return [Path(out_dir) / name for name in (KEPT, DROPPED, FAILED) if (Path(out_dir) / name).is_dir()]
