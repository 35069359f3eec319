// A sweep's charts: the intermediate values drawn here from the trials (one line per trial, pruned ones
// dashed with a cross where they stopped), and Optuna's own figures from /api/sweeps/{id}/charts/{name}/,
// one tab at a time, fetched again only when the number of finished trials changes.
import { apiFetch } from "./csrf.js";

const CONFIG = { displaylogo: false, responsive: true };
const CHART_HELP = {
  history: "Each finished trial's value in the order they ran, and the best so far.",
  importances: "How much each parameter explains the objective (fANOVA over the finished trials).",
  parallel: "Each trial is a line through its parameter values to its objective value.",
  contour: "The objective over pairs of parameters, interpolated between trials.",
  slice: "The objective against each parameter on its own.",
  edf: "Empirical distribution: the share of trials at or below each objective value.",
  timeline: "When each trial ran, and how it ended.",
  pareto: "Trials no other trial beats on every objective (the trade-offs).",
};

function plotly() { return window.Plotly; }

/** The intermediate-values chart: a Plotly.react of every trial's epochs whenever they change. */
export class IntermediateChart {
  constructor(element, emptyMessage, { metric }) {
    this.element = element;
    this.emptyMessage = emptyMessage;
    this.metric = metric;
    this.signature = "";
  }

  update(trials) {
    const reported = trials.filter((trial) => Object.keys(trial.intermediate || {}).length);
    const signature = JSON.stringify(reported.map((trial) => [trial.number, trial.state, trial.intermediate]));
    if (signature === this.signature || !plotly()) return;
    this.signature = signature;
    this.emptyMessage.hidden = reported.length > 0;
    if (!reported.length) return;
    const traces = reported.map((trial) => {
      const steps = Object.keys(trial.intermediate).map(Number).sort((a, b) => a - b);
      const pruned = trial.state === "pruned";
      const last = steps.length - 1;
      return {
        type: "scatter", mode: "lines+markers", name: `trial ${trial.number}`,
        x: steps, y: steps.map((step) => trial.intermediate[String(step)]),
        line: { dash: pruned ? "dash" : "solid", width: pruned ? 1.5 : 2 },
        marker: { symbol: steps.map((_, index) => (pruned && index === last ? "x" : "circle")),
          size: steps.map((_, index) => (pruned && index === last ? 12 : 6)) },
        hovertemplate: `trial ${trial.number} (${trial.state})<br>epoch %{x}: %{y:.4g}<extra></extra>`,
      };
    });
    plotly().react(this.element, traces, {
      margin: { t: 10, r: 10, b: 45, l: 60 }, height: 360, hovermode: "closest",
      xaxis: { title: { text: "epoch" }, dtick: 1 }, yaxis: { title: { text: this.metric } },
      legend: { orientation: "v" },
    }, CONFIG);
    this.element.dataset.traces = String(traces.length);
    this.element.dataset.pruned = String(reported.filter((trial) => trial.state === "pruned").length);
  }
}

/** Optuna's charts in tabs. */
export class OptunaCharts {
  constructor({ sweepId, tabs, plot, empty, help }) {
    this.sweepId = sweepId;
    this.tabs = tabs;
    this.plot = plot;
    this.empty = empty;
    this.help = help;
    this.active = tabs.querySelector(".tab.active")?.dataset.chart || "history";
    this.finished = null; // the finished-trial count the figures were fetched for
    this.cache = new Map(); // name -> {finished, figure}
    this.pending = null;
    tabs.addEventListener("click", (event) => {
      const tab = event.target.closest(".tab");
      if (tab) this.show(tab.dataset.chart);
    });
  }

  /** Called with each poll: refetch the visible chart when the number of finished trials changed. */
  update(finished) {
    if (finished === this.finished) return;
    this.finished = finished;
    this.load(this.active);
  }

  show(name) {
    this.active = name;
    for (const tab of this.tabs.querySelectorAll(".tab")) {
      const on = tab.dataset.chart === name;
      tab.classList.toggle("active", on);
      tab.setAttribute("aria-selected", on ? "true" : "false");
    }
    this.load(name);
  }

  async load(name) {
    this.help.textContent = CHART_HELP[name] || "";
    const cached = this.cache.get(name);
    if (cached && cached.finished === this.finished) { this.draw(name, cached.figure); return; }
    const finished = this.finished;
    const request = (this.pending = `${name}:${finished}`);
    let figure;
    try {
      const response = await apiFetch(`/api/sweeps/${this.sweepId}/charts/${name}/`);
      figure = await response.json();
      if (!response.ok) figure = { empty: Object.values(figure).flat().join(" ") || `HTTP ${response.status}` };
    } catch (error) {
      figure = { empty: `Could not load the chart: ${error.message}` };
    }
    this.cache.set(name, { finished, figure });
    if (this.pending === request && this.active === name) this.draw(name, figure);
  }

  draw(name, figure) {
    const empty = "empty" in figure;
    this.empty.hidden = !empty;
    this.empty.textContent = empty ? figure.empty : "";
    this.plot.hidden = empty;
    this.plot.dataset.chart = name;
    this.plot.dataset.drawn = empty ? "" : name;
    if (empty || !plotly()) return;
    const layout = { ...(figure.layout || {}), autosize: true, height: 440 };
    delete layout.width;
    plotly().react(this.plot, figure.data || [], layout, CONFIG);
  }
}
