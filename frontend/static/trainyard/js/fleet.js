// Fleet page actions: pause/resume a queue, move a waiting run, requeue a running one, drain/resume/shut down a
// worker (admin API), then refresh at once.
import { apiFetch } from "./csrf.js";

const fleet = document.getElementById("fleet");
const message = document.getElementById("fleet-message");

async function act(url, done, payload) {
  const response = await apiFetch(url, payload ? {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
  } : { method: "POST" });
  const body = await response.json().catch(() => ({}));
  message.hidden = false;
  message.classList.toggle("error", !response.ok);
  message.textContent = response.ok ? done : Object.values(body).flat().join(" ") || `Refused (${response.status}).`;
  if (window.htmx) window.htmx.ajax("GET", fleet.getAttribute("hx-get"), { target: fleet, swap: "innerHTML" });
}

fleet?.addEventListener("click", (event) => {
  const queueButton = event.target.closest("[data-queue-action]");
  if (queueButton) {
    const action = queueButton.dataset.queueAction;
    act(`/api/queues/${queueButton.dataset.queue}/${action}/`, action === "pause"
      ? "Queue paused: it accepts runs but starts none." : "Queue resumed: waiting runs start.");
    return;
  }
  const moveButton = event.target.closest("[data-run-move]");
  if (moveButton) {
    act(`/api/runs/${moveButton.dataset.run}/move/`, "Moved: the queue starts its runs in the order shown.",
      { direction: moveButton.dataset.runMove });
    return;
  }
  const requeueButton = event.target.closest("[data-run-requeue]");
  if (requeueButton) {
    if (!window.confirm("Requeue this run? It checkpoints, stops and waits again in its queue.")) return;
    act(`/api/runs/${requeueButton.dataset.runRequeue}/requeue/`, "Requeued: the run checkpoints, stops and waits again.");
    return;
  }
  const workerButton = event.target.closest("[data-worker-action]");
  if (workerButton) {
    const action = workerButton.dataset.workerAction;
    if (action === "shutdown" && !window.confirm("Shut this worker down? Its current jobs finish first.")) return;
    act(`/api/workers/${workerButton.dataset.workerId}/${action}/`, {
      drain: "Draining: the worker finishes its jobs and takes no more.", resume: "The worker takes jobs again.",
      shutdown: "Shutting down after its current jobs.",
    }[action]);
  }
});
