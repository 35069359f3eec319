// The knowledge-graph browser: search, click a node to expand its neighbours (capped, with "show more"),
// collapse, hide labels, change the layout, and see a node's properties with a link to its page.
// Data comes from /api/kg/ (already scoped to the user's projects); Cytoscape.js draws it.
import { apiFetch } from "./csrf.js";

const COLOURS = {
  Project: "#6b7280", User: "#a16207", Dataset: "#0f766e", DatasetVersion: "#14b8a6", ModelDesign: "#7c3aed",
  Run: "#2f6fed", Sweep: "#db2777", Checkpoint: "#ea580c", Worker: "#475569", Concept: "#16a34a",
};
const config = JSON.parse(document.getElementById("graph-config").textContent);
const element = document.getElementById("graph-canvas");
const state = { nextSkip: {}, hidden: new Set(), hiddenTypes: new Set(), selected: null, questions: [] };
const SAVED_VIEWS = "trainyard.graph.views";
const SHARED = new Set(["User", "Worker"]);
let cy = null;

function labelOf(node) { return (node.labels || [])[0] || "Node"; }

function showError(message) {
  const box = document.getElementById("graph-error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function getJson(url, options) {
  const response = await apiFetch(url, options);
  let body = {};
  try { body = await response.json(); } catch (error) { body = {}; }
  if (!response.ok) {
    const detail = body.detail || Object.values(body).flat().join(" ") || `${response.status} ${response.statusText}`;
    throw new Error(detail);
  }
  return body;
}

function addNodes(nodes) {
  const added = [];
  for (const node of nodes) {
    if (cy.getElementById(node.id).length) continue;
    const label = labelOf(node);
    added.push({ group: "nodes", data: { id: node.id, label, caption: node.properties.name || node.id,
      properties: node.properties, colour: COLOURS[label] || "#999" } });
  }
  return cy.add(added);
}

function addRelationships(relationships) {
  const added = [];
  for (const edge of relationships) {
    if (cy.getElementById(edge.id).length) continue;
    if (!cy.getElementById(edge.source).length || !cy.getElementById(edge.target).length) continue;
    added.push({ group: "edges", data: { id: edge.id, source: edge.source, target: edge.target, type: edge.type } });
  }
  return cy.add(added);
}

function relayout(layoutName) {
  const name = typeof layoutName === "string" ? layoutName : document.getElementById("graph-layout-name").value;
  applyFilters();
  cy.layout({ name, animate: false, fit: true, padding: 30, directed: true, nodeDimensionsIncludeLabels: true }).run();
}

async function expand(id, { more = false } = {}) {
  const skip = more ? (state.nextSkip[id] || 0) : 0;
  showError("");
  try {
    const answer = await getJson(`/api/kg/nodes/${encodeURIComponent(id)}/neighbourhood/?skip=${skip}`);
    addNodes(answer.nodes);
    addRelationships(answer.relationships);
    state.nextSkip[id] = answer.more ? answer.next_skip : null;
    cy.getElementById(id).data("expanded", true);
    relayout();
    select(id);
  } catch (error) {
    showError(error.message);
  }
}

function pageOf(node) {
  const page = config.pages[node.data("label")];
  const value = page && node.data("properties")[page.property];
  return value === undefined || value === null ? null : page.url.replace("/0/", `/${value}/`);
}

function select(id) {
  const node = cy.getElementById(id);
  if (!node.length) return;
  state.selected = id;
  cy.elements().unselect();
  node.select();
  document.getElementById("graph-panel-title").textContent = `${node.data("label")}: ${node.data("caption")}`;
  document.getElementById("graph-panel-hint").hidden = true;
  document.getElementById("graph-panel-actions").hidden = false;
  const link = document.getElementById("graph-panel-link");
  const url = pageOf(node);
  link.hidden = !url;
  if (url) link.href = url;
  document.getElementById("graph-more").hidden = !state.nextSkip[id];
  renderQuestions();
  const table = document.getElementById("graph-properties");
  table.replaceChildren();
  for (const [name, value] of Object.entries(node.data("properties")).sort()) {
    const row = table.insertRow();
    const header = document.createElement("th");
    header.textContent = name;
    row.appendChild(header);
    row.insertCell().textContent = Array.isArray(value) ? value.join(", ") : String(value);
  }
}

// Collapse: remove the neighbours that hang on this node alone.
function collapse(id) {
  const node = cy.getElementById(id);
  node.neighborhood("node").filter((other) => other.degree(false) === 1).remove();
  node.data("expanded", false);
  state.nextSkip[id] = null;
  relayout();
  select(id);
}

function applyFilters() {
  cy.nodes().forEach((node) => node.style("display", state.hidden.has(node.data("label")) ? "none" : "element"));
  cy.edges().forEach((edge) => edge.style("display", state.hiddenTypes.has(edge.data("type")) ? "none" : "element"));
  updateTypeFilters();
}

// One checkbox per relationship type on the canvas.
function updateTypeFilters() {
  const box = document.getElementById("graph-types");
  const types = [...new Set(cy.edges().map((edge) => edge.data("type")))].sort();
  const shown = [...box.querySelectorAll("input")].map((input) => input.dataset.type);
  if (types.join() === shown.join()) return;
  box.replaceChildren();
  for (const type of types) {
    const item = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.checked = !state.hiddenTypes.has(type);
    input.dataset.type = type;
    input.addEventListener("change", () => {
      if (input.checked) state.hiddenTypes.delete(type); else state.hiddenTypes.add(type);
      applyFilters();
    });
    item.append(input, document.createTextNode(type));
    box.appendChild(item);
  }
}

function buildLegend() {
  const legend = document.getElementById("graph-legend");
  for (const [label, colour] of Object.entries(COLOURS)) {
    const item = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.dataset.label = label;
    box.addEventListener("change", () => {
      if (box.checked) state.hidden.delete(label); else state.hidden.add(label);
      applyFilters();
    });
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour;
    item.append(box, swatch, document.createTextNode(label));
    legend.appendChild(item);
  }
}

async function search(query) {
  showError("");
  const card = document.getElementById("graph-results-card");
  const list = document.getElementById("graph-results");
  list.replaceChildren();
  try {
    const answer = await getJson(`/api/kg/search/?q=${encodeURIComponent(query)}`);
    card.hidden = false;
    if (!answer.nodes.length) {
      const item = document.createElement("li");
      item.className = "muted small";
      item.textContent = "Nothing matches. Try part of a name, an id such as run:42, or a label such as Concept.";
      list.appendChild(item);
    }
    for (const node of answer.nodes) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.node = node.id;
      button.textContent = `${node.properties.name || node.id} · ${labelOf(node)}`;
      button.addEventListener("click", () => { addNodes([node]); expand(node.id); });
      item.appendChild(button);
      list.appendChild(item);
    }
  } catch (error) {
    showError(error.message);
  }
}

