// A worker's GPU utilisation (mean, with the minute's max as a light band) and memory used over time, one
// chart per GPU, from /api/workers/{id}/gpu-history/?hours=N; the span buttons reload it.
import { apiFetch } from "./csrf.js";

const element = document.getElementById("gpu-history");
const note = document.getElementById("gpu-history-note");

async function load(hours) {
  if (!element) return;
  const response = await apiFetch(`${element.dataset.url}?hours=${hours}`);
  if (!response.ok) {
    note.textContent = `Could not load the history (${response.status}).`;
    return;
  }
  const history = await response.json();
  draw(history);
}

function draw(history) {
  element.replaceChildren();
  if (!history.gpus.length) {
    note.textContent = "No history yet: the first point appears one minute after the worker starts sending heartbeats.";
    return;
  }
  const step = history.minutes_per_point;
  note.textContent = `Last ${history.hours} h, one point per ${step === 1 ? "minute" : `${step} minutes`}` +
    " (utilisation: the mean, and the highest sample dotted; memory: the most used). Gaps: the worker was off.";
  const webgl = history.gpus.some((gpu) => gpu.time.length > 2000);
  for (const gpu of history.gpus) {
    const box = document.createElement("div");
    box.dataset.testid = `gpu-chart-${gpu.index}`;
    box.className = "gpu-chart";
    element.append(box);
    const line = webgl ? "scattergl" : "scatter";
    const traces = [
      { type: line, mode: "lines", name: "utilisation max %", x: gpu.time, y: gpu.utilization_max,
        line: { width: 1, color: "rgba(37,99,235,0.45)", dash: "dot" }, connectgaps: false },
      { type: line, mode: "lines", name: "utilisation mean %", x: gpu.time, y: gpu.utilization_mean,
        line: { width: 1.5, color: "#2563eb" }, connectgaps: false },
      { type: line, mode: "lines", name: "memory used MB", x: gpu.time, y: gpu.memory_used_mb_max, yaxis: "y2",
        line: { width: 1.5, color: "#f59e0b" }, connectgaps: false },
    ];
    window.Plotly.newPlot(box, traces, {
      title: { text: `GPU ${gpu.index}${gpu.name ? ` · ${gpu.name}` : ""}`, font: { size: 13 }, x: 0.99, xanchor: "right" },
      height: 280, margin: { t: 56, r: 60, b: 40, l: 50 }, legend: { orientation: "h", x: 0, y: 1.2 },
      xaxis: { title: { text: "UTC", standoff: 4 } },
      yaxis: { title: "utilisation %", range: [0, 100] },
      yaxis2: { title: "memory MB", overlaying: "y", side: "right",
                range: [0, gpu.memory_total_mb || null], rangemode: "tozero" },
    }, { displaylogo: false, responsive: true });
  }
}

for (const button of document.querySelectorAll("[data-hours]")) {
  button.addEventListener("click", () => {
    for (const other of document.querySelectorAll("[data-hours]")) {
      other.classList.toggle("selected", other === button);
      other.setAttribute("aria-pressed", String(other === button));
    }
    load(button.dataset.hours);
  });
}
if (document.readyState === "complete") load(24); else window.addEventListener("load", () => load(24));
