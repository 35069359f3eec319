// The model designer: a preset or an ordered list of layers, checked live against a dataset's shapes
// (POST /api/models/validate/, debounced) and saved with POST /api/models/ (the same name again = next version).
import { apiFetch } from "./csrf.js";

const CHECK_DELAY_MS = 300;
const dataElement = document.getElementById("designer-data");
const form = document.getElementById("designer-form");

function count(number) { return Number(number || 0).toLocaleString("en-US"); }
function compact(number) {
  const value = Number(number || 0);
  if (value >= 1e9) return `${(value / 1e9).toFixed(2)} G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)} K`;
  return String(value);
}
function shapeText(shape) { return (shape || []).join(" × "); }
function capitalise(text) { return text ? text[0].toUpperCase() + text.slice(1) : ""; }
function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

// A parameter typed in a text box: "" = default/inferred, "3,3" or "[3, 3]" a pair, "same", numbers, booleans.
export function parseValue(text) {
  const trimmed = String(text).trim();
  if (trimmed === "") return undefined;
  if (/^(true|false)$/i.test(trimmed)) return trimmed.toLowerCase() === "true";
  const parts = trimmed.replace(/^\[|\]$/g, "").split(/[\s,x×]+/).filter(Boolean);
  if (parts.length === 2 && parts.every((part) => part !== "" && isFinite(Number(part)))) return parts.map(Number);
  if (isFinite(Number(trimmed))) return Number(trimmed);
  return trimmed;
}
function formatValue(value) {
  if (value === undefined || value === null) return "";
  return Array.isArray(value) ? value.join(",") : String(value);
}

// Starting points a newcomer can train at once: PyTorch's CIFAR-10 tutorial CNN (padding 2 below 16 px so that
// only the pools shrink the image, as the small_cnn preset does), or a two-layer MLP.
function outputsOf(dataset) { return dataset && dataset.num_classes > 1 ? dataset.num_classes : 1; }
function starterCnn(dataset) {
  const [, height, width] = dataset.input_shape;
  const padding = Math.min(height, width) < 16 ? 2 : 0;
  return [
    { type: "Conv2d", params: { out_channels: 6, kernel_size: 5, padding } }, { type: "ReLU", params: {} },
    { type: "MaxPool2d", params: { kernel_size: 2 } },
    { type: "Conv2d", params: { out_channels: 16, kernel_size: 5, padding } }, { type: "ReLU", params: {} },
    { type: "MaxPool2d", params: { kernel_size: 2 } }, { type: "Flatten", params: {} },
    { type: "Linear", params: { out_features: 120 } }, { type: "ReLU", params: {} },
    { type: "Linear", params: { out_features: 84 } }, { type: "ReLU", params: {} },
    { type: "Linear", params: { out_features: outputsOf(dataset) } },
  ];
}
function starterMlp(dataset) {
  return [
    { type: "Flatten", params: {} }, { type: "Linear", params: { out_features: 128 } }, { type: "ReLU", params: {} },
    { type: "Linear", params: { out_features: 64 } }, { type: "ReLU", params: {} },
    { type: "Linear", params: { out_features: outputsOf(dataset) } },
  ];
}
function starterFor(dataset) {
  return dataset && dataset.input_shape.length === 3 ? starterCnn(dataset) : starterMlp(dataset);
}

class Designer {
  constructor(data) {
    this.data = data;
    this.catalogue = data.layers;
    this.list = document.getElementById("layer-list");
    this.datasetSelect = document.getElementById("design-dataset");
    this.presetSelect = document.getElementById("design-preset");
    this.nameInput = document.getElementById("design-name");
    this.layers = [];
    this.touched = false;
    this.suggestedName = "";
    this.checkTimer = null;
    this.checkNumber = 0;
    this.lastAnswer = null;
  }

  get dataset() { return this.data.datasets.find((item) => String(item.id) === this.datasetSelect.value); }
  get mode() { return form.querySelector("input[name=mode]:checked").value; }
  set mode(value) { form.querySelector(`input[name=mode][value=${value}]`).checked = true; this.showMode(); }

