// A run's metric charts: every metric the run sends, grouped by what it measures, drawn with Plotly.
//
// Points arrive in bursts (the first load from SQL, then Server-Sent Events); they are buffered and drawn
// every FLUSH_MS with one Plotly.extendTraces per chart (one call costs ~20 ms). A point whose step is not
// after the last one of its series is dropped, so a replay after a reconnect never draws a duplicate.
// Persisted points carry only their step: epoch and wall time come from anchors (step -> epoch at each
// epoch's end, step -> time from system and per-epoch points), extended live by each event.
const FLUSH_MS = 250;
const WEBGL_AFTER = 5000;
const EPOCH_MEAN = "train_loss (epoch mean)";

const GROUPS = [
  { id: "loss", title: "Loss", test: (name) => /loss/.test(name) },
  { id: "accuracy", title: "Accuracy and F1", test: (name) => /(accuracy|f1)$/.test(name) },
  { id: "regression", title: "Regression error", test: (name) => /_(mae|rmse)$/.test(name) },
  { id: "r2", title: "R²", test: (name) => /_r2$/.test(name) },
  { id: "lr", title: "Learning rate", test: (name) => name === "lr" },
  { id: "throughput", title: "Throughput (samples/s)", test: (name) => name === "samples_per_s" },
  { id: "utilisation", title: "CPU and GPU utilisation (%)", test: (name) => name === "cpu_percent" || /^gpu\d+_util$/.test(name) },
  { id: "memory", title: "Memory (MB)", test: (name) => name === "ram_mb" || /^gpu\d+_mem_mb$/.test(name) },
  { id: "other", title: "Other metrics", test: () => true },
];
const AXIS_TITLES = { step: "step", epoch: "epoch", time: "wall time (s since the first point)" };

// Per-epoch and final metrics are few points each: drawn with markers.
function sparse(name) { return /^(val|test)_/.test(name) || name === EPOCH_MEAN || /^train_(accuracy|mae)$/.test(name); }

function interpolate(anchors, step, slope) {
  if (!anchors.length) return null;
  let low = 0, high = anchors.length - 1;
  if (step <= anchors[0][0]) return anchors[0][1] - (anchors[0][0] - step) * (slope ?? 0);
  if (step >= anchors[high][0]) {
    const [lastStep, lastValue] = anchors[high];
    const tail = slope ?? (high > 0 ? (lastValue - anchors[high - 1][1]) / Math.max(lastStep - anchors[high - 1][0], 1) : 0);
    return lastValue + (step - lastStep) * tail;
  }
  while (high - low > 1) {
    const middle = (low + high) >> 1;
    if (anchors[middle][0] <= step) low = middle; else high = middle;
  }
  const [stepA, valueA] = anchors[low], [stepB, valueB] = anchors[high];
  return valueA + (valueB - valueA) * (step - stepA) / Math.max(stepB - stepA, 1);
}

class Series {
  constructor(name) {
    this.name = name;
    this.steps = [];
    this.values = [];
    this.drawn = 0; // how many points the chart already has
    this.chart = null;
    this.webgl = false;
  }
  get lastStep() { return this.steps.length ? this.steps[this.steps.length - 1] : -Infinity; }
}

export class MetricCharts {
  constructor(container, { anchors, stepsPerEpoch, onEmpty }) {
    this.container = container;
    this.series = new Map();
    this.charts = new Map();
    this.epochAnchors = [[0, 0], ...(anchors.epoch || [])];
    this.timeAnchors = (anchors.time || []).map(([step, time]) => [step, time]);
    this.epochEndSteps = new Set((anchors.epoch || []).map(([step]) => step));
    this.stepsPerEpoch = stepsPerEpoch || null;
    this.axis = "step";
    this.smoothing = 0;
    this.logScale = false;
    this.dirty = new Set();
    this.extensions = 0; // extendTraces calls so far: how often the charts grew live
    this.onEmpty = onEmpty;
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
  }

  // --- receiving ---------------------------------------------------------------------------------

