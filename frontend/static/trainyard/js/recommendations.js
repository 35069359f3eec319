// Recommendations from history (dataset and launch pages): asks GET /api/datasets/{id}/recommendations/ and
// shows what did best on the dataset and on similar ones, each with its evidence, its similarity and a
// "Launch this" link; "Start a sweep from these" opens the sweep form with them as its trials to try first.
// With no history the panel says so and shows the defaults with their reasons: it is never empty.
// On the launch page it follows the dataset select (data-follow names it).
import { apiFetch } from "./csrf.js";

const panel = document.getElementById("recommendations");

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function number(value, digits = 3) {
  if (typeof value !== "number") return String(value ?? "—");
  return Math.abs(value) >= 0.001 || value === 0 ? value.toFixed(digits) : value.toExponential(2);
}

function settingsLine(settings) {
  const line = element("p", "settings");
  for (const [name, value] of Object.entries(settings || {})) {
    if (value === null || typeof value === "object") continue;
    line.append(element("code", "", `${name} ${value}`));
  }
  return line;
}

function recommendationCard(item) {
  const card = element("article", "recommendation");
  card.dataset.testid = "recommendation";
  card.dataset.source = item.source;
  const family = item.design.family ? ` (${item.design.family})` : "";
  card.append(element("h3", "", `#${item.rank} ${item.design.name}${family}`));
  const score = element("p", "score");
  const spread = item.std !== null && item.std !== undefined ? ` ± ${number(item.std)}` : "";
  score.append(element("strong", "", `${item.metric} ${number(item.mean)}${spread}`),
    ` over ${item.n} run${item.n === 1 ? "" : "s"} (mean of each run's best; the best run ${number(item.best_value)})`);
  const similarity = element("p", "similarity");
  similarity.dataset.testid = "recommendation-similarity";
  similarity.textContent = item.source === "this dataset" ? "On this dataset."
    : `On ${item.dataset.name} v${item.dataset.version}, similarity ${item.similarity.score.toFixed(2)}: `
      + `${item.similarity.reasons.join("; ")}.`;
  const evidence = element("p", "evidence small");
  evidence.dataset.testid = "recommendation-evidence";
  evidence.append("Evidence: ");
  item.runs.forEach((runId, index) => {
    if (index) evidence.append(", ");
    const link = element("a", "", `run ${runId}`);
    link.href = `/runs/${runId}/`;
    evidence.append(link);
  });
  const actions = element("div", "actions");
  const launch = element("a", "button primary", "Launch this");
  launch.href = item.launch_url;
  launch.dataset.testid = "launch-this";
  launch.title = `the launch form filled in from run ${item.best_run}, on this dataset`;
  actions.append(launch);
  card.append(score, similarity, settingsLine(item.params), evidence, actions);
  return card;
}

function defaultsCard(defaults) {
  const box = element("div", "fallback");
  box.dataset.testid = "recommendations-defaults";
  box.append(element("p", "", "Defaults for this dataset, with the reason for each:"));
  const list = element("ul");
  const values = { model: defaults.model, ...defaults.config };
  for (const [name, reason] of Object.entries(defaults.reasons || {})) {
    const item = element("li");
    item.append(element("code", "", `${name} ${values[name] ?? ""}`), ` ${reason}`);
    list.append(item);
  }
  const launch = element("a", "button primary", "Launch with the defaults");
  launch.href = defaults.launch_url;
  launch.dataset.testid = "launch-defaults";
  box.append(list, launch);
  return box;
}

function show(answer) {
  const message = document.getElementById("recommendations-message");
  const list = document.getElementById("recommendations-list");
  const sweep = document.getElementById("recommendations-sweep");
  message.textContent = answer.message;
  list.replaceChildren(...answer.recommendations.map(recommendationCard));
  if (answer.defaults) list.append(defaultsCard(answer.defaults));
  sweep.href = answer.sweep_url;
  sweep.hidden = !answer.warm_start.length;
  panel.dataset.state = answer.has_history ? "history" : "defaults";
}

async function load(datasetId) {
  panel.dataset.state = "loading";
  panel.dataset.dataset = datasetId;
  const message = document.getElementById("recommendations-message");
  try {
    const response = await apiFetch(`/api/datasets/${datasetId}/recommendations/`);
    const body = await response.json().catch(() => ({}));
    if (panel.dataset.dataset !== String(datasetId)) return; // another dataset was chosen meanwhile
    if (!response.ok) {
      message.textContent = body.detail || `Recommendations did not load (HTTP ${response.status}).`;
      panel.dataset.state = "error";
      return;
    }
    show(body);
  } catch (error) {
    message.textContent = `Recommendations did not load: ${error.message}`;
    panel.dataset.state = "error";
  }
}

if (panel) {
  const follow = panel.dataset.follow && document.getElementById(panel.dataset.follow);
  if (follow) follow.addEventListener("change", () => load(follow.value));
  load(follow ? follow.value : panel.dataset.dataset);
}
