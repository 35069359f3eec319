// The new-sweep form: builds the request for POST /api/sweeps/ from the form, shows the server's field
// errors next to their fields, asks before running only part of a grid, and on success opens the sweep.
import { apiFetch } from "./csrf.js";
import { explainIcon, explanation } from "./explain.js";
import { MODEL_PREFIX, SearchSpace } from "./sweep_space.js";

const data = JSON.parse(document.getElementById("sweep-form-data").textContent);
const form = document.getElementById("sweep-form");
const byId = (id) => document.getElementById(id);
const MAXIMIZED = /(accuracy|f1|_r2)$/;

// --- the model and the names it can search -----------------------------------------------------------

function chosenModel() {
  const [kind, value] = form.elements.model.value.split(/:(.*)/s);
  if (kind === "design") return { design: data.designs.find((design) => String(design.id) === value) };
  return { preset: data.presets.find((preset) => preset.preset === value) };
}

/** model.* names of the chosen design; null for a design made of layers. */
function modelOptions() {
  const { design, preset } = chosenModel();
  if (preset) return preset.options;
  return design && design.preset ? design.options : null;
}

function fillNames() {
  const names = [...data.parameter_names.map((entry) => entry.name), ...(modelOptions() || [])];
  byId("parameter-names").replaceChildren(...names.map((name) => {
    const option = document.createElement("option");
    option.value = name;
    return option;
  }));
}

async function modelId() {
  const { design, preset } = chosenModel();
  if (design) return design.id;
  if (preset.design) return preset.design;
  // A preset becomes the project's design of that name (once: later sweeps reuse it).
  const response = await apiFetch("/api/models/", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ project: data.project, name: preset.preset, spec: { preset: preset.preset } }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new FieldErrors({ model: Object.values(body).flat() });
  preset.design = body.id;
  return body.id;
}

// --- objectives ------------------------------------------------------------------------------------------

function task() {
  const select = form.elements.dataset;
  return select.options[select.selectedIndex]?.dataset.task || "classification";
}

function metricOptions(select, chosen) {
  const metrics = data.metrics[task()] || [];
  select.replaceChildren(...metrics.map(({ name, per_epoch: perEpoch }) => {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = perEpoch ? name : `${name} (at the end)`;
    option.title = perEpoch ? "reported after every epoch: pruners can use it" : "known only when a trial ends: no pruning";
    return option;
  }));
  select.value = metrics.some((metric) => metric.name === chosen) ? chosen : metrics[0]?.name;
}

function addObjective(metric) {
  const row = document.createElement("div");
  row.className = "objective-row";
  row.dataset.testid = "objective-row";
  row.innerHTML = `<label>Metric <select class="objective-metric" data-testid="objective-metric"></select></label>
    <label>Direction <select class="objective-direction" data-testid="objective-direction">
      <option value="maximize">maximize</option><option value="minimize">minimize</option></select></label>
    <button type="button" class="icon-button objective-remove" title="Remove this objective" aria-label="Remove this objective">×</button>`;
  const metricSelect = row.querySelector(".objective-metric");
  const direction = row.querySelector(".objective-direction");
  const taken = [...document.querySelectorAll(".objective-metric")].map((select) => select.value);
  metricOptions(metricSelect, metric);
  if (!metric) metricSelect.value = (data.metrics[task()] || []).map((entry) => entry.name).find((name) => !taken.includes(name));
  const guess = () => { if (!direction.dataset.touched) direction.value = MAXIMIZED.test(metricSelect.value) ? "maximize" : "minimize"; };
  guess();
  metricSelect.addEventListener("change", guess);
  direction.addEventListener("change", () => { direction.dataset.touched = "yes"; });
  row.querySelector(".objective-remove").addEventListener("click", () => { row.remove(); objectivesChanged(); });
  byId("objective-rows").append(row);
  objectivesChanged();
}

function objectives() {
  return [...document.querySelectorAll(".objective-row")].map((row) => ({
    metric: row.querySelector(".objective-metric").value, direction: row.querySelector(".objective-direction").value,
  }));
}

let prunerBeforeMulti = null;
function objectivesChanged() {
  const rows = document.querySelectorAll(".objective-row");
  rows.forEach((row, index) => { row.querySelector(".objective-remove").hidden = index === 0; });
  const multi = rows.length > 1;
  const pruner = form.elements.pruner;
  byId("multi-objective-note").hidden = !multi;
  if (multi && !pruner.disabled) {
    prunerBeforeMulti = pruner.value;
    pruner.value = "none";
  } else if (!multi && pruner.disabled && prunerBeforeMulti) {
    pruner.value = prunerBeforeMulti;
  }
  pruner.disabled = multi;
  form.elements.target_value.disabled = multi;
  showHelp();
}