  start() {
    const start = this.data.start;
    if (start) {
      this.nameInput.value = start.name;
      if (start.spec.preset) { this.presetSelect.value = start.spec.preset; this.mode = "preset"; }
      else this.layers = (start.spec.layers || []).map(({ type, ...params }) => ({ type, params }));
      this.touched = true;
    } else {
      this.resetStarter();
    }
    this.bind();
    this.showMode();
    this.render();
    this.scheduleCheck(0);
  }

  resetStarter() {
    const dataset = this.dataset;
    this.layers = starterFor(dataset);
    this.touched = false;
    this.presetSelect.value = dataset && dataset.input_shape.length === 3 ? "small_cnn" : "mlp";
    const suggestion = dataset ? `${dataset.label.split(" ")[0]}-${dataset.input_shape.length === 3 ? "cnn" : "mlp"}` : "";
    if (!this.nameInput.value || this.nameInput.value === this.suggestedName) this.nameInput.value = suggestion;
    this.suggestedName = suggestion;
  }

  bind() {
    this.datasetSelect.addEventListener("change", () => {
      if (!this.touched) { this.resetStarter(); this.render(); }
      this.scheduleCheck();
    });
    form.querySelectorAll("input[name=mode]").forEach((radio) => radio.addEventListener("change", () => {
      this.showMode(); this.scheduleCheck(0);
    }));
    this.presetSelect.addEventListener("change", () => this.scheduleCheck(0));
    document.getElementById("add-layer").addEventListener("click", () => {
      const type = document.getElementById("add-layer-type").value;
      this.layers.push({ type, params: {} });
      this.changed(true);
      this.list.lastElementChild?.querySelector("input")?.focus();
    });
    document.getElementById("starter-cnn").addEventListener("click", () => {
      this.layers = this.dataset && this.dataset.input_shape.length === 3 ? starterCnn(this.dataset) : starterMlp(this.dataset);
      this.changed(true);
    });
    document.getElementById("starter-mlp").addEventListener("click", () => { this.layers = starterMlp(this.dataset); this.changed(true); });
    document.getElementById("layers-clear").addEventListener("click", () => { this.layers = []; this.changed(true); });
    form.addEventListener("submit", (event) => { event.preventDefault(); this.save(); });
  }

  showMode() {
    const preset = this.mode === "preset";
    document.getElementById("preset-panel").hidden = !preset;
    document.getElementById("layers-panel").hidden = preset;
    form.querySelector(".designer-grid").classList.toggle("preset-mode", preset);
  }

  changed(structure) {
    this.touched = true;
    if (structure) this.render();
    this.scheduleCheck();
  }

