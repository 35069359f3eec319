// The run page's "Tags & notes" form: PATCH /api/runs/{id}/ with the tags (comma-separated) and the notes.
import { apiFetch } from "./csrf.js";

const form = document.getElementById("run-notes-form");
const status = document.getElementById("run-notes-status");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const tags = form.elements.tags.value.split(",").map((tag) => tag.trim()).filter(Boolean);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const response = await apiFetch(`/api/runs/${form.dataset.run}/`, {
      method: "PATCH", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ tags, notes: form.elements.notes.value }) });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      form.elements.tags.value = body.tags.join(", ");
      status.textContent = "Saved.";
      status.classList.remove("error-text");
    } else {
      status.textContent = Object.values(body).flat().join(" ") || `${response.status} ${response.statusText}`;
      status.classList.add("error-text");
    }
  } finally {
    button.disabled = false;
  }
});
