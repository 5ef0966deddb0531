"""The report page: one HTML string with its CSS, script, charts and images inline (no network, opens from disk).

Everything from the run is escaped: sections are rendered here with html.escape; rows travel as JSON inside a
`<script type="application/json">` (with `<`, `>` and `&` written as \\u escapes, so no row text can close it) and
the page's script builds them with textContent, never as HTML. The viewer serves the same page with `live`
set: the browse panel then asks the server for rows.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any

from thinktoggle.report.charts import histogram, line_chart
from thinktoggle.report.collect import ReportData

CLIP_CHARS = 8_000  # the most characters of one text a report embeds (the viewer serves whole rows)


def render_page(data: ReportData, live: bool) -> str:
    sections = [
        _funnel(data),
        _samples(data),
        _pairs(data),
        _lengths(data),
        _training(data),
        _evaluation(data),
        _recipe(data),
    ]
    if live:
        sections.insert(1, _browse())
    payload = {
        "live": live,
        "stages": data.browse_stages,
        "startStage": data.pairs_stage or (data.browse_stages[-1] if data.browse_stages else None),
        "reasonSamples": [{**s, "rows": [clip_row(r) for r in s["rows"]]} for s in data.reason_samples],
        "pairs": [
            {**p, "on": [clip_row(r) for r in p["on"]], "off": [clip_row(r) for r in p["off"]]} for p in data.pairs
        ],
    }
    title = f"thinktoggle report: {data.name}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # no network: a Content-Security-Policy that allows nothing but this page's own inline code and images
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:; connect-src 'self'\">"
        f"<style>{_asset('report.css')}</style></head><body>"
        f'<header><h1>{escape(title)}</h1><p class="where">{escape(data.run_dir)}'
        f"{' · live viewer (read-only)' if live else ''}</p>{_nav(live)}</header><main>" + "".join(sections) + "</main>"
        f'<script id="report-data" type="application/json">{_json_for_script(payload)}</script>'
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )


def clip_row(row: dict[str, Any], limit: int = CLIP_CHARS) -> dict[str, Any]:
    """A row with its long texts cut at `limit` characters, `clipped` naming each cut text's full length: a
    report of 30,000-character traces stays a few megabytes."""
    clipped: dict[str, int] = {}
    row = dict(row)
    for key in ("think", "answer"):
        if isinstance(row.get(key), str) and len(row[key]) > limit:
            clipped[key] = len(row[key])
            row[key] = row[key][:limit]
    turns = []
    for i, turn in enumerate(row.get("input") or []):
        content = turn.get("content")
        if isinstance(content, str) and len(content) > limit:
            clipped[f"input.{i}"] = len(content)
            turn = {**turn, "content": content[:limit]}
        turns.append(turn)
    row["input"] = turns
    if clipped:
        row["clipped"] = clipped
    return row


def _asset(name: str) -> str:
    return resources.files("thinktoggle.report").joinpath(name).read_text()


def _json_for_script(value: Any) -> str:
    """JSON that cannot end its <script> element or open a comment: <, > and & as \\u escapes."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _nav(live: bool) -> str:
    links = [("funnel", "Funnel"), ("samples", "Drop and fail reasons"), ("pairs", "On/off pairs")]
    links += [("lengths", "Lengths"), ("training", "Training"), ("evaluation", "Evaluation"), ("recipe", "Recipe")]
    if live:
        links.insert(1, ("browse", "Browse rows"))
    return "<nav>" + " · ".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in links) + "</nav>"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def reason_anchor(stage: str, kind: str, reason: str) -> str:
    """The id of a reason's sample block (funnel links point at it)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{stage}-{kind}-{reason}")
    return f"reason-{safe}"


def _reason_links(stats: dict[str, Any]) -> str:
    links = []
    for kind in ("dropped", "failed"):
        for reason, n in stats[f"{kind}_reasons"].items():
            links.append(
                f'<a class="reason {kind}" href="#{reason_anchor(stats["stage"], kind, reason)}" '
                f'data-stage="{escape(stats["stage"])}" data-part="{kind}" data-reason="{escape(reason)}">'
                f"{escape(kind)}: {escape(reason)} <b>{n:,}</b></a>"
            )
    return " ".join(links)


def _funnel_table(stages: list[dict[str, Any]], table_id: str) -> str:
    head = "<tr><th>stage</th><th>in</th><th>kept</th><th>dropped</th><th>failed</th><th>reasons</th></tr>"
    rows = "".join(
        f'<tr data-stage="{escape(s["stage"])}"><td>{escape(s["stage"])}</td>'
        + "".join(f'<td class="num" data-col="{c}">{s[c]:,}</td>' for c in ("in", "kept", "dropped", "failed"))
        + f"<td>{_reason_links(s)}</td></tr>"
        for s in stages
    )
    return f'<table id="{table_id}" class="funnel">{head}{rows}</table>'


def _funnel(data: ReportData) -> str:
    funnel = data.funnel
    body = _funnel_table(funnel["stages"], "funnel-table")
    body += (
        f"<p>{funnel['in']:,} in, {funnel['out']:,} out; {funnel['dropped']:,} dropped and {funnel['failed']:,} "
        "failed over all stages. Each stage's <code>in = kept + dropped + failed</code>"
        f"{'' if funnel['consistent'] else ' — <b class=bad>broken</b>: ' + escape('; '.join(funnel['breaks']))}."
        " A reason links to sample rows.</p>"
    )
    if data.other_stages:
        body += "<h3>Other stage folders in this run</h3>" + _funnel_table(data.other_stages, "other-stages-table")
    return _section("funnel", "Funnel", body)


def _samples(data: ReportData) -> str:
    if not data.reason_samples:
        return _section("samples", "Drop and fail reasons", "<p class=empty>No row was dropped or failed.</p>")
    blocks = []
    for i, sample in enumerate(data.reason_samples):
        shown = len(sample["rows"])
        blocks.append(
            f'<div class="reason-block" id="{reason_anchor(sample["stage"], sample["kind"], sample["reason"])}">'
            f"<h3>{escape(sample['stage'])} · {escape(sample['kind'])} · <code>{escape(sample['reason'])}</code>"
            f" <small>{sample['count']:,} rows, {shown} shown</small></h3>"
            f'<div class="rows" data-reason-sample="{i}"></div></div>'
        )
    return _section("samples", "Drop and fail reasons", "".join(blocks))


def _pairs(data: ReportData) -> str:
    if not data.pairs:
        return _section("pairs", "On/off pairs", "<p class=empty>No prompt kept in both modes.</p>")
    intro = (
        f"<p>The first {len(data.pairs)} prompts kept in both modes by <b>{escape(data.pairs_stage or '')}</b>: "
        "system prompt, prompt, the think block (collapsed), the answer and every verdict.</p>"
    )
    cards = "".join(f'<div class="pair" data-pair="{i}"></div>' for i in range(len(data.pairs)))
    return _section("pairs", "On/off pairs", intro + cards)


def _lengths(data: ReportData) -> str:
    lengths = data.lengths
    if not lengths or not lengths["by_category"]:
        return _section("lengths", "Output lengths", "<p class=empty>No kept records.</p>")
    scope = f"{lengths['rows_read']:,} of {lengths['rows_total']:,} kept rows of <b>{escape(lengths['stage'])}</b>"
    if lengths["rows_read"] < lengths["rows_total"]:
        scope += " (the first rows of each file)"
    charts = "".join(
        histogram(modes, f"{category}: output length", "characters (log scale)")
        for category, modes in lengths["by_category"].items()
    )
    head = "<tr><th>category</th><th>mode</th><th>rows</th><th>median</th><th>mean</th><th>p95</th></tr>"
    rows = "".join(
        f"<tr><td>{escape(r['category'])}</td><td>{escape(r['mode'])}</td><td class=num>{r['n']:,}</td>"
        f"<td class=num>{r['median']:,.0f}</td><td class=num>{r['mean']:,.0f}</td><td class=num>{r['p95']:,}</td></tr>"
        for r in lengths["table"]
    )
    body = f"<p>Characters per output, {scope}.</p><div class=charts>{charts}</div><table>{head}{rows}</table>"
    return _section("lengths", "Output lengths", body)


def _training(data: ReportData) -> str:
    if not data.metrics:
        return _section("training", "Training", "<p class=empty>No train/metrics.jsonl in this run.</p>")
    steps = [m["step"] for m in data.metrics]
    charts = line_chart(steps, [m.get("loss") for m in data.metrics], "training loss", "step", "loss")
    charts += line_chart(steps, [m.get("lr") for m in data.metrics], "learning rate", "step", "lr")
    if any("grad_norm" in m for m in data.metrics):
        charts += line_chart(steps, [m.get("grad_norm") for m in data.metrics], "gradient norm", "step", "norm")
    last = data.metrics[-1]
    body = f"<div class=charts>{charts}</div><p>Last logged step {last['step']:,}: loss {last.get('loss', 0):.4f}"
    if "tokens_per_s" in last:
        body += f", {last['tokens_per_s']:,.0f} tokens/s"
    body += ".</p>"
    if data.train_summary:
        keys = ("parameters", "steps", "final_loss", "tokens_per_s", "seconds")
        cells = "".join(
            f"<tr><td>{escape(k)}</td><td class=num>{escape(_number(data.train_summary[k]))}</td></tr>"
            for k in keys
            if k in data.train_summary
        )
        body += f"<table class=summary>{cells}</table>"
    return _section("training", "Training", body)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _evaluation(data: ReportData) -> str:
    report = data.evaluation
    if report is None:
        return _section("evaluation", "Evaluation", "<p class=empty>No validate/report.json in this run.</p>")
    body = f"<p>Model <code>{escape(str(report.get('model', '')))}</code>.</p>"
    if isinstance(report.get("benchmarks"), dict):
        body += _benchmark_table(report["benchmarks"])
    else:  # a report of another shape: shown as it is
        body += f"<pre>{escape(json.dumps(report.get('summary', report), indent=1)[:20000])}</pre>"
    body += "".join(
        f'<figure><img alt="{escape(name)}" src="{uri}"><figcaption>{escape(name)}</figcaption></figure>'
        for name, uri in data.eval_plots
    )
    return _section("evaluation", "Evaluation", body)


def _benchmark_table(benchmarks: dict[str, Any]) -> str:
    head = "<tr><th>benchmark</th><th>metric</th><th>on</th><th>off</th><th>on − off</th></tr>"
    rows = []
    for name, modes in benchmarks.items():
        on, off = modes.get("on"), modes.get("off")
        metrics = [  # (label, value, format)
            ("pass@1", lambda m: m["pass@1"], "{:.3f}"),
            ("compliance", lambda m: m["compliance"], "{:.3f}"),
            ("no answer", lambda m: m["no_answer"], "{:.3f}"),
            ("mean tokens", lambda m: m["reasoning_tokens"]["mean"] + m["answer_tokens"]["mean"], "{:.1f}"),
            ("samples per prompt", lambda m: m["n_samples"], "{:.0f}"),
            ("prompts", lambda m: m["n_prompts"], "{:.0f}"),
        ]
        for i, (label, get, fmt) in enumerate(metrics):
            values = [_get(get, m) for m in (on, off)]
            gap = values[0] - values[1] if label == "pass@1" and None not in values else None
            rows.append(
                f"<tr{' class=first' if i == 0 else ''}><td>{escape(name) if i == 0 else ''}</td><td>{label}</td>"
                + "".join(f"<td class=num>{'–' if v is None else fmt.format(v)}</td>" for v in values)
                + f"<td class=num>{'' if gap is None else f'{gap:+.3f}'}</td></tr>"
            )
    return f'<table id="evaluation-table">{head}{"".join(rows)}</table>'


def _get(get, mode: dict[str, Any] | None) -> float | None:
    try:
        return float(get(mode)) if mode else None
    except (KeyError, TypeError):
        return None


def _recipe(data: ReportData) -> str:
    if data.recipe is None:
        return _section("recipe", "Recipe", "<p class=empty>No recipe.resolved.yaml in this folder.</p>")
    return _section(
        "recipe",
        "Recipe",
        f"<details open><summary>recipe.resolved.yaml</summary><pre class=recipe>{escape(data.recipe)}</pre></details>",
    )


def _browse() -> str:
    controls = (
        '<form id="browse-form" class="controls">'
        '<label>stage <select name="stage"></select></label>'
        '<label>rows <select name="part"><option value="kept">kept</option><option value="dropped">dropped</option><option value="failed">failed</option></select></label>'
        '<label>category <select name="category"><option value="">any</option></select></label>'
        '<label>mode <select name="mode"><option value="">any</option></select></label>'
        '<label>reason <select name="reason"><option value="">any</option></select></label>'
        '<label>text <input name="text" type="search" placeholder="search outputs and prompts"></label>'
        '<button type="submit">show</button></form>'
        '<div class="pager"><button id="prev" type="button">◀ previous</button> <span id="page-info"></span> '
        '<button id="next" type="button">next ▶</button></div>'
        '<div id="browse-rows" class="rows"></div>'
        '<div id="prompt-panel" hidden><h3>All samples of the prompt <code id="prompt-id"></code> '
        '<button id="prompt-close" type="button">close</button></h3><div id="prompt-rows"></div></div>'
    )
    return _section("browse", "Browse rows", controls)
