"""The dashboard page: one HTML string, CSS and vanilla JavaScript inline (no build step, no dependency).

Moving a slider schedules one request to /api/next 150 ms later (a debounce: a
drag sends one request, not fifty); an answer that arrives after a newer request
was sent is dropped, so the page always shows the latest knobs. Text from the
model is inserted with textContent, never as HTML. Test hooks: every number
carries its exact value in data-value, the body its request count in data-seq.
"""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tinyllm · sampling dashboard</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
  header { padding: 10px 18px; background: #263238; color: #eceff1; }
  header small { color: #b0bec5; margin-left: 1em; }
  main { display: grid; grid-template-columns: 330px 1fr; gap: 18px; padding: 16px 18px; }
  textarea { width: 100%; box-sizing: border-box; height: 90px; font: 13px monospace; }
  .knob { margin: 12px 0; }
  .knob label { display: flex; justify-content: space-between; font-weight: 600; }
  .knob input[type=range] { width: 100%; }
  .knob small { color: #666; }
  .small-inputs { display: flex; gap: 8px; } .small-inputs input { width: 70px; }
  #error { display: none; background: #ffebee; border: 1px solid #e57373; color: #b71c1c; padding: 8px 10px;
           margin-bottom: 10px; border-radius: 4px; white-space: pre-wrap; }
  table.numbers td { padding: 2px 10px 2px 0; } table.numbers td.v { font-family: monospace; text-align: right; }
  #chart .row { display: grid; grid-template-columns: 70px 1fr 150px; align-items: center; gap: 8px; height: 24px; }
  #chart .tok { font-family: monospace; text-align: right; white-space: pre; overflow: hidden; }
  #chart .track { position: relative; height: 18px; background: #eceff1; }
  #chart .bar { position: absolute; left: 0; }
  #chart .bar.before { top: 0; height: 18px; background: #b0bec5; }
  #chart .bar.after { top: 4px; height: 10px; background: #1e88e5; }
  #chart .mark { position: absolute; top: -2px; height: 22px; width: 2px; background: #37474f; }
  #chart .row.removed .tok { color: #aaa; text-decoration: line-through; }
  #chart .pv { font: 12px monospace; color: #444; }
  .legend span { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 12px; }
  #samples li { font-family: monospace; white-space: pre-wrap; margin-bottom: 6px; background: #fff;
                border: 1px solid #e0e0e0; padding: 4px 6px; }
  #status { color: #888; font-size: 12px; }
</style>
</head>
<body data-seq="0">
<header><b>tinyllm</b> · sampling dashboard <small id="info">loading the model…</small></header>
<main>
<section>
  <label for="prompt"><b>Prompt</b></label>
  <textarea id="prompt"></textarea>
  <div class="knob"><label for="temperature">temperature <span id="temperature-label"></span></label>
    <input type="range" id="temperature" min="0" max="2" step="0.05" value="1">
    <small>z / T: below 1 sharpens, above 1 flattens, 0 is greedy (argmax)</small></div>
  <div class="knob"><label for="top_k">top-k <span id="top_k-label"></span></label>
    <input type="range" id="top_k" min="0" max="100" step="1" value="0">
    <small>keep the k most likely tokens (0 = off)</small></div>
  <div class="knob"><label for="top_p">top-p <span id="top_p-label"></span></label>
    <input type="range" id="top_p" min="0.01" max="1" step="0.01" value="1">
    <small>keep the fewest tokens whose probability reaches p (1 = off)</small></div>
  <div class="knob"><label for="min_p">min-p <span id="min_p-label"></span></label>
    <input type="range" id="min_p" min="0" max="1" step="0.01" value="0">
    <small>keep tokens with p ≥ min_p · p<sub>max</sub> (0 = off)</small></div>
  <div class="small-inputs">
    <label>samples <input type="number" id="n_samples" min="0" max="8" value="3"></label>
    <label>tokens <input type="number" id="max_new_tokens" min="1" max="200" value="40"></label>
    <label>seed <input type="number" id="seed" min="0" value="0"></label>
  </div>
  <p id="status"></p>
</section>
<section>
  <div id="error" role="alert"></div>
  <table class="numbers">
    <tr><td>entropy of the model (T = 1)</td><td class="v" id="entropy-model"></td><td>nats</td></tr>
    <tr><td>entropy after temperature</td><td class="v" id="entropy-before"></td><td>nats</td></tr>
    <tr><td>entropy after filtering</td><td class="v" id="entropy-after"></td><td>nats</td></tr>
    <tr><td>tokens kept</td><td class="v" id="kept-tokens"></td><td id="vocab"></td></tr>
    <tr><td>probability mass kept</td><td class="v" id="kept-mass"></td><td>(of the distribution after temperature)</td></tr>
    <tr><td>greedy next token</td><td class="v" id="greedy"></td><td></td></tr>
  </table>
  <p class="legend"><b>Next token</b> (most likely first)
    <span style="background:#37474f; width:2px"></span>the model (T = 1)
    <span style="background:#b0bec5"></span>after temperature <span style="background:#1e88e5"></span>after filtering:
    what is sampled from</p>
  <div id="chart"></div>
  <p><b>Sampled continuations</b> (seeded: the same knobs give the same text)</p>
  <ol id="samples"></ol>
</section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const KNOBS = ["temperature", "top_k", "top_p", "min_p"];
const OFF = { top_k: (v) => v === 0, top_p: (v) => v >= 1, min_p: (v) => v <= 0 };
let sent = 0, timer = null;

function knob(name) {  // the slider's value as the API wants it ("none" = off)
  const v = Number($(name).value);
  return OFF[name] && OFF[name](v) ? "none" : String(v);
}
function showLabels() {
  for (const name of KNOBS) { const v = knob(name); $(name + "-label").textContent = v === "none" ? "off" : v; }
}
function schedule() { showLabels(); clearTimeout(timer); timer = setTimeout(request, 150); }
function setNumber(id, value, digits) {
  const el = $(id);
  el.dataset.value = String(value);
  el.textContent = typeof value === "number" && digits !== undefined ? value.toFixed(digits) : String(value);
}
function showError(message) { const e = $("error"); e.textContent = message; e.style.display = "block"; }

async function request() {
  const mine = ++sent;
  const params = new URLSearchParams({ prompt: $("prompt").value });
  for (const name of KNOBS) params.set(name, knob(name));
  for (const name of ["n_samples", "max_new_tokens", "seed"]) params.set(name, $(name).value);
  let res, body;
  try {
    res = await fetch("/api/next?" + params.toString());
    body = await res.json();
  } catch (err) {
    if (mine === sent) showError("the server did not answer: " + err);
    return;
  }
  if (mine !== sent) return;  // a newer request is on its way: show only the latest knobs
  document.body.dataset.seq = String(mine);
  if (!res.ok) { showError(body.error || ("error " + res.status)); document.body.dataset.state = "error"; return; }
  $("error").style.display = "none";
  document.body.dataset.state = "ok";
  render(body);
}

function render(r) {
  setNumber("entropy-model", r.entropy_model, 3);
  setNumber("entropy-before", r.entropy_before, 3);
  setNumber("entropy-after", r.entropy_after, 3);
  setNumber("kept-tokens", r.kept_tokens);
  $("vocab").textContent = "of " + r.vocab_size;
  setNumber("kept-mass", r.kept_mass, 4);
  setNumber("greedy", r.greedy);
  const chart = $("chart");
  chart.replaceChildren();
  const top = Math.max(...r.top.map((t) => Math.max(t.p_model, t.p_before, t.p_after)), 1e-12);
  for (const t of r.top) {
    const row = document.createElement("div");
    row.className = "row" + (t.kept ? "" : " removed");
    row.dataset.id = t.id;
    const tok = document.createElement("span");
    tok.className = "tok"; tok.textContent = t.label; tok.title = "token " + t.id + ", logit " + t.logit.toFixed(3);
    const track = document.createElement("div");
    track.className = "track";
    const before = document.createElement("div");
    before.className = "bar before"; before.style.width = (100 * t.p_before / top) + "%";
    before.dataset.p = String(t.p_before);
    track.appendChild(before);
    const mark = document.createElement("div");
    mark.className = "mark"; mark.style.left = "calc(" + Math.min(100, 100 * t.p_model / top) + "% - 1px)";
    track.appendChild(mark);
    if (t.kept) {
      const after = document.createElement("div");
      after.className = "bar after"; after.style.width = (100 * t.p_after / top) + "%";
      after.dataset.p = String(t.p_after);
      track.appendChild(after);
    }
    const pv = document.createElement("span");
    pv.className = "pv";
    pv.textContent = t.p_before.toFixed(3) + " → " + (t.kept ? t.p_after.toFixed(3) : "removed");
    row.append(tok, track, pv);
    chart.appendChild(row);
  }
  const list = $("samples");
  list.replaceChildren();
  for (const s of r.samples) { const li = document.createElement("li"); li.textContent = s; list.appendChild(li); }
  $("status").textContent = "prompt: " + r.prompt_tokens + " tokens" + (r.cropped ? " (the model reads the last "
    + "context_length)" : "") + " · answered in " + r.ms + " ms";
}

async function start() {
  try {
    const info = await (await fetch("/api/info")).json();
    $("top_k").max = String(Math.min(info.vocab_size, 200));
    if (!$("prompt").value) $("prompt").value = info.prompt;  // one the tokenizer can encode
    $("info").textContent = info.parameters.toLocaleString() + " parameters · " + info.n_layer + " layers · d_model "
      + info.d_model + " · context " + info.context_length + " · " + info.tokenizer + " (" + info.vocab_size + " tokens)";
  } catch (err) { showError("cannot reach the server: " + err); }
  for (const name of KNOBS) $(name).addEventListener("input", schedule);
  for (const name of ["prompt", "n_samples", "max_new_tokens", "seed"]) $(name).addEventListener("input", schedule);
  showLabels();
  request();
}
start();
</script>
</body>
</html>
"""  # noqa: E501
