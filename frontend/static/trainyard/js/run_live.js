// The live run page: draws the persisted metrics, then follows the run's event stream (Server-Sent Events,
// resumed by the browser with Last-Event-ID after a drop) for metrics, progress, logs, status and checkpoints.
// Cancel and Resume post to the API. A finished run's page is drawn from SQL alone.
import { apiFetch } from "./csrf.js";
import { MetricCharts } from "./run_charts.js";

const page = JSON.parse(document.getElementById("run-data").textContent);
const CANCELLABLE = ["queued", "starting", "running"];
const RESUMABLE = ["cancelled", "failed", "lost"];
const FINAL = ["succeeded", "failed", "cancelled"];
const LOG_LINES = 200;
const byId = (id) => document.getElementById(id);

function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "…";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}
function clock(time) { return time ? new Date(time * 1000).toLocaleTimeString([], { hour12: false }) : ""; }

// --- status and actions --------------------------------------------------------------------------

let status = page.status;
function setStatus(value, { confirmed = true } = {}) {
  status = value;
  const badge = byId("run-status");
  badge.textContent = value;
  badge.className = `badge status-${value}`;
  badge.dataset.status = value;
  // The engine reports its outcome a moment before the run's row is final: buttons follow the row.
  if (confirmed) {
    byId("run-cancel").hidden = !CANCELLABLE.includes(value);
    byId("run-resume").hidden = !RESUMABLE.includes(value);
  } else if (!CANCELLABLE.includes(value)) {
    byId("run-cancel").hidden = true;
  }
}

function refreshPanels() { document.body.dispatchEvent(new CustomEvent("run-refresh")); }

function say(message, kind = "info") {
  const box = byId("run-message");
  box.textContent = message;
  box.className = kind === "error" ? "alert error" : "notice";
  box.hidden = !message;
}

