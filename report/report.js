// The report's script: builds every row from the JSON in #report-data with textContent (never as HTML: model
// outputs contain HTML and script tags), and in the viewer (data.live) pages rows from the server's read-only API.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "cls") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.appendChild(child);
    return node;
  }

  function textBlock(label, text, clipped) {
    const box = el("div", {}, el("div", { cls: "label", text: label }), el("pre", { text: text == null ? "" : text }));
    if (clipped) box.appendChild(el("div", { cls: "truncated", text: `(${clipped.toLocaleString()} characters in all; thinktoggle view shows every one)` }));
    return box;
  }

  function renderRow(row, where) {
    const clipped = row.clipped || {};
    const node = el("div", { cls: `row mode-${row.reasoning || "none"}` });
    const meta = el("div", { cls: "meta" });
    if (where) meta.appendChild(el("span", { text: where }));
    meta.appendChild(el("span", { text: `${row.category || "?"} · thinking ${row.reasoning || "?"} · sample ${row.sample ?? "?"}` }));
    if (row.generator) meta.appendChild(el("span", { text: row.generator }));
    if (row.reason) meta.appendChild(el("span", { cls: "why", text: `reason: ${row.reason}` }));
    if (row.detail && row.detail !== row.reason) meta.appendChild(el("span", { cls: "detail", text: row.detail }));
    if (row.source) meta.appendChild(el("span", { cls: "source", text: row.source }));
    if (row.pair_id) {
      const open = el("a", { href: `#prompt-${row.pair_id}`, cls: "open-prompt", text: `prompt ${row.pair_id}` });
      open.addEventListener("click", (event) => { if (data.live) { event.preventDefault(); openPrompt(row.pair_id); } });
      meta.appendChild(open);
    }
    node.appendChild(meta);
    const system = row.system_prompt_implicit ? `${row.system_prompt}  (the mode's default)` : row.system_prompt;
    node.appendChild(textBlock("system prompt", system == null ? "(none)" : system));
    (row.input || []).forEach((turn, i) => node.appendChild(textBlock(turn.role || "turn", turn.content, clipped[`input.${i}`])));
    if (row.think != null) {
      const details = el("details", { cls: "think" }, el("summary", { text: `think block (${row.think.length.toLocaleString()} characters)` }));
      details.appendChild(el("pre", { text: row.think }));
      if (clipped.think) details.appendChild(el("div", { cls: "truncated", text: `(${clipped.think.toLocaleString()} characters in all)` }));
      node.appendChild(details);
    }
    node.appendChild(textBlock("answer", row.answer, clipped.answer));
    if (row.expected_answer) node.appendChild(el("div", { cls: "meta", text: `expected answer: ${row.expected_answer}` }));
    const verdicts = el("div", { cls: "verdicts" });
    for (const v of row.verdicts || []) {
      verdicts.appendChild(el("span", { cls: `v-${v.verdict}`, text: `${v.filter}: ${v.verdict}${v.reason ? " (" + v.reason + ")" : ""}` }));
    }
    if (!(row.verdicts || []).length) verdicts.appendChild(el("span", { text: "no verdicts" }));
    node.appendChild(verdicts);
    return node;
  }

  document.querySelectorAll("[data-reason-sample]").forEach((box) => {
    const sample = data.reasonSamples[Number(box.dataset.reasonSample)];
    for (const row of sample.rows) box.appendChild(renderRow(row));
  });
  document.querySelectorAll("[data-pair]").forEach((box) => {
    const pair = data.pairs[Number(box.dataset.pair)];
    box.appendChild(el("h3", { text: `prompt ${pair.pair_id}` }));
    for (const mode of ["on", "off"]) {
      const column = el("div", { cls: `mode-column mode-${mode}` }, el("div", { cls: "label", text: `thinking ${mode} (${pair[mode].length})` }));
      for (const row of pair[mode]) column.appendChild(renderRow(row));
      box.appendChild(column);
    }
  });

  if (!data.live) return;

  // ---- the viewer: live browsing through /api ----
  const form = document.getElementById("browse-form");
  const list = document.getElementById("browse-rows");
  const info = document.getElementById("page-info");
  const state = { page: 0, more: false };

  async function api(path, params) {
    const response = await fetch(`${path}?${new URLSearchParams(params)}`);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function fill(select, values, keep) {
    const current = keep ?? select.value;
    select.replaceChildren(el("option", { value: "", text: "any" }));
    for (const [value, label] of values) select.appendChild(el("option", { value, text: label }));
    select.value = [...select.options].some((o) => o.value === current) ? current : "";
  }

  async function loadFacets(keep) {
    const facets = await api("/api/facets", { stage: form.stage.value, part: form.part.value });
    fill(form.category, facets.categories.map((c) => [c, c]), keep && keep.category);
    fill(form.mode, facets.modes.map((m) => [m, m]), keep && keep.mode);
    fill(form.reason, Object.entries(facets.reasons).map(([r, n]) => [r, `${r} (${n.toLocaleString()})`]), keep && keep.reason);
  }

  async function loadPage() {
    const params = Object.fromEntries(new FormData(form));
    params.page = state.page;
    info.textContent = "loading…";
    try {
      const result = await api("/api/rows", params);
      state.more = result.more;
      list.replaceChildren(...result.rows.map((row) => renderRow(row)));
      const first = result.rows.length ? state.page * result.page_size + 1 : 0;
      const last = state.page * result.page_size + result.rows.length;
      const total = result.total == null ? "" : ` of ${result.total.toLocaleString()}`;
      info.textContent = `rows ${first.toLocaleString()}–${last.toLocaleString()}${total}`;
    } catch (error) {
      info.textContent = `error: ${error.message}`;
    }
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = !state.more;
  }

  async function openPrompt(pairId) {
    const panel = document.getElementById("prompt-panel");
    const box = document.getElementById("prompt-rows");
    document.getElementById("prompt-id").textContent = pairId;
    box.replaceChildren(el("p", { text: "loading…" }));
    panel.hidden = false;
    const result = await api("/api/prompt", { pair_id: pairId });
    box.replaceChildren();
    for (const group of result.groups) {
      for (const row of group.rows) box.appendChild(renderRow(row, `${group.stage} · ${group.part}`));
    }
    panel.scrollIntoView();
  }

  for (const stage of data.stages) form.stage.appendChild(el("option", { value: stage, text: stage }));
  form.addEventListener("submit", (event) => { event.preventDefault(); state.page = 0; loadPage(); });
  form.stage.addEventListener("change", async () => { await loadFacets(); state.page = 0; loadPage(); });
  form.part.addEventListener("change", async () => { await loadFacets(); state.page = 0; loadPage(); });
  document.getElementById("prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); loadPage(); });
  document.getElementById("next").addEventListener("click", () => { state.page += 1; loadPage(); });
  document.getElementById("prompt-close").addEventListener("click", () => { document.getElementById("prompt-panel").hidden = true; });
  // A reason in the funnel opens its rows here.
  document.querySelectorAll("a.reason").forEach((link) => link.addEventListener("click", async (event) => {
    event.preventDefault();
    form.stage.value = link.dataset.stage;
    form.part.value = link.dataset.part;
    form.text.value = "";
    await loadFacets({ reason: link.dataset.reason, category: "", mode: "" });
    state.page = 0;
    await loadPage();
    document.getElementById("browse").scrollIntoView();
  }));
  if (data.startStage) form.stage.value = data.startStage;  // the last stage with kept records
  loadFacets().then(loadPage);
})();
