// The runs list's actions: the filter bar (a choice applies at once; empty fields stay out of the URL), a
// row's star, and one action on every chosen run through POST /api/runs/bulk/, after which the table
// reloads with the filters it shows.
import { apiFetch } from "./csrf.js";
import { chosenRuns, clearChosen } from "./compare_select.js";

const filters = document.getElementById("run-filters");
const message = document.getElementById("bulk-message");
const tagInput = document.getElementById("bulk-tag");
const JSON_HEADERS = { "Content-Type": "application/json" };

filters.addEventListener("formdata", (event) => {
  for (const [name, value] of [...event.formData.entries()]) {
    if (value === "" || (name === "order" && value === "-created")) event.formData.delete(name);
  }
});
filters.addEventListener("change", (event) => {
  if (event.target.matches("select, input[type=checkbox]")) filters.requestSubmit();
});

function show(lines, isError = false) {
  message.replaceChildren(...lines.map((line, index) => {
    const element = document.createElement(index === 0 ? "strong" : "div");
    element.textContent = line;
    return element;
  }));
  message.classList.toggle("error", isError);
  message.hidden = false;
}

function errorLines(body, response) {
  const messages = Object.values(body).flat().map(String);
  return messages.length ? messages : [`${response.status} ${response.statusText}`];
}

function refreshTable() {
  const table = document.getElementById("run-table");
  window.htmx.ajax("GET", table.getAttribute("hx-get"), { target: "#run-table", swap: "outerHTML" });
}

async function bulk(action, button) {
  const runs = chosenRuns();
  const request = { runs, action };
  if (action === "tag" || action === "untag") {
    request.tag = tagInput.value.trim();
    if (!request.tag) {
      show([`Type a tag name first, then press ${action === "tag" ? "Tag…" : "Untag…"}`], true);
      tagInput.focus();
      return;
    }
  }
  if (action === "cancel" && !window.confirm(`Cancel ${runs.length} run(s)? Finished ones are left as they are.`)) return;
  button.disabled = true;
  try {
    const response = await apiFetch("/api/runs/bulk/", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(request) });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      show(errorLines(body, response), true);
      return;
    }
    const refused = Object.entries(body.refused || {});
    show([`${body.updated} updated${refused.length ? `, ${refused.length} refused` : ""}.`,
      ...refused.map(([run, why]) => `run ${run}: ${why}`)], refused.length > 0);
    refreshTable();
  } finally {
    button.disabled = false;
  }
}

async function toggleStar(button) {
  const starred = button.getAttribute("aria-pressed") !== "true";
  button.disabled = true;
  try {
    const response = await apiFetch(`/api/runs/${button.dataset.star}/`, {
      method: "PATCH", headers: JSON_HEADERS, body: JSON.stringify({ starred }) });
    if (!response.ok) {
      show(errorLines(await response.json().catch(() => ({})), response), true);
      return;
    }
    button.setAttribute("aria-pressed", String(starred));
    button.classList.toggle("starred", starred);
    button.textContent = starred ? "★" : "☆";
    button.title = `${starred ? "Unstar" : "Star"} this run`;
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("click", (event) => {
  const star = event.target.closest("[data-star]");
  if (star) toggleStar(star);
  const action = event.target.closest("[data-bulk]");
  if (action) bulk(action.dataset.bulk, action);
});
document.getElementById("bulk-clear").addEventListener("click", () => {
  clearChosen();
  message.hidden = true;
});
