// Run health on the run page: while the run trains, asks GET /api/runs/{id}/findings/ every few seconds and
// shows each problem found (overfitting, divergence…) as a warning card with what it means and the fix. The
// server draws the findings a finished run had; this keeps a live page up to date, and stops once the run ends.
import { apiFetch } from "./csrf.js";

const card = document.getElementById("run-findings");
const list = document.getElementById("run-findings-list");
const FINAL = ["succeeded", "failed", "cancelled", "pruned", "lost"];
const POLL_MS = 4000;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render(finding) {
  const article = element("article", `finding severity-${finding.severity}`);
  article.dataset.code = finding.code;
  article.dataset.testid = "finding";
  const title = element("h3");
  title.append(element("span", "badge severity", finding.severity), ` ${finding.title} `);
  if (finding.epoch) title.append(element("span", "muted small", `from epoch ${finding.epoch}`));
  else if (finding.step) title.append(element("span", "muted small", `at step ${finding.step}`));
  const fix = element("p", "finding-fix");
  fix.append(element("strong", "", "Suggested fix:"), ` ${finding.fix}`);
  const numbers = element("details");
  numbers.append(element("summary", "muted small", "The numbers"));
  const evidence = element("ul", "finding-evidence");
  for (const [name, value] of Object.entries(finding.evidence || {})) {
    const item = element("li");
    item.append(element("code", "", name), ` ${Array.isArray(value) ? value.join(", ") : value}`);
    evidence.append(item);
  }
  numbers.append(evidence);
  article.append(title, element("p", "finding-why", finding.explanation), fix, numbers);
  if (finding.concept) {
    const link = element("a", "small", `${finding.title} in the knowledge graph`);
    link.href = `/graph/?node=concept:${encodeURIComponent(finding.concept)}`;
    article.append(link);
  }
  return article;
}

function show(findings) {
  // Only redraw what changed: an open "The numbers" stays open between polls.
  const drawn = new Map([...list.querySelectorAll("article.finding")].map((node) => [node.dataset.code, node]));
  for (const finding of findings) {
    const fresh = render(finding);
    const old = drawn.get(finding.code);
    if (!old) list.append(fresh);
    else if (old.textContent !== fresh.textContent) {
      fresh.querySelector("details").open = old.querySelector("details")?.open || false;
      old.replaceWith(fresh);
    }
  }
  card.hidden = !list.children.length;
}

async function poll() {
  try {
    const response = await apiFetch(`/api/runs/${card.dataset.run}/findings/`);
    if (!response.ok) return true;
    const body = await response.json();
    show(body.findings || []);
    return !FINAL.includes(body.status);
  } catch (error) {
    return true; // the server may be restarting: ask again later
  }
}

async function follow() {
  if (await poll()) setTimeout(follow, POLL_MS);
  else setTimeout(poll, POLL_MS); // the last persist after the end may add one (a loss that became NaN)
}

if (card && card.dataset.live) setTimeout(follow, POLL_MS);
