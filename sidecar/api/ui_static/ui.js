// The /ui page: asks POST /v1/compare for one first stage and its reranked version, shows both.
// Plain DOM, no framework and no build step; every text from the server goes in via textContent.
"use strict";

const KEY_STORAGE = "rescore-sidecar.api-key";
const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  // The key in its own header leaves Authorization to the engine credentials the browser may send.
  if (key) h["X-Rescore-Api-Key"] = key;
  return h;
}

async function callJson(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body && JSON.stringify(body) });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = { error: `HTTP ${response.status} (not JSON)` };
  }
  if (!response.ok) {
    const error = new Error(data && data.error ? data.error : `HTTP ${response.status}`);
    error.field = data && data.field;
    error.status = response.status;
    throw error;
  }
  return data;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function showError(error) {
  const box = $("error");
  box.textContent = "";
  box.append(el("strong", null, error.status ? `Error ${error.status}` : "Error"), " ");
  box.append(el("span", "error-message", error.message));
  if (error.field) box.append(" ", el("code", "error-field", `field: ${error.field}`));
  box.hidden = false;
}

function setState(state) {
  document.body.dataset.state = state;
  $("submit").disabled = state === "loading";
  $("submit").textContent = state === "loading" ? "Running…" : "Compare";
}

function formatScore(score) {
  return typeof score === "number" ? score.toFixed(4) : "–";
}

// The marker of one reranked hit: where it came from in the first stage.
function changeBadge(hit, shownFirstStage) {
  if (hit.first_stage_rank > shownFirstStage) {
    const badge = el("span", "change new", "new");
    badge.title = `first stage #${hit.first_stage_rank}`;
    return badge;
  }
  if (hit.rank_change > 0) return el("span", "change up", `▲${hit.rank_change}`);
  if (hit.rank_change < 0) return el("span", "change down", `▼${-hit.rank_change}`);
  return el("span", "change same", "=");
}

function hitItem(hit, badge, extra) {
  const item = el("li", "hit");
  item.dataset.id = hit.id;
  item.dataset.rank = hit.rank;
  const head = el("div", "hit-head");
  head.append(el("span", "rank", `#${hit.rank}`));
  if (badge) head.append(badge);
  head.append(el("strong", "title", hit.title || hit.id));
  head.append(el("span", "score", formatScore(hit.score)));
  item.append(head);
  const meta = el("div", "hit-meta");
  meta.append(el("code", "id", hit.id));
  if (extra) meta.append(extra);
  item.append(meta);
  if (hit.text_snippet) item.append(el("p", "snippet", hit.text_snippet));
  return item;
}

function renderColumns(data) {
  const first = $("first-stage");
  const reranked = $("reranked");
  first.textContent = "";
  reranked.textContent = "";
  const newRank = new Map(data.reranked.map((h) => [h.id, h.rank]));
  for (const hit of data.first_stage) {
    const to = newRank.get(hit.id);
    const where = el("span", to ? "moved" : "moved out", to ? `→ #${to}` : "→ below");
    first.append(hitItem(hit, null, where));
  }
  for (const hit of data.reranked) {
    const model = typeof hit.rerank_score === "number" ? `model ${hit.rerank_score.toFixed(3)}` : "not rescored";
    reranked.append(hitItem(hit, changeBadge(hit, data.first_stage.length), el("span", "model-score", model)));
  }
  if (!data.first_stage.length) first.append(el("li", "empty", "no hits"));
  if (!data.reranked.length) reranked.append(el("li", "empty", "no hits"));
  $("first-stage-label").textContent = `${data.first_stage.length} hits`;
  $("reranked-label").textContent = `window ${data.rerank.window ?? 0}, fusion ${data.rerank.fusion ?? "?"}`;
}

