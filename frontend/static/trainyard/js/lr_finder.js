// The launch form's guidance: settings suggested from the data (GET /api/datasets/{id}/defaults/) and the
// learning-rate finder (POST /runs/new/lr-finder/, then GET /api/runs/{id}/lr-finder/ until it ends), whose
// suggestion the form can take.
import { apiFetch } from "./csrf.js";

const form = document.getElementById("launch-form");
const guide = document.getElementById("launch-guide");
const POLL_MS = 1000;

function modelQuery() {
  const [kind, value] = (form.elements.model.value || "").split(":");
  return kind === "design" ? `model=${encodeURIComponent(value)}` : `preset=${encodeURIComponent(value || "")}`;
}

function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

async function suggestSettings() {
  const reasons = document.getElementById("suggest-reasons");
  const optimizer = form.elements.optimizer.value;
  const processes = form.elements.nproc_per_node?.value || "1";
  const response = await apiFetch(`/api/datasets/${form.elements.dataset.value}/defaults/?${modelQuery()}`
    + `&optimizer=${encodeURIComponent(optimizer)}&processes=${encodeURIComponent(processes)}`);
  const body = await response.json();
  reasons.replaceChildren();
  if (!response.ok) {
    const item = document.createElement("li");
    item.className = "field-error";
    item.textContent = Object.values(body).flat().join(" ");
    reasons.append(item);
    reasons.hidden = false;
    return;
  }
  for (const [field, label] of [["batch_size", "Batch size"], ["lr", "Learning rate"], ["epochs", "Epochs"]]) {
    form.elements[field].value = body[field];
    form.elements[field].dispatchEvent(new Event("change", { bubbles: true }));
    const item = document.createElement("li");
    const name = document.createElement("strong");
    name.textContent = `${label} ${body[field]}: `;
    item.append(name, body.reasons[field]);
    item.dataset.field = field;
    reasons.append(item);
  }
  reasons.hidden = false;
}

function loadPlotly() {
  if (window.Plotly) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = guide.dataset.plotly;
    script.onload = resolve;
    script.onerror = reject;
    document.head.append(script);
  });
}

async function draw(result) {
  if (!result.curve.length) return;
  await loadPlotly();
  const traces = [{ x: result.curve.map((p) => p.lr), y: result.curve.map((p) => p.loss), mode: "lines+markers",
                    name: "loss (smoothed)", marker: { size: 4 } }];
  const shapes = [];
  if (result.suggested_lr) {
    shapes.push({ type: "line", x0: result.suggested_lr, x1: result.suggested_lr, yref: "paper", y0: 0, y1: 1,
                  line: { dash: "dash", color: "#16a34a" } });
  }
  window.Plotly.react("lr-finder-chart", traces, {
    margin: { t: 10, r: 10, b: 40, l: 50 }, height: 260, showlegend: false, shapes,
    xaxis: { type: "log", title: { text: "learning rate" } }, yaxis: { title: { text: "training loss" } },
  }, { displaylogo: false, responsive: true });
}

async function follow(runId) {
  const status = document.getElementById("lr-finder-status");
  for (;;) {
    const response = await apiFetch(`/api/runs/${runId}/lr-finder/`);
    const result = await response.json();
    await draw(result);
    if (result.status === "succeeded") {
      show(status, `Done: ${result.curve.length} steps. The loss was lowest at ${result.min_loss_lr.toPrecision(2)}; `
        + "the suggestion sits safely below it (a tenth of it, where the loss fell fastest, or — if the loss barely moved — "
        + "a twentieth of where it blew up).");
      document.getElementById("lr-finder-value").textContent = result.suggested_lr.toPrecision(2);
      document.getElementById("lr-finder-suggestion").hidden = false;
      guide.dataset.suggested = String(result.suggested_lr);
      break;
    }
    if (["failed", "cancelled", "lost"].includes(result.status)) {
      show(status, `The finder ${result.status}: ${result.error || "no message"}`);
      status.classList.add("field-error");
      break;
    }
    show(status, result.status === "queued" ? "Queued: waiting for a worker…"
      : `Running: ${result.curve.length} step(s) so far (at most one epoch)…`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  document.getElementById("find-lr").disabled = false;
}

async function findLearningRate() {
  const button = document.getElementById("find-lr");
  const status = document.getElementById("lr-finder-status");
  document.getElementById("lr-finder").hidden = false;
  document.getElementById("lr-finder-suggestion").hidden = true;
  status.classList.remove("field-error");
  button.disabled = true;
  show(status, "Checking the model and the settings…");
  const response = await apiFetch(guide.dataset.url, { method: "POST", body: new FormData(form) });
  const body = await response.json();
  if (!response.ok) {
    show(status, Object.entries(body.errors || {}).map(([field, messages]) =>
      `${field === "__all__" ? "" : field + ": "}${messages.join(" ")}`).join(" "));
    status.classList.add("field-error");
    button.disabled = false;
    return;
  }
  follow(body.run);
}

if (form && guide) {
  document.getElementById("suggest-settings").addEventListener("click", suggestSettings);
  document.getElementById("find-lr").addEventListener("click", findLearningRate);
  document.getElementById("lr-finder-use").addEventListener("click", () => {
    form.elements.lr.value = Number(guide.dataset.suggested).toPrecision(2);
    form.elements.lr.dispatchEvent(new Event("change", { bubbles: true }));
    show(document.getElementById("lr-finder-status"), `Learning rate set to ${form.elements.lr.value}.`);
  });
}