  spec() {
    if (this.mode === "preset") return { preset: this.presetSelect.value };
    return {
      layers: this.layers.map(({ type, params }) => {
        const layer = { type };
        for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== "") layer[name] = value;
        return layer;
      }),
    };
  }

  // --- the builder's rows ---------------------------------------------------------------------------

  render() {
    this.list.replaceChildren(...this.layers.map((layer, index) => this.row(layer, index)));
    if (!this.layers.length) {
      this.list.append(element("li", { class: "layer-empty muted", text: "No layers yet: add one below, or start from the tutorial CNN." }));
    }
    this.markError(this.lastAnswer);
  }

  row(layer, index) {
    const typeSelect = element("select", { class: "layer-type", "aria-label": `Layer ${index + 1} type`, "data-testid": "layer-type" },
      ...Object.keys(this.catalogue).map((kind) => element("option", { value: kind, text: kind, selected: kind === layer.type })));
    typeSelect.addEventListener("change", () => {
      layer.type = typeSelect.value;
      const known = new Set(this.catalogue[layer.type].map((parameter) => parameter.name));
      layer.params = Object.fromEntries(Object.entries(layer.params).filter(([name]) => known.has(name)));
      this.changed(true);
    });
    const params = element("div", { class: "layer-params" },
      ...(this.catalogue[layer.type] || []).map((parameter) => this.parameterInput(layer, parameter)));
    const button = (label, title, action, disabled = false) => {
      const node = element("button", { type: "button", class: "icon-button", title, "aria-label": `${title} (layer ${index + 1})`, text: label, disabled });
      node.addEventListener("click", action);
      return node;
    };
    const actions = element("div", { class: "layer-actions" },
      button("↑", "Move up", () => this.move(index, -1), index === 0),
      button("↓", "Move down", () => this.move(index, 1), index === this.layers.length - 1),
      button("✕", "Remove", () => { this.layers.splice(index, 1); this.changed(true); }));
    return element("li", { class: "layer-row", "data-index": String(index), "data-testid": "layer-row" },
      element("span", { class: "layer-number", text: String(index + 1) }), typeSelect, params, actions);
  }

  parameterInput(layer, parameter) {
    const current = layer.params[parameter.name];
    if (typeof parameter.default === "boolean") {
      const box = element("input", { type: "checkbox", name: `param-${parameter.name}`, checked: current ?? parameter.default });
      box.addEventListener("change", () => { layer.params[parameter.name] = box.checked; this.changed(false); });
      return element("label", { class: "param check" }, box, ` ${parameter.name}`);
    }
    const hint = parameter.required ? "required" : parameter.default === null ? "auto" : formatValue(parameter.default);
    const input = element("input", { type: "text", name: `param-${parameter.name}`, value: formatValue(current), placeholder: hint,
      size: "6", class: parameter.required ? "required" : "", "aria-label": `${layer.type} ${parameter.name}` });
    input.addEventListener("input", () => { layer.params[parameter.name] = parseValue(input.value); this.changed(false); });
    return element("label", { class: "param" }, element("span", { text: parameter.name }), input);
  }

  move(index, offset) {
    const [layer] = this.layers.splice(index, 1);
    this.layers.splice(index + offset, 0, layer);
    this.changed(true);
  }

  // --- the live check ------------------------------------------------------------------------------

  scheduleCheck(delay = CHECK_DELAY_MS) {
    clearTimeout(this.checkTimer);
    this.checkTimer = setTimeout(() => this.check(), delay);
  }

  async check() {
    const number = ++this.checkNumber;
    const status = document.getElementById("check-status");
    if (this.mode === "layers" && !this.layers.length) {
      this.show(null);
      status.innerHTML = '<span class="muted">Add layers to see their output shapes.</span>';
      return;
    }
    status.innerHTML = '<span class="muted">Checking…</span>';
    let response, body;
    try {
      response = await apiFetch("/api/models/validate/", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ spec: this.spec(), dataset: Number(this.datasetSelect.value) }),
      });
      body = await response.json();
    } catch (error) {
      if (number === this.checkNumber) this.show({ ok: false, error: `The check did not answer (${error.message}); it will retry on your next change.`, layers: [] });
      return;
    }
    if (number !== this.checkNumber) return; // a newer check is on its way
    if (!response.ok) {
      const message = Object.values(body).flat().join(" ");
      this.show({ ok: false, error: message || `The check failed (HTTP ${response.status}).`, layers: [] });
      return;
    }
    this.show(body);
  }

  show(answer) {
    this.lastAnswer = answer;
    const status = document.getElementById("check-status");
    const errorBox = document.getElementById("check-error");
    const table = document.getElementById("shape-table");
    const body = table.tBodies[0];
    const dataset = this.dataset;
    body.replaceChildren();
    table.tFoot.replaceChildren();
    document.getElementById("check-warnings").replaceChildren(
      ...((answer && answer.warnings) || []).map((warning) => element("li", {}, element("span", { class: "badge draining", text: "warning" }), ` ${capitalise(warning)}`)));
    this.markError(answer);
    if (!answer) { errorBox.hidden = true; return; }
    if (dataset) {
      body.append(element("tr", { class: "input-row" }, element("td", { text: "" }), element("td", { text: "input" }),
        element("td", { text: shapeText(dataset.input_shape) }), element("td", { class: "num", text: "" }), element("td", { class: "num", text: "" })));
    }
    answer.layers.forEach((layer, index) => {
      body.append(element("tr", { "data-layer": String(index + 1) },
        element("td", { text: String(index + 1) }),
        layer.name ? element("td", { class: "layer-cell" }, `${layer.name} `, element("span", { class: "muted small", text: layer.type }))
          : element("td", { text: layer.type }),
        element("td", { text: shapeText(layer.output_shape) }),
        element("td", { class: "num", text: count(layer.parameters) }),
        element("td", { class: "num", title: count(layer.macs), text: compact(layer.macs) })));
    });
    if (!answer.ok && answer.error_layer) {
      const layer = this.mode === "layers" ? this.layers[answer.error_layer - 1] : null;
      body.append(element("tr", { class: "error-row", "data-layer": String(answer.error_layer), "data-testid": "error-row" },
        element("td", { text: String(answer.error_layer) }), element("td", { text: layer ? layer.type : "" }),
        element("td", { colspan: "3", text: "does not fit" })));
    }
    if (answer.ok) {
      table.tFoot.append(element("tr", {}, element("td", { text: "" }), element("td", { text: "Total" }), element("td", { text: "" }),
        element("td", { class: "num", "data-testid": "total-parameters", text: count(answer.parameters) }),
        element("td", { class: "num", title: count(answer.macs), text: compact(answer.macs) })));
      status.replaceChildren(element("span", { class: "badge ok", text: "fits" }),
        ` ${dataset ? dataset.label : "the dataset"}: ${count(answer.parameters)} parameters, ${compact(answer.macs)} multiply-adds per sample`);
      errorBox.hidden = true;
    } else {
      status.replaceChildren(element("span", { class: "badge error", text: "does not fit" }),
        answer.error_layer ? ` layer ${answer.error_layer} needs a change` : "");
      errorBox.textContent = capitalise(answer.error || "The design does not fit this dataset.");
      errorBox.hidden = false;
    }
  }

  markError(answer) {
    this.list.querySelectorAll(".layer-row").forEach((row) => {
      const faulty = answer && !answer.ok && Number(row.dataset.index) + 1 === answer.error_layer;
      row.classList.toggle("has-error", Boolean(faulty));
    });
  }

  // --- saving --------------------------------------------------------------------------------------

  async save() {
    const errors = document.getElementById("save-errors");
    const result = document.getElementById("save-result");
    errors.replaceChildren();
    result.replaceChildren();
    const name = this.nameInput.value.trim();
    if (!name) { errors.append(element("div", { class: "alert error", text: "Give the design a name, e.g. 'digits-cnn'." })); this.nameInput.focus(); return; }
    if (this.lastAnswer && !this.lastAnswer.ok) {
      errors.append(element("div", { class: "alert error", text: "Fix the design before saving: it must fit the dataset it is checked against." }));
      return;
    }
    const response = await apiFetch("/api/models/", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ project: this.data.project, name, spec: this.spec() }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.status !== 201) {
      const messages = Object.entries(body).flatMap(([field, value]) => (Array.isArray(value) ? value : [value])
        .map((message) => (field === "detail" || field === "non_field_errors" ? message : `${field}: ${message}`)));
      errors.append(...messages.map((message) => element("div", { class: "alert error", text: message })));
      return;
    }
    result.replaceChildren(element("span", { class: "badge ok", text: "saved" }), ` ${body.name} v${body.version} · `,
      element("a", { href: `/models/${body.id}/`, text: "open" }), " · ",
      element("a", { href: `/runs/new/?model=design:${body.id}&dataset=${this.datasetSelect.value}`, "data-testid": "train-saved", text: "train it" }));
    window.htmx?.ajax("GET", window.location.pathname, { target: "#designs-card", select: "#designs-card", swap: "outerHTML" });
  }
}

if (dataElement && form) new Designer(JSON.parse(dataElement.textContent)).start();
