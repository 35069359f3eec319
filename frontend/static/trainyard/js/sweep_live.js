// A sweep's live page: polls GET /api/sweeps/{id}/ every 2 s while the sweep is not over and redraws the
// header, the progress and its ETA, the best trial, the trials table and the charts. Pause, Resume, Stop,
// the parallelism, a trial's Stop and Promote go through the API.
import { apiFetch } from "./csrf.js";
import { IntermediateChart, OptunaCharts } from "./sweep_charts.js";

const page = JSON.parse(document.getElementById("sweep-data").textContent);
const byId = (id) => document.getElementById(id);
const POLL_MS = 2000;
const ACTIVE = ["queued", "running", "paused"];
const FINISHED_STATES = ["complete", "pruned", "fail"];
const SOURCES = { history: "tried first", retry: "retry" };

let sweep = null;
const selected = new Set();

// --- formatting -------------------------------------------------------------------------------------------

function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}
function number(value) {
  if (typeof value !== "number") return value === null || value === undefined ? "—" : String(value);
  return Number.isInteger(value) ? String(value) : value.toPrecision(4).replace(/\.?0+(e|$)/, "$1");
}
function params(values) {
  return Object.entries(values || {}).map(([name, value]) => `${name}=${number(value)}`).join(", ");
}
function text(tag, content, attributes = {}) {
  const node = document.createElement(tag);
  node.textContent = content;
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}
function say(message, kind = "info") {
  const box = byId("sweep-message");
  box.textContent = message;
  box.className = kind === "error" ? "alert error" : "notice";
  box.hidden = !message;
}
async function errorText(response) {
  const body = await response.json().catch(() => ({}));
  return Object.values(body).flat().join(" ") || `HTTP ${response.status}`;
}

// --- header, progress, best ---------------------------------------------------------------------------------

function done(trials) {
  return trials.filter((trial) => FINISHED_STATES.includes(trial.state) && !trial.retried).length;
}

function renderHeader() {
  const badge = byId("sweep-status");
  badge.textContent = sweep.status;
  badge.className = `badge status-${sweep.status}`;
  badge.dataset.status = sweep.status;
  const reason = byId("sweep-end-reason");
  reason.hidden = !sweep.end_reason;
  reason.textContent = sweep.end_reason ? `Ended: ${sweep.end_reason}` : "";
  byId("sweep-pause").hidden = !["queued", "running"].includes(sweep.status);
  byId("sweep-resume").hidden = sweep.status !== "paused";
  byId("sweep-stop").hidden = !ACTIVE.includes(sweep.status);
  const parallelism = byId("sweep-parallelism");
  parallelism.disabled = !ACTIVE.includes(sweep.status);
  if (document.activeElement !== parallelism) parallelism.value = sweep.parallelism;
}

function renderProgress() {
  const trials = sweep.trials;
  const finished = Math.min(done(trials), sweep.n_trials);
  const running = trials.filter((trial) => trial.state === "running").length;
  byId("sweep-progress-bar").style.width = `${sweep.n_trials ? (100 * finished) / sweep.n_trials : 0}%`;
  const parts = [`${finished} of ${sweep.n_trials} trials`];
  if (running) parts.push(`${running} running`);
  if (sweep.counts?.pruned) parts.push(`${sweep.counts.pruned} pruned`);
  if (sweep.queued_runs) parts.push(`${sweep.queued_runs} waiting for a worker`);
  const durations = trials.filter((trial) => FINISHED_STATES.includes(trial.state) && Number.isFinite(trial.duration_s))
    .map((trial) => trial.duration_s);
  const remaining = sweep.n_trials - finished;
  if (ACTIVE.includes(sweep.status) && durations.length && remaining > 0) {
    const average = durations.reduce((sum, value) => sum + value, 0) / durations.length;
    parts.push(`about ${duration((average * remaining) / Math.max(1, sweep.parallelism))} left`);
  }
  if (sweep.epochs_used) parts.push(`${sweep.epochs_used} epochs trained`);
  byId("sweep-progress-text").textContent = parts.join(" · ");
}

