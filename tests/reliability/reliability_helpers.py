"""Helpers of the reliability suite: reuse of other suites' fixtures, output-folder scans, seeded kills."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "thinktoggle.cli.main"]


def load_test_module(relative: str, name: str) -> ModuleType:
    """Another suite's test module (e.g. the generators' vLLM server launcher), loaded by path: test folders are
    not packages, and its fixtures must not be duplicated here."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def visible_parquet(folder: Path) -> list[Path]:
    """Parquet files a reader would see (hidden files and *.tmp* are an unfinished write's, never read)."""
    return sorted(
        p
        for p in folder.rglob("*.parquet")
        if not any(part.startswith(".") for part in p.relative_to(folder).parts) and ".tmp" not in p.name
    )


def project_schemas() -> list:
    from thinktoggle.schemas.arrow import PUBLISHED_SCHEMA, RECORD_SCHEMA, REJECTED_SCHEMA

    return [RECORD_SCHEMA, PUBLISHED_SCHEMA, REJECTED_SCHEMA]


def assert_every_visible_parquet_opens(folder: Path) -> int:
    """Every visible parquet under `folder` opens, reads in full and has one of the project's Arrow schemas;
    returns the rows they hold."""
    rows = 0
    schemas = project_schemas()
    for path in visible_parquet(folder):
        table = pq.read_table(path)  # raises on a half-written file
        assert table.num_rows == pq.ParquetFile(path).metadata.num_rows, path
        assert any(table.schema.equals(s, check_metadata=False) for s in schemas), f"{path}: {table.schema}"
        rows += table.num_rows
    return rows


def kill_group_when(
    command: list[str], ready: Callable[[], bool], *, timeout: float = 120, cwd: Path = ROOT, delay: float = 0.0
) -> bool:
    """Start `command` in its own process group, wait until `ready()` (then `delay` more seconds), kill -9 the
    whole group (datatrove's workers, verifier and sandbox processes too). False when it finished first."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.01)
        if delay and proc.poll() is None:
            time.sleep(delay)
        finished = proc.poll() is not None
        return not finished
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_cli(*args: str, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
