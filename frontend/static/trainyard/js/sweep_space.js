// The search-space builder of the new-sweep form: one row per parameter (name, type, low, high, log, step,
// choices), with the server's checks repeated as the user types so that most mistakes never leave the page.
// The server checks again (trainer_app/studies.py normalise_search_space): its message is the last word.
import { showConcept } from "./explain.js";

const TYPES = ["float", "int", "categorical"];
const NESTED = ["schedule.", "augmentation."];
export const MODEL_PREFIX = "model.";

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of [].concat(children)) node.append(child);
  return node;
}

function cell(child) { return element("td", {}, child); }

/** "adam, sgd" -> ["adam", "sgd"]; "32, 64" -> [32, 64]; true/false/null as JSON. */
export function parseChoices(text) {
  return text.split(",").map((part) => part.trim()).filter((part) => part !== "").map((part) => {
    if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(part)) return Number(part);
    if (["true", "false", "null"].includes(part.toLowerCase())) return JSON.parse(part.toLowerCase());
    return part;
  });
}

function numberOrNull(text) {
  const trimmed = String(text).trim();
  if (trimmed === "") return null;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : NaN;
}

export class SearchSpace {
  /** table: the <table>; names: allowed non-model names; modelOptions(): the chosen design's model.* names
   * (null when the design is a list of layers); onChange(): called after any edit; conceptOf(name): the slug
   * of the concept that explains a parameter (its ⓘ beside the name). */
  constructor(table, { names, modelOptions, onChange, conceptOf }) {
    this.table = table;
    this.names = new Set(names);
    this.modelOptions = modelOptions;
    this.onChange = onChange || (() => {});
    this.conceptOf = conceptOf || (() => null);
    this.rows = [];
  }

  add(values = {}) {
    const spec = { name: "", type: "float", low: "", high: "", log: false, step: "", choices: "", ...values };
    const inputs = {
      name: element("input", { type: "text", class: "param-name", list: "parameter-names", value: spec.name,
        placeholder: "e.g. lr", "aria-label": "parameter name", "data-testid": "param-name" }),
      type: element("select", { class: "param-type", "aria-label": "type", "data-testid": "param-type" },
        TYPES.map((type) => element("option", { value: type, selected: type === spec.type }, type))),
      low: element("input", { type: "number", step: "any", class: "param-low", value: spec.low, "aria-label": "low",
        "data-testid": "param-low" }),
      high: element("input", { type: "number", step: "any", class: "param-high", value: spec.high,
        "aria-label": "high", "data-testid": "param-high" }),
      log: element("input", { type: "checkbox", class: "param-log", checked: Boolean(spec.log), "aria-label": "log scale",
        "data-testid": "param-log" }),
      step: element("input", { type: "number", step: "any", min: "0", class: "param-step", value: spec.step,
        placeholder: "any", "aria-label": "step", "data-testid": "param-step" }),
      choices: element("input", { type: "text", class: "param-choices", value: spec.choices,
        placeholder: "adam, sgd", "aria-label": "choices", "data-testid": "param-choices" }),
    };
    const remove = element("button", { type: "button", class: "icon-button", title: "Remove this parameter",
      "aria-label": "Remove this parameter", "data-testid": "param-remove" }, "×");
    const message = element("td", { colspan: "8", class: "row-message" });
    const about = element("span", { class: "param-explain", "data-testid": "param-explain" });
    const body = element("tbody", { class: "space-param", "data-testid": "space-row" }, [
      element("tr", {}, [element("td", { class: "nowrap" }, [inputs.name, about]), cell(inputs.type), cell(inputs.low), cell(inputs.high),
        element("td", { class: "center" }, inputs.log), cell(inputs.step), cell(inputs.choices), cell(remove)]),
      element("tr", { class: "param-message" }, message),
    ]);
    const row = { body, inputs, message, about, serverError: "" };
    remove.addEventListener("click", () => {
      this.rows = this.rows.filter((other) => other !== row);
      body.remove();
      this.changed();
    });
    body.addEventListener("input", () => { row.serverError = ""; this.changed(); });
    body.addEventListener("change", () => this.changed());
    this.rows.push(row);
    this.table.append(body);
    this.changed();
    return row;
  }

  changed() {
    this.check();
    this.onChange();
  }

  /** The space as POST /api/sweeps/ takes it. */
  value() {
    const space = {};
    for (const row of this.rows) {
      const name = row.inputs.name.value.trim();
      if (!name) continue;
      space[name] = this.spec(row);
    }
    return space;
  }

  spec(row) {
    const type = row.inputs.type.value;
    if (type === "categorical") return { type, choices: parseChoices(row.inputs.choices.value) };
    const spec = { type, low: numberOrNull(row.inputs.low.value), high: numberOrNull(row.inputs.high.value),
      log: row.inputs.log.checked };
    const step = numberOrNull(row.inputs.step.value);
    if (step !== null) spec.step = step;
    return spec;
  }