async function act(action) {
  const button = byId(`run-${action}`);
  button.disabled = true;
  try {
    const response = await apiFetch(`/api/runs/${page.id}/${action}/`, { method: "POST" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      say(Object.values(body).flat().join(" ") || `${action} failed (HTTP ${response.status})`, "error");
      return;
    }
    if (action === "resume") { window.location.reload(); return; }
    setStatus(body.status);
    say(body.cancel_requested ? "Cancel requested: the run finishes its current step, saves a checkpoint and stops." : "");
    refreshPanels();
  } finally {
    button.disabled = false;
  }
}

// --- progress ---------------------------------------------------------------------------------------

const progress = { step: page.step, total: page.total_steps, epoch: page.epoch, epochs: page.epochs, samples: [] };
function onProgress(event) {
  Object.assign(progress, { step: event.step, total: event.total_steps, epoch: event.epoch, epochs: event.epochs });
  progress.samples.push([event.time, event.step]);
  while (progress.samples.length > 2 && event.time - progress.samples[0][0] > 60) progress.samples.shift();
  if (event.total_steps && event.epochs) charts?.setStepsPerEpoch(event.total_steps / event.epochs);
  showProgress();
}

function stepRate() {
  const samples = progress.samples;
  if (samples.length >= 2) {
    const [[firstTime, firstStep], [lastTime, lastStep]] = [samples[0], samples[samples.length - 1]];
    if (lastTime > firstTime && lastStep > firstStep) return (lastStep - firstStep) / (lastTime - firstTime);
  }
  if (page.started_at && progress.step) return progress.step / Math.max(Date.now() / 1000 - page.started_at, 1);
  return null;
}

function showProgress() {
  const bar = byId("progress-bar");
  const text = byId("progress-text");
  const share = progress.total ? Math.min(1, progress.step / progress.total) : 0;
  bar.style.width = `${(share * 100).toFixed(1)}%`;
  byId("run-progress").dataset.step = String(progress.step || 0);
  if (status === "queued") { text.textContent = "Queued: waiting for a worker on this queue."; return; }
  const parts = [];
  if (progress.total) parts.push(`step ${progress.step} of ${progress.total} (${Math.round(share * 100)}%)`);
  if (progress.epochs) parts.push(`epoch ${progress.epoch || 0} of ${progress.epochs}`);
  const end = FINAL.includes(status) && page.finished_at ? page.finished_at : Date.now() / 1000;
  if (page.started_at) parts.push(`${duration(end - page.started_at)} ${FINAL.includes(status) ? "in all" : "elapsed"}`);
  const rate = stepRate();
  if (!FINAL.includes(status) && rate) {
    parts.push(`${rate >= 10 ? rate.toFixed(0) : rate.toFixed(2)} steps/s`);
    if (progress.total && progress.step < progress.total) parts.push(`about ${duration((progress.total - progress.step) / rate)} left`);
  }
  text.textContent = parts.join(" · ") || (status === "starting" ? "Starting: loading torch and the data…" : "No progress reported yet.");
}

// --- the log tail -----------------------------------------------------------------------------------

function addLog(entry) {
  const list = byId("log-tail");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
  const line = document.createElement("div");
  line.className = `log-line level-${entry.level || "info"}`;
  line.textContent = `${clock(entry.time)} ${(entry.level || "info").toUpperCase().padEnd(7)} ${entry.message}`;
  list.append(line);
  while (list.children.length > LOG_LINES) list.firstElementChild.remove();
  byId("log-empty").hidden = true;
  if (atBottom) list.scrollTop = list.scrollHeight;
}

// --- confusion matrix ---------------------------------------------------------------------------------

function drawConfusion(data) {
  if (!data || !data.matrix || !window.Plotly) return;
  const labels = (data.labels && data.labels.length ? data.labels : page.class_names).map(String);
  const size = labels.length;
  byId("confusion-card").hidden = false;
  window.Plotly.react(byId("confusion"), [{
    type: "heatmap", z: data.matrix, x: labels, y: labels, colorscale: "Blues", reversescale: true, showscale: true,
    texttemplate: size <= 20 ? "%{z}" : "", hovertemplate: "true %{y}<br>predicted %{x}<br>%{z} samples<extra></extra>",
  }], {
    height: Math.min(640, 160 + 28 * size), margin: { t: 8, r: 12, b: 60, l: 80 },
    xaxis: { title: { text: "predicted" }, type: "category" },
    yaxis: { title: { text: "true" }, type: "category", autorange: "reversed" },
  }, { displaylogo: false, responsive: true });
  byId("confusion-split").textContent = data.split ? `on the ${data.split} split` : "";
}

// --- the event stream -----------------------------------------------------------------------------

let charts = null;
let source = null;
let ended = false;
let finalCheck = null;

function connection(state, text) {
  const badge = byId("live-state");
  badge.dataset.state = state;
  badge.textContent = text;
}

function listen() {
  connection("connecting", "connecting…");
  source = new EventSource(`/api/runs/${page.id}/events/?after=${encodeURIComponent(page.stream_position)}`);
  const on = (kind, handler) => source.addEventListener(kind, (event) => handler(JSON.parse(event.data || "{}")));
  source.onopen = () => connection("live", "live");
  source.onerror = () => {
    if (ended) return;
    connection("reconnecting", "reconnecting…"); // the browser reconnects and resumes with Last-Event-ID
    checkFinal();
  };
  on("metrics", (event) => charts.receive(event));
  on("progress", onProgress);
  on("log", addLog);
  on("status", (event) => {
    setStatus(event.state === "diverged" ? "failed" : event.state, { confirmed: false });
    if (event.message) addLog({ time: event.time, level: "status", message: `${event.state}: ${event.message}` });
    if (event.state === "running" && !page.started_at) page.started_at = event.time;
    if (!CANCELLABLE.includes(event.state)) watchForFinal();
  });
  on("heartbeat", (event) => {
    if (FINAL.includes(event.status)) { stop(); return; }
    if (event.status && event.status !== status) { setStatus(event.status); refreshPanels(); }
  });
  on("checkpoint", () => setTimeout(refreshPanels, 4000)); // the persister stores it with the next heartbeat
  on("confusion_matrix", drawConfusion);
  on("summary", () => setTimeout(refreshPanels, 4000));
  on("end", () => stop());
}

// The engine reports its outcome before the supervisor records it; the stream's `end` follows once the
// run's row is final. Asking the API as well ends the page's listening even if `end` never comes.
async function fetchRun() {
  try {
    const response = await apiFetch(`/api/runs/${page.id}/`);
    return response.ok ? await response.json() : null;
  } catch (error) {
    return null;
  }
}

async function checkFinal() {
  const run = await fetchRun();
  if (run && FINAL.includes(run.status)) stop(run);
  return run;
}

function watchForFinal() {
  if (finalCheck || ended) return;
  finalCheck = setInterval(checkFinal, 2000);
}

async function stop(known = null) {
  if (ended) return;
  ended = true;
  clearInterval(finalCheck);
  source?.close();
  connection("ended", "finished");
  const run = known && known.status ? known : await fetchRun();
  if (!run) return;
  say("");
  if (run.status === "failed" && !byId("run-error")) { window.location.reload(); return; }
  setStatus(run.status);
  if (run.started_at) page.started_at = Date.parse(run.started_at) / 1000;
  page.finished_at = run.finished_at ? Date.parse(run.finished_at) / 1000 : Date.now() / 1000;
  showProgress();
  refreshPanels();
}

// --- start ------------------------------------------------------------------------------------------

function bindControls() {
  // The buttons are drawn disabled: a click before this script runs would otherwise be lost.
  for (const action of ["cancel", "resume"]) {
    const button = byId(`run-${action}`);
    button.addEventListener("click", () => act(action));
    button.disabled = false;
  }
  const controls = byId("chart-controls");
  const smoothing = controls.elements.smoothing;
  controls.addEventListener("change", () => charts.setView({
    axis: controls.elements.axis.value, smoothing: Number(smoothing.value), logScale: controls.elements.log.checked,
  }));
  smoothing.addEventListener("input", () => { byId("smoothing-value").textContent = Number(smoothing.value).toFixed(2); });
}

async function start() {
  charts = new MetricCharts(byId("charts"), {
    anchors: page.anchors, stepsPerEpoch: page.total_steps && page.epochs ? page.total_steps / page.epochs : null,
    onEmpty: (empty) => { byId("charts-empty").hidden = !empty; },
  });
  bindControls();
  page.logs.forEach(addLog);
  drawConfusion(page.confusion);
  showProgress();
  try {
    const response = await apiFetch(`/api/runs/${page.id}/metrics/?points=2000`);
    if (response.ok) charts.load((await response.json()).series);
  } catch (error) {
    say(`The persisted metrics did not load (${error.message}): live points still arrive.`, "error");
  }
  if (page.live) {
    listen();
    setInterval(showProgress, 1000);
  } else {
    connection("ended", "finished");
  }
}

window.trainyardRun = { get charts() { return charts; } };
if (window.Plotly) start(); else window.addEventListener("load", start);
