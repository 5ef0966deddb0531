"""The report and the viewer's reads on a real run (tests/report/conftest.py): the page is one self-contained file
whose numbers are the run's, rows page and filter exactly, a prompt's rows are found in every stage, row text
never becomes markup, and the viewer's API is read-only on loopback. The browser tests are in test_browser.py."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _report_run import SCRIPT
from click.testing import CliRunner

from thinktoggle.cli.main import app
from thinktoggle.report import write_report
from thinktoggle.report.collect import collect
from thinktoggle.report.page import render_page
from thinktoggle.report.rows import RowQuery, RowsError, RunRows
from thinktoggle.report.server import make_server


def stats(run: Path) -> dict[str, dict]:
    return {s["stage"]: s for s in json.loads((run / "stats.json").read_text())["stages"]}


def test_report_is_one_self_contained_file(report_run: Path):
    path = write_report(report_run)
    html = path.read_text()
    assert path == report_run / "report.html" and path.stat().st_size < 5 * 2**20
    # nothing fetched: no external script, stylesheet, image or frame
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html
    # the run's numbers and sections
    filter_stats = stats(report_run)["filter"]
    assert f'<td class="num" data-col="dropped">{filter_stats["dropped"]}</td>' in html
    assert 'data-reason="think_in_off_mode"' in html and "training loss" in html and "name: report-test" in html


def test_row_text_never_becomes_markup(report_run: Path):
    html = render_page(collect(report_run), live=True)
    # the page's own two script elements (data, code) and no other: the rows' tags travel as \u003c escapes
    assert html.count("<script") == 2
    assert SCRIPT not in html and "\\u003cscript\\u003edocument.title" in html


def test_pages_cover_every_row_once(report_run: Path):
    rows = RunRows(report_run)
    every = rows.page(RowQuery("filter", "kept", page_size=200))
    assert every["total"] == stats(report_run)["filter"]["kept"] == len(every["rows"])
    paged, page = [], 0
    while True:
        result = rows.page(RowQuery("filter", "kept", page=page, page_size=4))
        paged += [r["id"] for r in result["rows"]]
        if not result["more"]:
            break
        page += 1
    assert paged == [r["id"] for r in every["rows"]] and len(set(paged)) == len(paged)


def test_filters_count_what_stats_count(report_run: Path):
    rows, filter_stats = RunRows(report_run), stats(report_run)["filter"]
    for reason, n in filter_stats["dropped_reasons"].items():
        result = rows.page(RowQuery("filter", "dropped", reason=reason))
        assert result["total"] == n and {r["reason"] for r in result["rows"]} == {reason}
    off = rows.page(RowQuery("filter", "dropped", mode="off"))
    assert off["total"] == filter_stats["dropped_reasons"]["think_in_off_mode"]
    assert rows.page(RowQuery("filter", "kept", reason="anything"))["total"] == 0  # kept rows have no reason
    found = rows.page(RowQuery("export", "kept", text="WINDOW.__PWNED"))  # case-insensitive, literal
    assert found["total"] is None and {r["reasoning"] for r in found["rows"]} == {"on", "off"}
    assert all(SCRIPT in r["answer"] for r in found["rows"])
    assert rows.page(RowQuery("export", "kept", text="rhymes with number 3"))["rows"][0]["input"][0][
        "content"
    ].endswith("one short sentence.")


def test_a_row_shows_its_think_block_apart(report_run: Path):
    row = RunRows(report_run).page(RowQuery("export", "kept", mode="on", page_size=1))["rows"][0]
    assert row["think"].startswith("Let me think") and row["answer"].startswith("Red, because")
    assert row["system_prompt"] == "detailed thinking on" and "<think>" not in row["answer"]


def test_a_prompt_is_found_in_every_stage(report_run: Path):
    rows = RunRows(report_run)
    dropped = rows.page(RowQuery("filter", "dropped", reason="no_think"))["rows"][0]
    groups = rows.prompt(dropped["pair_id"])
    assert [(g["stage"], g["part"]) for g in groups] == [("filter", "dropped")]
    kept = rows.page(RowQuery("export", "kept", page_size=1))["rows"][0]
    where = {(g["stage"], g["part"]): {r["reasoning"] for r in g["rows"]} for g in rows.prompt(kept["pair_id"])}
    assert where[("filter", "kept")] == where[("dedup", "kept")] == where[("export", "kept")] == {"on", "off"}


def test_bad_queries_are_refused(report_run: Path):
    rows = RunRows(report_run)
    for query in (RowQuery("nope"), RowQuery("filter", "sideways"), RowQuery("filter", page=-1)):
        with pytest.raises(RowsError):
            rows.page(query)


def test_evaluation_table_from_report_json(report_run: Path, tmp_path: Path):
    from thinktoggle.training.eval_metrics import Sample, summarize

    on = summarize([[Sample(True, "1", True, 10, 2), Sample(False, "2", True, 12, 2)]] * 3)
    off = summarize([[Sample(False, "2", True, 0, 2)]] * 3)
    data = collect(report_run)
    data.evaluation = {"model": "m", "benchmarks": {"bench-x": {"on": on, "off": off}}}
    html = render_page(data, live=False)
    table = html[html.index('<table id="evaluation-table">') :]
    assert "bench-x" in table and "<td class=num>0.500</td><td class=num>0.000</td><td class=num>+0.500</td>" in table


@pytest.fixture
def server(report_run: Path) -> Iterator[str]:
    httpd = make_server(report_run, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    yield f"http://{host}:{port}"
    httpd.shutdown()
    httpd.server_close()


def get(url: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    return status, json.loads(body) if body.startswith("{") else body


def test_viewer_serves_the_page_and_rows_read_only_on_loopback(server: str, report_run: Path):
    assert server.startswith("http://127.0.0.1:")
    status, page = get(server + "/")
    assert status == 200 and "Browse rows" in page
    status, result = get(server + "/api/rows?stage=filter&part=dropped&reason=no_think")
    assert status == 200 and result["total"] == 1 and result["rows"][0]["reason"] == "no_think"
    status, facets = get(server + "/api/facets?stage=filter&part=dropped")
    assert facets["reasons"] == stats(report_run)["filter"]["dropped_reasons"] and facets["modes"] == ["off", "on"]
    status, prompt = get(server + f"/api/prompt?pair_id={result['rows'][0]['pair_id']}")
    assert [g["stage"] for g in prompt["groups"]] == ["filter"]
    assert get(server + "/api/rows?stage=nope")[0] == 400
    assert get(server + "/api/rows?stage=filter&page=x")[0] == 400
    assert get(server + "/etc/passwd")[0] == 404
    request = urllib.request.Request(server + "/api/rows", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 501  # http.server's answer to a method it does not serve


def test_report_command_prints_the_path(report_run: Path):
    result = CliRunner().invoke(app, ["report", str(report_run)])
    assert result.exit_code == 0 and result.output.strip() == str(report_run / "report.html")
    missing = CliRunner().invoke(app, ["report", str(report_run / "nope")])
    assert missing.exit_code == 2 and "no such folder" in missing.output


def test_run_command_writes_the_report(report_run: Path):
    (report_run / "report.html").unlink(missing_ok=True)
    result = CliRunner().invoke(app, ["run", str(report_run.parent / "recipe.yaml")])  # complete: every stage skipped
    assert result.exit_code == 0, result.output
    assert f"report: {report_run / 'report.html'}" in result.output and (report_run / "report.html").is_file()