// --- help and client-side checks -------------------------------------------------------------------------

/** The chosen sampler's and pruner's explanation (their concepts', which admins may edit), with its ⓘ. */
function showHelp() {
  for (const name of ["sampler", "pruner"]) {
    const select = form.elements[name];
    const slug = data[`${name}_concepts`][select.value];
    const entry = explanation(slug);
    const help = byId(`${name}-help`);
    if (entry) help.replaceChildren(explainIcon(slug), `${entry.name}: ${entry.what}`);
    else help.textContent = select.options[select.selectedIndex]?.title || "";
  }
}

/** The concept explaining a search-space parameter: the server's list, else by prefix. */
function conceptOf(name) {
  if (data.parameter_concepts[name]) return data.parameter_concepts[name];
  const prefix = { "schedule.": "learning-rate-schedule", "augmentation.": "augmentation", [MODEL_PREFIX]: "architectures" };
  return Object.entries(prefix).find(([start]) => name.startsWith(start))?.[1] || null;
}

function clientErrors() {
  const errors = {};
  if (!space.check()) errors.search_space = ["Fix the marked parameters first."];
  if (!space.rows.length) errors.search_space = ["Add at least one parameter to search."];
  const [first] = objectives();
  const perEpoch = (data.metrics[task()] || []).find((metric) => metric.name === first?.metric)?.per_epoch;
  if (form.elements.pruner.value !== "none" && first && !perEpoch) {
    errors.pruner = [`A pruner compares a metric after each epoch, and ${first.metric} comes only at the end: optimise a per-epoch metric, or set the pruner to none.`];
  }
  const metrics = objectives().map((objective) => objective.metric);
  if (new Set(metrics).size !== metrics.length) errors.objective = ["A metric is listed twice."];
  try { warmStart(); } catch (error) { errors.warm_start = [error.message]; }
  return errors;
}

function warmStart() {
  const lines = form.elements.warm_start.value.split("\n").map((line) => line.trim());
  return lines.flatMap((line, index) => {
    if (!line) return [];
    let value;
    try { value = JSON.parse(line); } catch { throw new Error(`Line ${index + 1} is not JSON: write it like {"lr": 0.01}.`); }
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      throw new Error(`Line ${index + 1} must be one object of {parameter: value}, like {"lr": 0.01}.`);
    }
    return [value];
  });
}

// --- the request ----------------------------------------------------------------------------------------

class FieldErrors extends Error {
  constructor(errors) { super("refused"); this.errors = errors; }
}

/** A number where the text is one, else the text itself (the server names what is wrong with it). */
function number(name) {
  const text = form.elements[name].value.trim();
  if (text === "") return null;
  return Number.isFinite(Number(text)) ? Number(text) : text;
}

async function request(confirmPartialGrid) {
  const config = { optimizer: form.elements.optimizer.value };
  for (const name of ["lr", "batch_size", "epochs", "seed"]) {
    const value = number(name);
    if (value !== null) config[name] = value;
  }
  const minutes = number("timeout_minutes");
  const chosen = objectives();
  const body = {
    project: data.project, dataset: Number(form.elements.dataset.value), model: await modelId(),
    name: form.elements.name.value.trim(), config, search_space: space.value(),
    sampler: form.elements.sampler.value, pruner: form.elements.pruner.value,
    n_trials: number("n_trials"), parallelism: number("parallelism"),
    timeout_s: typeof minutes === "number" ? Math.max(1, Math.round(minutes * 60)) : minutes,
    target_value: chosen.length > 1 ? null : number("target_value"), queue: form.elements.queue.value,
    confirm_partial_grid: confirmPartialGrid, warm_start: warmStart(),
  };
  if (chosen.length > 1) body.objectives = chosen; else body.objective = chosen[0];
  return body;
}

// --- showing errors ---------------------------------------------------------------------------------------

function clearErrors() {
  form.querySelectorAll("[data-error-for]").forEach((slot) => { slot.textContent = ""; });
  form.querySelectorAll(".field.has-error").forEach((field) => field.classList.remove("has-error"));
  byId("form-errors").hidden = true;
  byId("grid-confirm").hidden = true;
}