  /** The first load: {name: {step: [...], value: [...]}} from GET /api/runs/{id}/metrics/. */
  load(seriesByName) {
    for (const [name, { step, value }] of Object.entries(seriesByName)) {
      for (let index = 0; index < step.length; index += 1) this.add(name, step[index], value[index]);
    }
    const meanSteps = new Set(this.series.get("val_loss")?.steps || []);
    const train = this.series.get("train_loss");
    if (train && meanSteps.size) {
      train.steps.forEach((step, index) => { if (meanSteps.has(step)) this.add(EPOCH_MEAN, step, train.values[index]); });
    }
    this.redraw();
  }

  /** One `metrics` event: {step, epoch, time, values}. */
  receive(event) {
    const { step, epoch, time, values } = event;
    if (time && (!this.timeAnchors.length || step > this.timeAnchors[this.timeAnchors.length - 1][0])) this.timeAnchors.push([step, time]);
    const epochEnd = "val_loss" in values || "train_accuracy" in values || "train_mae" in values;
    if (epochEnd && epoch && step > this.epochAnchors[this.epochAnchors.length - 1][0]) {
      this.epochAnchors.push([step, epoch]);
      this.epochEndSteps.add(step);
    }
    for (const [name, value] of Object.entries(values)) this.add(name, step, value);
    if (epochEnd && "train_loss" in values) this.add(EPOCH_MEAN, step, values.train_loss);
  }

  setStepsPerEpoch(steps) { if (steps > 0) this.stepsPerEpoch = steps; }

  add(name, step, value) {
    if (typeof value !== "number" || !Number.isFinite(value)) return;
    let series = this.series.get(name);
    if (!series) { series = new Series(name); this.series.set(name, series); }
    if (!(step > series.lastStep)) return; // already drawn (a replay after a reconnect, or the SQL overlap)
    series.steps.push(step);
    series.values.push(value);
    this.dirty.add(series);
  }

  // --- axes and smoothing -------------------------------------------------------------------------

  x(step) {
    if (this.axis === "epoch") {
      // Exact between epoch ends; beyond the last one, at the run's steps per epoch.
      const [lastStep, lastEpoch] = this.epochAnchors[this.epochAnchors.length - 1];
      const slope = lastStep > 0 ? lastEpoch / lastStep : (this.stepsPerEpoch ? 1 / this.stepsPerEpoch : null);
      return slope === null ? null : interpolate(this.epochAnchors, step, slope);
    }
    if (this.axis === "time") {
      const time = interpolate(this.timeAnchors, step);
      return time === null ? null : time - this.timeAnchors[0][1];
    }
    return step;
  }

  smoothed(values, state) {
    if (!this.smoothing) return values;
    // TensorBoard's exponential moving average, debiased so that the first points are not pulled to 0.
    return values.map((value) => {
      state.average = state.average * this.smoothing + (1 - this.smoothing) * value;
      state.count += 1;
      return state.average / (1 - Math.pow(this.smoothing, state.count));
    });
  }

  setView({ axis, smoothing, logScale }) {
    if (axis !== undefined) this.axis = axis;
    if (smoothing !== undefined) this.smoothing = smoothing;
    if (logScale !== undefined) this.logScale = logScale;
    this.redraw();
  }

  // --- drawing -----------------------------------------------------------------------------------

  chartFor(series) {
    if (series.chart) return series.chart;
    const group = GROUPS.find((candidate) => candidate.test(series.name));
    let chart = this.charts.get(group.id);
    if (!chart) {
      const card = document.createElement("div");
      card.className = "chart-card";
      card.dataset.group = group.id;
      const title = document.createElement("h3");
      title.textContent = group.title;
      const plot = document.createElement("div");
      plot.className = "run-chart";
      plot.id = `chart-${group.id}`;
      plot.dataset.testid = `chart-${group.id}`;
      card.append(title, plot);
      const order = GROUPS.map((candidate) => candidate.id);
      const next = [...this.container.children].find((child) => order.indexOf(child.dataset.group) > order.indexOf(group.id));
      this.container.insertBefore(card, next || null);
      chart = { group, element: plot, series: [], plotted: false };
      this.charts.set(group.id, chart);
      this.onEmpty?.(false);
    }
    series.chart = chart;
    chart.series.push(series);
    return chart;
  }