function renderBest() {
  const box = byId("best");
  const best = sweep.best || {};
  if (best.pareto) {
    const list = document.createElement("ul");
    list.className = "pareto-list";
    for (const trial of best.pareto) {
      list.append(text("li", `trial ${trial.number}: ${(trial.values || []).map(number).join(" / ")} · ${params(trial.params)}`));
    }
    box.replaceChildren(text("p", `${best.pareto.length} trial(s) on the front (${sweep.objectives.map((o) => o.metric).join(" / ")}):`), list);
    return;
  }
  if (best.number === undefined) {
    box.replaceChildren(text("p", "No trial has finished yet.", { class: "muted" }));
    return;
  }
  const line = document.createElement("p");
  line.append(text("strong", `Trial ${best.number}`), ` · ${page.objectives[0].metric} `,
    text("strong", number(best.value), { "data-testid": "best-value" }), ` · ${params(best.params)}`);
  if (best.run) {
    line.append(" · ");
    line.append(text("a", `run ${best.run}`, { href: `/runs/${best.run}/` }));
  }
  box.replaceChildren(line);
}

// --- the trials table ---------------------------------------------------------------------------------------

function stateBadge(trial) {
  const label = trial.stopped_by_user ? "stopped" : trial.retried ? "lost, retried" : trial.state;
  return text("span", label, { class: `badge state-${trial.state}`, "data-testid": "trial-state" });
}

function whyStopped(trial) {
  if (trial.pruned_why?.text) {
    const metric = trial.pruned_why.metric ? `${trial.pruned_why.metric} ` : "";
    return text("span", `${metric}${trial.pruned_why.text}`, { class: "why", title: `rule: ${trial.pruned_why.rule}`,
      "data-testid": "pruned-why" });
  }
  if (trial.state === "pruned" && trial.pruned_message) return text("span", trial.pruned_message, { class: "why", "data-testid": "pruned-why" });
  if (trial.stopped_by_user) return text("span", "stopped by a user", { class: "why" });
  if (trial.error) return text("span", trial.error, { class: "why error-text", "data-testid": "trial-error" });
  return "";
}

function trialRow(trial) {
  const row = document.createElement("tr");
  row.dataset.trial = trial.number;
  row.dataset.state = trial.state;
  row.dataset.testid = "trial-row";
  const cells = [];
  const select = document.createElement("td");
  select.className = "select";
  if (trial.run) {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "trial-box";
    box.value = trial.run;
    box.checked = selected.has(String(trial.run));
    box.setAttribute("aria-label", `compare trial ${trial.number}`);
    select.append(box);
  }
  cells.push(select, text("td", String(trial.number), { class: "num" }));
  const state = document.createElement("td");
  state.append(stateBadge(trial));
  cells.push(state, text("td", params(trial.params), { class: "params" }));
  const value = trial.values && trial.values.length > 1 ? trial.values.map(number).join(" / ") : number(trial.value);
  cells.push(text("td", value, { class: "num", "data-testid": "trial-value" }));
  cells.push(text("td", trial.duration_s !== null ? duration(trial.duration_s) : trial.state === "running" ? "running" : "—", { class: "num nowrap" }));
  const epochs = Object.keys(trial.intermediate || {}).length;
  cells.push(text("td", page.epochs ? `${epochs}/${trial.params?.epochs ?? page.epochs}` : String(epochs), { class: "num" }));
  const why = document.createElement("td");
  why.append(whyStopped(trial));
  cells.push(why);
  const source = SOURCES[trial.source];
  cells.push(text("td", source ? (trial.retry_of !== null && trial.retry_of !== undefined ? `retry of #${trial.retry_of}` : source) : "",
    { class: "small muted", title: trial.source === "history" ? "from “Trials to try first”" : "" }));
  const run = document.createElement("td");
  if (trial.run) run.append(text("a", `run ${trial.run}`, { href: `/runs/${trial.run}/`, class: "nowrap" }));
  const action = document.createElement("td");
  if (trial.state === "running" && trial.run) {
    const stop = text("button", "Stop", { type: "button", class: "danger icon-button trial-stop", "data-number": trial.number,
      title: "stop this trial: its run checkpoints and stops", "data-testid": "trial-stop" });
    action.append(stop);
  }
  cells.push(run, action);
  row.append(...cells);
  return row;
}

let tableSignature = "";
function renderTrials() {
  const trials = [...sweep.trials].sort((a, b) => a.number - b.number);
  byId("trials-empty").hidden = trials.length > 0;
  byId("trials-table").hidden = !trials.length;
  const signature = JSON.stringify(trials);
  if (signature === tableSignature) return;
  tableSignature = signature;
  byId("trials-body").replaceChildren(...trials.map(trialRow));
}

function renderCompare() {
  const link = byId("compare-trials");
  link.hidden = selected.size < 2;
  link.textContent = `Compare ${selected.size} selected`;
  link.href = `/runs/compare/?runs=${[...selected].join(",")}`;
}

// --- polling --------------------------------------------------------------------------------------------------

