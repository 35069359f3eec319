// The compare view: one request for every run (the API downsamples each curve), charts drawn once, the
// view's state (metric, x axis, hide-identical, scatter parameter) kept in the URL for sharing.
import { apiFetch } from "./csrf.js";

const root = document.getElementById("compare");
const controls = document.getElementById("compare-controls");
const params = new URLSearchParams(window.location.search);
const LONG = 5000;

function saveState(changes) {
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === "") params.delete(key); else params.set(key, value);
  }
  window.history.replaceState(null, "", `${window.location.pathname}?${params}`);
}

function numeric(values) {
  return values.every((value) => typeof value === "number" || typeof value === "boolean" || value === null);
}

function drawCurves(data) {
  const byIndex = params.get("x") === "index";
  const traces = data.runs.filter((run) => data.series[run.id]).map((run) => {
    const series = data.series[run.id];
    const long = series.step.length > LONG;
    return { type: long ? "scattergl" : "scatter", mode: "lines", name: `#${run.id} ${run.name}`,
             x: byIndex ? series.step.map((_, index) => index) : series.step, y: series.value };
  });
  window.Plotly.react("compare-curves", traces, {
    margin: { t: 10, r: 10, b: 40, l: 60 }, height: 360, legend: { orientation: "h" },
    xaxis: { title: byIndex ? "point" : "step" }, yaxis: { title: data.metric },
  }, { displaylogo: false, responsive: true });
}

function drawTable(data) {
  const hide = params.get("hide_identical") !== "0";
  const names = hide ? data.varying : data.parameters;
  const table = document.getElementById("compare-table");
  const head = `<thead><tr><th>hyperparameter</th>${data.runs.map((run) =>
    `<th><a href="/runs/${run.id}/">#${run.id}</a></th>`).join("")}</tr></thead>`;
  const cell = (value) => (value === null || value === undefined ? "—" : String(value)).replace(/[&<>"]/g,
    (character) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[character]);
  const rows = names.map((name) => `<tr data-param="${cell(name)}"${data.varying.includes(name) ? ' class="varies"' : ""}>
    <td>${cell(name)}</td>${data.runs.map((run) => `<td>${cell(run.params[name])}</td>`).join("")}</tr>`);
  const result = `<tr class="result"><td>${cell(data.metric)} (best)</td>${data.runs.map((run) =>
    `<td>${run.best === null ? "—" : Number(run.best).toPrecision(4)}</td>`).join("")}</tr>`;
  table.innerHTML = head + `<tbody>${rows.join("")}${result}</tbody>`;
  if (!names.length) table.insertAdjacentHTML("beforeend", `<caption class="muted">All hyperparameters are identical: untick “hide identical” to see them.</caption>`);
}

function drawParcoords(data) {
  const runs = data.runs.filter((run) => run.best !== null);
  const dimensions = data.varying.filter((name) => numeric(runs.map((run) => run.params[name]))).map((name) => ({
    label: name, values: runs.map((run) => Number(run.params[name] ?? 0)) }));
  const categorical = data.varying.filter((name) => !numeric(runs.map((run) => run.params[name])));
  for (const name of categorical) {
    const labels = [...new Set(runs.map((run) => String(run.params[name])))];
    dimensions.push({ label: name, values: runs.map((run) => labels.indexOf(String(run.params[name]))),
                      tickvals: labels.map((_, index) => index), ticktext: labels });
  }
  dimensions.push({ label: `${data.metric} (best)`, values: runs.map((run) => run.best) });
  window.Plotly.react("compare-parcoords", [{ type: "parcoords", dimensions,
    line: { color: runs.map((run) => run.best), colorscale: "Viridis", showscale: true } }],
    { margin: { t: 40, r: 40, b: 20, l: 60 }, height: 360 }, { displaylogo: false, responsive: true });
}

function drawScatter(data) {
  const select = document.getElementById("scatter-param");
  const choices = data.varying.length ? data.varying : data.parameters;
  if (!select.options.length) {
    select.innerHTML = choices.map((name) => `<option>${name}</option>`).join("");
    select.value = choices.includes(params.get("param")) ? params.get("param") : choices[0];
    select.addEventListener("change", () => { saveState({ param: select.value }); drawScatter(data); });
  }
  const runs = data.runs.filter((run) => run.best !== null);
  window.Plotly.react("compare-scatter", [{ type: "scatter", mode: "markers+text", textposition: "top center",
    x: runs.map((run) => run.params[select.value]), y: runs.map((run) => run.best),
    text: runs.map((run) => `#${run.id}`), marker: { size: 10 } }],
    { margin: { t: 10, r: 10, b: 50, l: 60 }, height: 320, xaxis: { title: select.value },
      yaxis: { title: `${data.metric} (best)` } }, { displaylogo: false, responsive: true });
}

async function load() {
  const query = new URLSearchParams({ runs: root.dataset.runs, points: "1000" });
  if (params.get("metric")) query.set("metric", params.get("metric"));
  const response = await apiFetch(`/api/runs/compare/?${query}`);
  const data = await response.json();
  if (!response.ok) {
    document.getElementById("compare-error").innerHTML = `<div class="alert error">${Object.values(data).join(" ")}</div>`;
    return;
  }
  const metricSelect = controls.elements.metric;
  metricSelect.innerHTML = data.metrics.map((name) => `<option${name === data.metric ? " selected" : ""}>${name}</option>`).join("");
  controls.elements.x.value = params.get("x") || "step";
  controls.elements.hide_identical.checked = params.get("hide_identical") !== "0";
  drawCurves(data); drawTable(data); drawParcoords(data); drawScatter(data);
  root.dataset.loaded = "true";
  return data;
}

if (root) {
  let current = null;
  const waitForPlotly = () => (window.Plotly ? load().then((data) => { current = data; }) : setTimeout(waitForPlotly, 50));
  waitForPlotly();
  controls.addEventListener("change", async (event) => {
    const name = event.target.name;
    if (name === "metric") { saveState({ metric: event.target.value }); current = await load(); }
    if (name === "x") { saveState({ x: event.target.value }); drawCurves(current); }
    if (name === "hide_identical") { saveState({ hide_identical: event.target.checked ? null : "0" }); drawTable(current); }
  });
}