  trace(series, from = 0) {
    if (from === 0 || !series.smoothState) series.smoothState = { average: 0, count: 0 };
    const state = series.smoothState;
    const xs = [], ys = [];
    const values = this.smoothed(series.values.slice(from), state);
    for (let index = from; index < series.steps.length; index += 1) {
      xs.push(this.x(series.steps[index]));
      ys.push(values[index - from]);
    }
    return { xs, ys };
  }

  layout(chart) {
    // Rates, utilisation and throughput read best from zero (a constant rate otherwise fills the chart).
    const fromZero = ["lr", "utilisation", "throughput"].includes(chart.group.id);
    return {
      height: 270, margin: { t: 8, r: 12, b: 42, l: 56 }, showlegend: true,
      legend: { orientation: "h", y: -0.25, font: { size: 11 } },
      xaxis: { title: { text: AXIS_TITLES[this.axis], font: { size: 11 } }, zeroline: false },
      yaxis: { type: this.logScale ? "log" : "linear", zeroline: false, exponentformat: "e",
        ...(fromZero && !this.logScale ? { rangemode: "tozero" } : {}) },
      uirevision: `${this.axis}-${this.logScale}`, font: { family: "system-ui, sans-serif", size: 12 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    };
  }

  redraw() {
    for (const series of this.series.values()) this.chartFor(series);
    for (const chart of this.charts.values()) {
      const traces = chart.series.map((series) => {
        const { xs, ys } = this.trace(series);
        series.drawn = series.steps.length;
        series.webgl = series.steps.length > WEBGL_AFTER;
        return { type: series.webgl ? "scattergl" : "scatter", mode: sparse(series.name) ? "lines+markers" : "lines",
          name: series.name, x: xs, y: ys, line: { width: sparse(series.name) ? 2 : 1.5 }, marker: { size: 5 } };
      });
      window.Plotly.react(chart.element, traces, this.layout(chart), { displaylogo: false, responsive: true });
      chart.plotted = true;
      this.count(chart);
    }
    this.dirty.clear();
  }

  flush() {
    if (!this.dirty.size || !window.Plotly) return;
    const byChart = new Map();
    for (const series of this.dirty) {
      const chart = this.chartFor(series);
      if (!byChart.has(chart)) byChart.set(chart, []);
      byChart.get(chart).push(series);
    }
    this.dirty.clear();
    for (const [chart, seriesList] of byChart) {
      if (!chart.plotted || seriesList.some((series) => chart.series.indexOf(series) >= chart.element.data?.length)) {
        this.redraw(); // a new chart or a new series: draw everything once, then extend again
        return;
      }
      const indices = [], xs = [], ys = [];
      for (const series of seriesList) {
        const { xs: newX, ys: newY } = this.trace(series, series.drawn);
        series.drawn = series.steps.length;
        indices.push(chart.series.indexOf(series));
        xs.push(newX);
        ys.push(newY);
      }
      window.Plotly.extendTraces(chart.element, { x: xs, y: ys }, indices);
      this.extensions += 1;
      const toWebgl = seriesList.filter((series) => !series.webgl && series.steps.length > WEBGL_AFTER);
      if (toWebgl.length) {
        toWebgl.forEach((series) => { series.webgl = true; });
        window.Plotly.restyle(chart.element, { type: "scattergl" }, toWebgl.map((series) => chart.series.indexOf(series)));
      }
      this.count(chart);
    }
  }

  count(chart) {
    chart.element.dataset.points = String(chart.series.reduce((total, series) => total + series.drawn, 0));
  }

  get points() { return [...this.series.values()].reduce((total, series) => total + series.steps.length, 0); }
}