const intermediate = new IntermediateChart(byId("intermediate-chart"), byId("intermediate-empty"),
  { metric: page.objectives[0]?.metric || "objective" });
const optuna = new OptunaCharts({ sweepId: page.id, tabs: byId("chart-tabs"), plot: byId("optuna-chart"),
  empty: byId("chart-empty"), help: byId("chart-help") });

function render() {
  renderHeader();
  renderProgress();
  renderBest();
  renderTrials();
  renderCompare();
  intermediate.update(sweep.trials);
  optuna.update(sweep.trials.filter((trial) => FINISHED_STATES.includes(trial.state)).length);
}

let timer = null;
let polls = 0;
let finalPolls = 0;
async function poll() {
  clearTimeout(timer);
  try {
    const response = await apiFetch(`/api/sweeps/${page.id}/`);
    if (!response.ok) throw new Error(await errorText(response));
    sweep = await response.json();
    polls += 1;
    render();
    byId("live-state").dataset.state = "live";
  } catch (error) {
    byId("live-state").dataset.state = "reconnecting";
    byId("live-state").textContent = `reconnecting (${error.message})`;
    timer = setTimeout(poll, POLL_MS * 2);
    return;
  }
  // After the end, follow the trials that are still being recorded for a little while.
  const unsettled = sweep.trials.some((trial) => trial.state === "running" || trial.state === "waiting");
  if (ACTIVE.includes(sweep.status) || (unsettled && finalPolls++ < 30)) {
    byId("live-state").textContent = "live";
    timer = setTimeout(poll, POLL_MS);
  } else {
    byId("live-state").dataset.state = "finished";
    byId("live-state").textContent = "finished";
  }
}

// --- actions ----------------------------------------------------------------------------------------------------

async function act(url, { method = "POST", body, confirmText, button } = {}) {
  if (confirmText && !window.confirm(confirmText)) return null;
  if (button) button.disabled = true;
  try {
    const response = await apiFetch(url, { method, headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body) });
    if (!response.ok) { say(await errorText(response), "error"); return null; }
    say("");
    return await response.json();
  } catch (error) {
    say(`Could not reach the server: ${error.message}`, "error");
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

async function control(action, confirmText) {
  const answer = await act(`/api/sweeps/${page.id}/${action}/`, { confirmText, button: byId(`sweep-${action}`) });
  if (answer) { sweep = answer; render(); poll(); }
}

byId("sweep-pause").addEventListener("click", () => control("pause"));
byId("sweep-resume").addEventListener("click", () => control("resume"));
byId("sweep-stop").addEventListener("click", () => control("stop",
  "Stop this sweep? Queued trials are cancelled and running ones checkpoint and stop. It cannot be resumed."));
byId("sweep-parallelism").addEventListener("change", async (event) => {
  const value = Number(event.target.value);
  const answer = await act(`/api/sweeps/${page.id}/`, { method: "PATCH", body: { parallelism: Number.isInteger(value) ? value : event.target.value } });
  if (answer) { sweep = answer; render(); say(`Parallel trials set to ${answer.parallelism}.`); }
});
byId("trials-body").addEventListener("click", async (event) => {
  const button = event.target.closest(".trial-stop");
  if (!button) return;
  const number = button.dataset.number;
  const answer = await act(`/api/sweeps/${page.id}/trials/${number}/stop/`, {
    confirmText: `Stop trial ${number}? Its run checkpoints and stops; the sweep goes on with other trials.`, button });
  if (answer) { sweep = answer; render(); }
});
byId("trials-body").addEventListener("change", (event) => {
  if (!event.target.classList.contains("trial-box")) return;
  if (event.target.checked) selected.add(event.target.value); else selected.delete(event.target.value);
  renderCompare();
});
byId("promote").addEventListener("click", async () => {
  const trial = byId("promote-trial").value.trim();
  const epochs = byId("promote-epochs").value.trim();
  const body = {};
  if (trial) body.trial = Number(trial);
  if (epochs) body.epochs = Number(epochs);
  const run = await act(`/api/sweeps/${page.id}/promote/`, { body, button: byId("promote") });
  if (!run) return;
  const result = byId("promote-result");
  result.replaceChildren("Promoted: ", text("a", `run ${run.id}${run.name ? ` (${run.name})` : ""}`,
    { href: `/runs/${run.id}/`, "data-testid": "promoted-run" }), ` is ${run.status}, training ${body.epochs ?? "twice the sweep's"} epochs.`);
  result.hidden = false;
});

window.trainyardSweep = { get sweep() { return sweep; }, get polls() { return polls; }, intermediate, optuna };
poll();