  /** Each row's errors and warnings, drawn under it; true when nothing stops the form. */
  check() {
    const seen = new Set();
    let ok = true;
    for (const row of this.rows) {
      const type = row.inputs.type.value;
      const numeric = type !== "categorical";
      const concept = this.conceptOf(row.inputs.name.value.trim());
      if (row.about.dataset.concept !== (concept || "")) showConcept(row.about, concept);
      for (const key of ["low", "high", "log", "step"]) row.inputs[key].disabled = !numeric;
      row.inputs.choices.disabled = numeric;
      const { errors, warnings } = this.judge(row, seen);
      if (row.serverError) errors.push(row.serverError);
      row.body.classList.toggle("has-error", errors.length > 0);
      row.body.classList.toggle("has-warning", !errors.length && warnings.length > 0);
      row.message.replaceChildren(element("div", {}, [
        ...errors.map((text) => element("span", { class: "field-error" }, text)),
        ...warnings.map((text) => element("span", { class: "field-warning" }, text))]));
      row.message.parentElement.hidden = !errors.length && !warnings.length;
      if (errors.length) ok = false;
    }
    return ok;
  }

  judge(row, seen) {
    const errors = [], warnings = [];
    const name = row.inputs.name.value.trim();
    if (!name) {
      errors.push("Name the parameter (e.g. lr, batch_size, model.depth).");
      return { errors, warnings };
    }
    if (seen.has(name)) errors.push(`${name} is listed twice.`);
    seen.add(name);
    this.judgeName(name, errors);
    const spec = this.spec(row);
    if (spec.type === "categorical") {
      const choices = spec.choices;
      if (!choices.length) errors.push(`${name}: list the choices, separated by commas.`);
      else if (new Set(choices.map((choice) => JSON.stringify(choice))).size !== choices.length) {
        errors.push(`${name}: a choice is listed twice.`);
      } else if (choices.length === 1) {
        warnings.push(`${name} has one choice (${choices[0]}): it is fixed, not searched. Move it to the base settings or add choices.`);
      }
      return { errors, warnings };
    }
    const { low, high, log, step } = spec;
    for (const [key, value] of [["low", low], ["high", high]]) {
      if (value === null || Number.isNaN(value)) errors.push(`${name}: ${key} must be a number.`);
    }
    if (errors.length) return { errors, warnings };
    if (spec.type === "int" && (!Number.isInteger(low) || !Number.isInteger(high))) {
      errors.push(`${name}: an int parameter needs whole-number bounds (got ${low}..${high}).`);
    }
    if (low > high) errors.push(`${name}: low (${low}) is greater than high (${high}); swap them.`);
    if (log && low <= 0) errors.push(`${name}: a log scale needs low > 0 (got ${low}); use e.g. 1e-5, or turn log off.`);
    if (step !== undefined) {
      if (Number.isNaN(step) || step <= 0) errors.push(`${name}: step must be greater than 0.`);
      else if (log && !(spec.type === "int" && step === 1)) errors.push(`${name}: a log scale cannot have a step; drop one of the two.`);
      else if (spec.type === "int" && !Number.isInteger(step)) errors.push(`${name}: an int parameter needs a whole-number step.`);
    }
    if (!errors.length && low === high) warnings.push(`${name} has low = high = ${low}: it is fixed, not searched.`);
    return { errors, warnings };
  }

  judgeName(name, errors) {
    if (name.startsWith(MODEL_PREFIX)) {
      const options = this.modelOptions();
      if (options === null) {
        errors.push(`${name}: a design space needs a preset design (mlp, small_cnn, vit_tiny, tab_transformer); this design is a list of layers.`);
      } else if (!options.includes(name)) {
        errors.push(`${name}: this preset has no option ${name.slice(MODEL_PREFIX.length)} (searchable: ${options.map((option) => option.slice(MODEL_PREFIX.length)).join(", ")}).`);
      }
    } else if (!this.names.has(name) && !NESTED.some((prefix) => name.startsWith(prefix))) {
      errors.push(`${name} is not a training setting: pick one from the list, schedule.<option>, augmentation.<option> or model.<option>.`);
    }
  }

  /** A server message about the search space ("lr: low … ") marks the row it names; false if none matched. */
  markServerError(message) {
    const row = this.rows.find((candidate) => {
      const name = candidate.inputs.name.value.trim();
      return name && (message.startsWith(`${name}:`) || message.startsWith(`${name} `));
    });
    if (!row) return false;
    row.serverError = message;
    this.check();
    return true;
  }
}