function renderTable(container, columns, rows) {
  const table = document.createElement("table");
  table.className = "table";
  const head = table.createTHead().insertRow();
  for (const column of columns) {
    const cell = document.createElement("th");
    cell.textContent = column;
    head.appendChild(cell);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const line = body.insertRow();
    for (const value of row) {
      line.insertCell().textContent = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
    }
  }
  container.replaceChildren(table);
}

function setUpConsole() {
  const form = document.getElementById("graph-console-form");
  if (!form) return;
  const result = document.getElementById("graph-console-result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.textContent = "Running…";
    try {
      const answer = await getJson("/api/kg/query/", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ cypher: form.elements.cypher.value, params: {} }),
      });
      renderTable(result, answer.columns, answer.rows);
      if (!answer.rows.length) result.textContent = "No rows.";
      // Nodes in the answer are drawn on the canvas too.
      const nodes = answer.rows.flat().filter((value) => value && value.labels && value.properties && value.properties.key)
        .map((value) => ({ id: value.properties.key, labels: value.labels, properties: value.properties }));
      if (nodes.length) { addNodes(nodes); relayout(); }
    } catch (error) {
      result.innerHTML = "";
      const message = document.createElement("p");
      message.className = "alert error";
      message.textContent = error.message;
      result.appendChild(message);
    }
  });
}

async function lineage(id) {
  showError("");
  try {
    const answer = await getJson(`/api/kg/paths/?node=${encodeURIComponent(id)}&direction=both`);
    addNodes(answer.nodes);
    addRelationships(answer.relationships);
    cy.elements().removeClass("lineage");
    const ids = new Set([...answer.nodes.map((node) => node.id), ...answer.relationships.map((edge) => edge.id)]);
    cy.elements().filter((element) => ids.has(element.id())).addClass("lineage");
    document.getElementById("graph-layout-name").value = "breadthfirst";
    relayout("breadthfirst");
    select(id);
  } catch (error) {
    showError(error.message);
  }
}

function nodeButton(node) {
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.node = node.id;
  button.textContent = node.properties.name || node.id;
  button.addEventListener("click", () => { addNodes([node]); expand(node.id); });
  return button;
}

function renderQuestions() {
  const list = document.getElementById("graph-question-list");
  const label = state.selected ? cy.getElementById(state.selected).data("label") : null;
  list.replaceChildren();
  for (const question of state.questions) {
    if (question.labels.length && !question.labels.includes(label)) continue;
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.question = question.name;
    button.textContent = question.title;
    button.addEventListener("click", () => ask(question));
    item.appendChild(button);
    list.appendChild(item);
  }
}