function showErrors(errors) {
  const general = [];
  for (const [key, value] of Object.entries(errors)) {
    if (key === "grid_size") continue;
    const messages = [].concat(value).map(String);
    if (key === "search_space") messages.forEach((message) => space.markServerError(message));
    const slot = form.querySelector(`[data-error-for="${key}"]`);
    if (slot) {
      slot.textContent = messages.join(" ");
      slot.closest(".field")?.classList.add("has-error");
    } else {
      general.push(...messages.map((message) => (["detail", "non_field_errors"].includes(key) ? message : `${key}: ${message}`)));
    }
  }
  if (errors.grid_size !== undefined) offerPartialGrid(Number([].concat(errors.grid_size)[0]));
  const box = byId("form-errors");
  box.replaceChildren(...general.map((message) => {
    const alert = document.createElement("div");
    alert.className = "alert error";
    alert.setAttribute("role", "alert");
    alert.textContent = message;
    return alert;
  }));
  box.hidden = !general.length;
  if (errors.warm_start) byId("warm-start-box").open = true;
  const first = form.querySelector(".field-error:not(:empty), #form-errors:not([hidden])");
  first?.scrollIntoView({ block: "center", behavior: "smooth" });
}

function offerPartialGrid(size) {
  const budget = number("n_trials");
  byId("grid-confirm-text").textContent = `The grid has ${size} points but the budget is ${budget} trials. `;
  const button = byId("grid-confirm-button");
  button.textContent = `Run only ${budget} of them`;
  button.onclick = () => submit(true);
  byId("grid-confirm").hidden = false;
  const all = byId("grid-confirm-all") || button.insertAdjacentElement("afterend", Object.assign(
    document.createElement("button"), { type: "button", id: "grid-confirm-all" }));
  all.textContent = `Run all ${size}`;
  all.onclick = () => { form.elements.n_trials.value = size; submit(false); };
}

// --- submitting ----------------------------------------------------------------------------------------------

let busy = false;
async function submit(confirmPartialGrid = false) {
  if (busy) return;
  clearErrors();
  const refused = clientErrors();
  if (Object.keys(refused).length) { showErrors(refused); return; }
  busy = true;
  byId("sweep-submit").disabled = true;
  byId("sweep-wait").hidden = false;
  try {
    const response = await apiFetch("/api/sweeps/", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(await request(confirmPartialGrid)),
    });
    const body = await response.json().catch(() => ({ detail: `The server answered HTTP ${response.status}.` }));
    if (response.status === 201) {
      window.location.assign(`/sweeps/${body.id}/?created=1`);
      return;
    }
    showErrors(typeof body === "object" && body ? body : { detail: String(body) });
  } catch (error) {
    showErrors(error instanceof FieldErrors ? error.errors : { detail: `Could not reach the server: ${error.message}` });
  } finally {
    busy = false;
    byId("sweep-submit").disabled = false;
    byId("sweep-wait").hidden = true;
  }
}

// --- start -------------------------------------------------------------------------------------------------

const space = new SearchSpace(byId("space-table"), {
  names: data.parameter_names.map((entry) => entry.name), modelOptions, onChange: () => {}, conceptOf,
});

function suggestModel() {
  // An image dataset gets the small CNN preset, a table the MLP, until the user picks a model.
  const model = form.elements.model;
  if (model.dataset.touched) return;
  const select = form.elements.dataset;
  const modality = select.options[select.selectedIndex]?.dataset.modality;
  const wanted = modality === "image" ? "preset:small_cnn" : "preset:mlp";
  if (!data.designs.length && [...model.options].some((option) => option.value === wanted)) model.value = wanted;
}

form.elements.model.addEventListener("change", () => {
  form.elements.model.dataset.touched = "yes";
  fillNames();
  space.check();
});
form.elements.dataset.addEventListener("change", () => {
  suggestModel();
  fillNames();
  document.querySelectorAll(".objective-metric").forEach((select) => metricOptions(select, select.value));
});
form.elements.sampler.addEventListener("change", showHelp);
form.elements.pruner.addEventListener("change", showHelp);
byId("add-parameter").addEventListener("click", () => space.add({})?.inputs.name.focus());
byId("add-objective").addEventListener("click", () => addObjective());
form.addEventListener("submit", (event) => { event.preventDefault(); submit(false); });

suggestModel();
fillNames();
space.add({ name: "lr", type: "float", low: "0.0001", high: "0.1", log: true });
addObjective(task() === "regression" ? "val_loss" : "val_accuracy");
showHelp();
// ?warm_start= (one JSON object per line): trials to try first, e.g. from a dataset's recommendations.
const warmStartQuery = new URLSearchParams(window.location.search).get("warm_start");
if (warmStartQuery) {
  form.elements.warm_start.value = warmStartQuery;
  byId("warm-start-box").open = true;
}
window.trainyardSweepForm = { space, objectives };
