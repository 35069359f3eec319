// Run page, admins: move a waiting run (up, down, top, bottom, a priority, another queue) or requeue it, through
// POST /api/runs/{id}/move/ and /requeue/; the page reloads to show where it now waits.
import { apiFetch } from "./csrf.js";

const card = document.getElementById("run-steer");
const message = document.getElementById("run-message");

async function post(action, body) {
  const response = await apiFetch(`/api/runs/${card.dataset.run}/${action}/`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: body && JSON.stringify(body),
  });
  if (response.ok) { window.location.reload(); return; }
  const answer = await response.json().catch(() => ({}));
  message.hidden = false;
  message.classList.add("error");
  message.textContent = Object.values(answer).flat().join(" ") || `Refused (${response.status}).`;
}

card?.addEventListener("click", (event) => {
  const button = event.target.closest("[data-steer]");
  if (!button) return;
  const action = button.dataset.steer;
  if (action === "requeue") post("requeue");
  else if (action === "queue") post("move", { queue: card.querySelector("[data-steer-queue]").value });
  else post("move", { direction: action });
});
card?.querySelector("[data-steer-priority]")?.addEventListener("change", (event) => {
  post("move", { priority: Number(event.target.value) });
});