function renderSummary(data) {
  const status = data.rerank.status || "unknown";
  const badge = $("rerank-status");
  badge.textContent = status;
  badge.className = `status status-${status}`;
  const detail = data.rerank.error || data.rerank.reason || "";
  badge.title = detail;
  const cache = typeof data.rerank.cache_hits === "number" && typeof data.rerank.scored === "number"
    ? `${data.rerank.scored} scored, ${data.rerank.cache_hits} from cache` : "";
  $("rerank-model").textContent = [data.rerank.model, cache, detail].filter(Boolean).join(" · ");
  const t = data.timings;
  const timings = $("timings");
  timings.textContent = "";
  for (const [name, key] of [["embed", "embed_ms"], ["first stage", "first_stage_ms"], ["rerank", "rerank_ms"],
                             ["queue", "queue_ms"], ["model", "model_ms"], ["fusion", "fusion_ms"],
                             ["total", "total_ms"]]) {
    const part = el("span", "timing");
    part.dataset.stage = key;
    part.append(el("span", "muted", `${name} `), el("b", null, `${t[key].toFixed(1)} ms`));
    timings.append(part);
  }
  $("summary").hidden = false;
}

function clearResults() {
  for (const id of ["raw-json", "first-stage", "reranked", "first-stage-label", "reranked-label"]) {
    $(id).textContent = "";
  }
  $("summary").hidden = true;
}

// Hovering a hit outlines the same document in the other column.
function linkColumns(event) {
  const item = event.target.closest && event.target.closest("li.hit");
  for (const node of document.querySelectorAll("li.hit.linked")) node.classList.remove("linked");
  if (!item) return;
  for (const node of document.querySelectorAll("li.hit")) {
    if (node.dataset.id === item.dataset.id) node.classList.add("linked");
  }
}

async function submit(event) {
  event.preventDefault();
  $("error").hidden = true;
  setState("loading");
  const request = {
    index: $("index").value,
    template: $("template").value,
    query: $("query").value,
    size: Number($("size").value),
    window_size: Number($("window-size").value),
  };
  try {
    const data = await callJson("POST", "/v1/compare", request);
    $("raw-json").textContent = JSON.stringify(data, null, 2);
    renderSummary(data);
    renderColumns(data);
    setState("done");
  } catch (error) {
    clearResults();  // results of an earlier query next to this error would read as its answer
    showError(error);
    setState("error");
  }
}

async function loadOptions() {
  const select = $("index");
  const previous = select.value || new URLSearchParams(location.search).get("index");
  try {
    const options = await callJson("GET", "/v1/compare/options");
    select.textContent = "";
    for (const index of options.indices) {
      const label = index.docs === null ? index.name : `${index.name} (${index.docs} docs)`;
      const option = el("option", null, label);
      option.value = index.name;
      select.append(option);
    }
    if (previous && options.indices.some((i) => i.name === previous)) select.value = previous;
    const template = $("template");
    const chosen = template.value;
    template.textContent = "";
    for (const name of options.templates) {
      const option = el("option", null, name);
      option.value = name;
      template.append(option);
    }
    template.value = options.templates.includes(chosen) ? chosen : options.templates[0];
    $("size").max = options.defaults.max_size;
    $("window-size").max = options.defaults.max_window_size;
    $("window-size").value = options.defaults.window_size;
    document.body.dataset.options = "loaded";
  } catch (error) {
    const shown = new Error(`could not list indices: ${error.message}`);
    shown.status = error.status;
    shown.field = error.field;
    showError(shown);
    document.body.dataset.options = "failed";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const key = $("api-key");
  key.value = localStorage.getItem(KEY_STORAGE) || "";
  if (key.value) $("key-box").open = true;
  key.addEventListener("change", () => {
    localStorage.setItem(KEY_STORAGE, key.value.trim());
    $("error").hidden = true;
    loadOptions();
  });
  $("compare-form").addEventListener("submit", submit);
  document.addEventListener("mouseover", linkColumns);
  const query = new URLSearchParams(location.search).get("q");
  if (query) $("query").value = query;
  loadOptions();
});
