"""`thinktoggle filter` on the command line (click's runner, the real stage underneath)."""

from __future__ import annotations

import json

from _filter_rows import off, on
from click.testing import CliRunner

from thinktoggle.cli.main import app
from thinktoggle.schemas.convert import record_to_row


def write_rows(path, records):
    path.write_text("".join(json.dumps(record_to_row(r)) + "\n" for r in records))
    return path


def test_filter_cli_end_to_end_with_a_keep_policy(tmp_path):
    rows = write_rows(
        tmp_path / "rows.jsonl",
        [
            on("1+1=2", "\\boxed{2}", gold="2"),
            on("guess", "\\boxed{3}", gold="2"),
            off("\\boxed{9}", prompt="no gold here"),  # unverifiable: no_gold (kept by the policy below)
            off("no think tags <think>", prompt="bad"),
        ],
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "filter",
            str(rows),
            "--out",
            str(out),
            "--only",
            "format,math",
            "--keep",
            "pass,unverifiable:no_gold",
            "--no-math-majority",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "filter: in 4, kept 2, dropped 2, failed 0" in result.output
    assert f"  {out / 'kept'}/" in result.output and f"  {out / 'stats.json'}" in result.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["by_filter"]["math"]["dropped"] == {"wrong_answer": 1}
    assert stats["by_filter"]["format"]["dropped"] == {"think_in_off_mode": 1}


def test_filter_cli_errors_are_clear(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["filter", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no such file" in result.output
    rows = write_rows(tmp_path / "rows.jsonl", [off("hi", category="chat")])
    result = runner.invoke(app, ["filter", str(rows), "--out", str(tmp_path / "o"), "--only", "math,spelling"])
    assert result.exit_code == 2 and "unknown filter" in result.output
    result = runner.invoke(app, ["filter", str(rows), "--out", str(tmp_path / "o"), "--keep", "maybe"])
    assert result.exit_code == 2 and "keep" in result.output