async function ask(question) {
  const result = document.getElementById("graph-answer");
  const params = new URLSearchParams({ metric: document.getElementById("graph-metric").value.trim() || "val_accuracy" });
  if (question.parameters.includes("node")) params.set("node", state.selected);
  try {
    const answer = await getJson(`/api/kg/questions/${question.name}/?${params}`);
    if (!answer.rows.length) { result.textContent = "No answer yet: nothing in your projects matches."; return; }
    const table = document.createElement("table");
    table.className = "table";
    const head = table.createTHead().insertRow();
    for (const column of answer.columns) { const th = document.createElement("th"); th.textContent = column; head.appendChild(th); }
    const body = table.createTBody();
    for (const row of answer.rows) {
      const line = body.insertRow();
      for (const value of row) {
        const cell = line.insertCell();
        if (value && value.id && value.labels) cell.appendChild(nodeButton(value));
        else cell.textContent = value === null ? "" : typeof value === "number" ? String(+value.toPrecision(4)) : String(value);
      }
    }
    result.replaceChildren(table);
  } catch (error) {
    result.textContent = error.message;
  }
}

function savedViews() {
  try { return JSON.parse(localStorage.getItem(SAVED_VIEWS) || "{}"); } catch (error) { return {}; }
}

function listSavedViews() {
  const select = document.getElementById("graph-saved");
  select.replaceChildren(new Option("Saved views…", ""));
  for (const name of Object.keys(savedViews()).sort()) select.appendChild(new Option(name, name));
}

function saveView() {
  const name = (window.prompt("Save this view as:") || "").trim();
  if (!name) return;
  const views = savedViews();
  views[name] = { elements: cy.elements().jsons().map(({ group, data, position }) => ({ group, data, position })),
                  zoom: cy.zoom(), pan: cy.pan(), layout: document.getElementById("graph-layout-name").value };
  localStorage.setItem(SAVED_VIEWS, JSON.stringify(views));
  listSavedViews();
  document.getElementById("graph-saved").value = name;
}

function restoreView(name) {
  const view = savedViews()[name];
  if (!view) return;
  cy.elements().remove();
  cy.add(view.elements);
  cy.nodes().forEach((node) => { const saved = view.elements.find((e) => e.data.id === node.id()); if (saved) node.position(saved.position); });
  cy.zoom(view.zoom);
  cy.pan(view.pan);
  document.getElementById("graph-layout-name").value = view.layout || "cose";
  applyFilters();
}

function start() {
  if (!element || !window.cytoscape) return;
  cy = window.cytoscape({
    container: element,
    wheelSensitivity: 0.3,
    style: [
      { selector: "node", style: { "background-color": "data(colour)", label: "data(caption)", "font-size": 10,
        "text-valign": "bottom", "text-margin-y": 4, width: 22, height: 22, "text-max-width": 120, "text-wrap": "ellipsis" } },
      { selector: "node[?expanded]", style: { "border-width": 3, "border-color": "#1c2230" } },
      { selector: ".lineage", style: { "line-color": "#f59e0b", "target-arrow-color": "#f59e0b", width: 2.5 } },
      { selector: "node:selected", style: { "border-width": 4, "border-color": "#f59e0b" } },
      { selector: "edge", style: { width: 1.5, "line-color": "#c8ced8", "target-arrow-color": "#c8ced8",
        "target-arrow-shape": "triangle", "curve-style": "bezier", label: "data(type)", "font-size": 8,
        color: "#5d6778", "text-rotation": "autorotate" } },
    ],
  });
  element.dataset.ready = "true";
  window.trainyardGraph = cy;  // for the browser tests
  cy.on("tap", "node", (event) => {
    const id = event.target.id();
    // Users and workers link to every project: they are shown beside a node, never expanded.
    if (event.target.data("expanded") || SHARED.has(event.target.data("label"))) select(id); else expand(id);
  });
  buildLegend();
  document.getElementById("graph-search").addEventListener("submit", (event) => {
    event.preventDefault();
    search(event.target.elements.q.value);
  });
  document.getElementById("graph-layout-name").addEventListener("change", relayout);
  document.getElementById("graph-fit").addEventListener("click", () => cy.fit(undefined, 30));
  document.getElementById("graph-clear").addEventListener("click", () => { cy.elements().remove(); state.nextSkip = {}; });
  document.getElementById("graph-more").addEventListener("click", () => state.selected && expand(state.selected, { more: true }));
  document.getElementById("graph-collapse").addEventListener("click", () => state.selected && collapse(state.selected));
  document.getElementById("graph-lineage").addEventListener("click", () => state.selected && lineage(state.selected));
  document.getElementById("graph-save").addEventListener("click", saveView);
  document.getElementById("graph-saved").addEventListener("change", (event) => restoreView(event.target.value));
  listSavedViews();
  getJson("/api/kg/questions/").then((answer) => { state.questions = answer.questions; renderQuestions(); })
    .catch((error) => showError(error.message));
  setUpConsole();
  if (config.start) expand(config.start);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
